/* items.h: item rows of an instance: metadata (desc, tags, keywords), the
 * feature vector (source of truth for the index), the perceptual hash and a
 * thumbnail. Every write bumps the instance's change_seq in the same
 * transaction, so a saved index knows whether it is still current. */
#ifndef IMGSEARCH_ITEMS_H
#define IMGSEARCH_ITEMS_H

#include <jansson.h>
#include <stdint.h>
#include "storage/db.h"

struct projection;

struct item_rec {
    int64_t row;         /* vector id in the index */
    int64_t seq;         /* out: the change seq items_put wrote it at */
    int shard;           /* out: its shard (storage/shard.h) */
    const char *item_id; /* borrowed */
    const char *desc;    /* NULL: none */
    json_t *custom_tags; /* object string->string, or NULL (borrowed) */
    json_t *num_tags;    /* object string->number, or NULL (borrowed) */
    json_t *keywords;    /* array of strings, or NULL (borrowed) */
    const float *vector; /* dim floats */
    int dim;
    const float *extra; /* n_extra * dim floats: extra views (vectors.h), or NULL */
    /* Compact instances: the int8 codes stored instead of those floats (dim
     * bytes each, vector then n_extra views); NULL: the floats are stored. */
    const int8_t *codes, *extra_codes;
    const int *extra_k; /* their kinds k */
    int n_extra;
    uint64_t phash;
    int width, height;
    const char *box; /* region used, "x1,y1,x2,y2", or NULL */
    const uint8_t *thumb;
    size_t thumb_len;
};

/* Tag filter of search/check/delete: custom_tags OR within a key and AND
 * across keys; custom_num_tags ranges [from, to] (both inclusive, either
 * optional), items without the tag excluded. Borrowed JSON. */
struct item_filter {
    json_t *tags;     /* object key -> array of strings */
    json_t *num_tags; /* object key -> {"from": x, "to": y} */
};

/* Inserts the item. When item_id exists: DB_EXISTS unless `force`, in which
 * case the old row is replaced (its row id in *old_row, else 0). rec->row
 * gets the new row id. */
enum db_status items_put(struct db *db, int64_t instance, struct item_rec *rec, int force,
                         int64_t *old_row);

/* Metadata as the API's ItemSource object ({desc, custom_tags,
 * custom_num_tags, keywords}, absent fields omitted); *source new ref. */
enum db_status items_get(struct db *db, int64_t instance, const char *item_id, int64_t *row,
                         json_t **source);
/* The stored vector (dim floats, malloc'd; int8 codes decoded through pr
 * for a compact instance, vectors.h). */
enum db_status items_vector(struct db *db, int64_t instance, const char *item_id, int dim,
                            const struct projection *pr, float **vec);
enum db_status items_vector_row(struct db *db, int64_t row, int dim, const struct projection *pr,
                                float **vec);
enum db_status items_thumb(struct db *db, int64_t instance, const char *item_id, uint8_t **data,
                           size_t *len);

/* Updates desc and/or merges tag maps (a given key replaces that key's
 * value; other keys stay). NULL leaves a field alone. With `replace_tags`
 * the custom_tags map is replaced whole (v1 modify). */
enum db_status items_update(struct db *db, int64_t instance, const char *item_id, const char *desc,
                            json_t *custom_tags, json_t *num_tags, int replace_tags);

/* Deletes one item; *row gets its row id. */
enum db_status items_delete(struct db *db, int64_t instance, const char *item_id, int64_t *row);
/* The same, and *seq gets the change seq of the delete. */
enum db_status items_delete_seq(struct db *db, int64_t instance, const char *item_id, int64_t *row,
                                int64_t *seq);

/* Sorted row ids of the instance's items that pass the filter. */
enum db_status items_filter_rows(struct db *db, int64_t instance, const struct item_filter *f,
                                 int64_t **rows, size_t *n);

/* For search results: per row id, the item_id and its ItemSource; rows that
 * no longer exist are reported with item_id NULL. `collapse_key` (or NULL)
 * also fetches that tag's value. */
struct item_meta {
    int64_t row;
    char *item_id;
    json_t *source;
    char *collapse_value; /* NULL when the item lacks the tag */
    double score;         /* keyword search only */
};
enum db_status items_meta(struct db *db, int64_t instance, const int64_t *rows, size_t n,
                          const char *collapse_key, struct item_meta **out);
/* The same, reading rows in order (in batches) only until `want` of them are
 * present: *out has n entries, the first *scanned looked up (item_id NULL:
 * the row is gone), the rest zero. */
enum db_status items_meta_prefix(struct db *db, int64_t instance, const int64_t *rows, size_t n,
                                 size_t want, const char *collapse_key, struct item_meta **out,
                                 size_t *scanned);
void items_meta_free(struct item_meta *m, size_t n);

/* Listing in item_id order after the cursor (NULL: from the start):
 * conditional check and delete. *total gets the number of matches. */
enum db_status items_list(struct db *db, int64_t instance, const struct item_filter *f,
                          const char *after, int limit, struct item_meta **out, size_t *n,
                          long long *total);

/* KEYWORD search: items with any of the keywords, scored by the fraction of
 * query keywords they carry; ordered by score desc then item_id. The
 * cursor (after_score, after_id) continues a previous page. */
enum db_status items_keyword_search(struct db *db, int64_t instance, json_t *keywords,
                                    const struct item_filter *f, int has_cursor, double after_score,
                                    const char *after_id, int offset, int limit,
                                    struct item_meta **out, size_t *n, long long *total);

/* Row ids of items whose hash equals phash (exact duplicates). */
enum db_status items_by_phash(struct db *db, int64_t instance, uint64_t phash, int64_t **rows,
                              size_t *n);

#endif
