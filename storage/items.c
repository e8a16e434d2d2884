/* items.c: item rows and their tag/keyword side tables. Tag filters become
 * EXISTS sub-queries on the indexed side tables, built with bound values
 * only (never string-pasted). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "storage/instances.h"
#include "storage/items.h"
#include "storage/shard.h"
#include "storage/vectors.h"

/* --- a small SQL builder with bound parameters ------------------------------ */

enum bind_kind { B_INT, B_TEXT, B_REAL };

struct bind {
    enum bind_kind kind;
    long long i;
    const char *s;
    double d;
};

struct sqlq {
    char sql[8192];
    size_t len;
    struct bind b[512];
    int n;
    int overflow;
};

static void q_add(struct sqlq *q, const char *s)
{
    size_t n = strlen(s);
    if (q->len + n + 1 > sizeof q->sql) {
        q->overflow = 1;
        return;
    }
    memcpy(q->sql + q->len, s, n + 1);
    q->len += n;
}

static void q_bind(struct sqlq *q, struct bind b)
{
    if (q->n == (int)(sizeof q->b / sizeof q->b[0])) {
        q->overflow = 1;
        return;
    }
    q->b[q->n++] = b;
}

static void q_int(struct sqlq *q, long long v)
{
    q_add(q, "?");
    q_bind(q, (struct bind){.kind = B_INT, .i = v});
}

static void q_text(struct sqlq *q, const char *v)
{
    q_add(q, "?");
    q_bind(q, (struct bind){.kind = B_TEXT, .s = v});
}

static void q_real(struct sqlq *q, double v)
{
    q_add(q, "?");
    q_bind(q, (struct bind){.kind = B_REAL, .d = v});
}

static struct sql_stmt *q_prepare(struct sql_conn *c, struct sqlq *q)
{
    if (q->overflow)
        return NULL;
    struct sql_stmt *st = sql_prepare(c, q->sql);
    for (int i = 0; st && i < q->n; i++) {
        struct bind *b = &q->b[i];
        if (b->kind == B_INT)
            sql_bind_int64(st, i + 1, b->i);
        else if (b->kind == B_TEXT)
            sql_bind_text(st, i + 1, b->s);
        else
            sql_bind_double(st, i + 1, b->d);
    }
    return st;
}

/* Appends " AND ..." clauses for the filter on items aliased `i`. */
static void q_filter(struct sqlq *q, const struct item_filter *f)
{
    const char *key;
    json_t *v;
    if (f && f->tags) {
        json_object_foreach(f->tags, key, v)
        {
            q_add(q, " AND EXISTS (SELECT 1 FROM item_tags t WHERE t.item = i.id AND t.key = ");
            q_text(q, key);
            q_add(q, " AND t.value IN (");
            size_t k;
            json_t *s;
            json_array_foreach(v, k, s)
            {
                if (k)
                    q_add(q, ",");
                q_text(q, json_string_value(s));
            }
            q_add(q, "))");
        }
    }
    if (f && f->num_tags) {
        json_object_foreach(f->num_tags, key, v)
        {
            q_add(q, " AND EXISTS (SELECT 1 FROM item_num_tags n WHERE n.item = i.id AND n.key = ");
            q_text(q, key);
            json_t *from = json_object_get(v, "from"), *to = json_object_get(v, "to");
            if (json_is_number(from)) {
                q_add(q, " AND n.value >= ");
                q_real(q, json_number_value(from));
            }
            if (json_is_number(to)) {
                q_add(q, " AND n.value <= ");
                q_real(q, json_number_value(to));
            }
            q_add(q, ")");
        }
    }
}

/* --- writes ------------------------------------------------------------------ */

/* Bumps the instance's change_seq; *seq gets the new value, which the
 * transaction's item rows and tombstones carry (the snapshot change log,
 * server/registry.c), and *shards (when not NULL) its number of shards,
 * read in the same statement. */
static int bump_seq(struct sql_conn *c, int64_t instance, int64_t *seq, int *shards)
{
    struct sql_stmt *st = sql_prepare(c, "UPDATE instances SET change_seq = change_seq + 1"
                                         " WHERE id = ? RETURNING change_seq, shards");
    if (!st)
        return -1;
    sql_bind_int64(st, 1, instance);
    int rc = -1;
    if (sql_step(st) == SQL_ROW) {
        *seq = sql_column_int64(st, 0);
        if (shards)
            *shards = sql_column_int(st, 1);
        rc = sql_step(st) == SQL_DONE ? 0 : -1;
    }
    sql_finalize(st);
    return rc;
}

static char *dumps_or_null(json_t *j)
{
    return j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
}

/* Binds a JSON value: strings as text, numbers as reals. */
static void bind_json(struct sql_stmt *st, int col, json_t *v)
{
    if (json_is_number(v))
        sql_bind_double(st, col, json_number_value(v));
    else
        sql_bind_text(st, col, json_string_value(v));
}

/* One row per member: (row, key, value) for an object, (row, value) for an
 * array. */
static int insert_members(struct sql_conn *c, const char *sql, int64_t row, json_t *members)
{
    if (!members)
        return 0;
    struct sql_stmt *st = sql_prepare(c, sql);
    if (!st)
        return -1;
    int rc = 0;
    const char *key;
    json_t *v;
    size_t i;
    if (json_is_object(members)) {
        json_object_foreach(members, key, v)
        {
            sql_reset(st);
            sql_bind_int64(st, 1, row);
            sql_bind_text(st, 2, key);
            bind_json(st, 3, v);
            if (sql_step(st) != SQL_DONE)
                rc = -1;
        }
    } else {
        json_array_foreach(members, i, v)
        {
            sql_reset(st);
            sql_bind_int64(st, 1, row);
            bind_json(st, 2, v);
            if (sql_step(st) != SQL_DONE)
                rc = -1;
        }
    }
    sql_finalize(st);
    return rc;
}

/* Rewrites the side tables of `row` from the JSON maps. */
static int write_side_tables(struct sql_conn *c, int64_t row, json_t *tags, json_t *num_tags,
                             json_t *keywords)
{
    static const char *const clear[] = {"DELETE FROM item_tags WHERE item = ?",
                                        "DELETE FROM item_num_tags WHERE item = ?",
                                        "DELETE FROM item_keywords WHERE item = ?"};
    for (int i = 0; i < 3; i++) {
        struct sql_stmt *st = sql_prepare(c, clear[i]);
        if (!st)
            return -1;
        sql_bind_int64(st, 1, row);
        int ok = sql_step(st) == SQL_DONE;
        sql_finalize(st);
        if (!ok)
            return -1;
    }
    if (insert_members(c, "INSERT INTO item_tags(item, key, value) VALUES (?,?,?)", row, tags) ||
        insert_members(c, "INSERT INTO item_num_tags(item, key, value) VALUES (?,?,?)", row,
                       num_tags) ||
        insert_members(c,
                       "INSERT INTO item_keywords(item, keyword) VALUES (?,?)"
                       " ON CONFLICT DO NOTHING",
                       row, keywords))
        return -1;
    return 0;
}

static int write_views(struct sql_conn *c, const struct item_rec *rec)
{
    if (!rec->extra || rec->n_extra <= 0)
        return 0;
    struct sql_stmt *st =
        sql_prepare(c, "INSERT INTO item_regions(item, k, vector) VALUES (?,?,?)");
    if (!st)
        return -1;
    int rc = 0;
    for (int k = 0; k < rec->n_extra && rc == 0; k++) {
        sql_reset(st);
        sql_bind_int64(st, 1, rec->row);
        sql_bind_int64(st, 2, rec->extra_k[k]);
        if (rec->extra_codes)
            sql_bind_blob(st, 3, rec->extra_codes + (size_t)k * (size_t)rec->dim, (size_t)rec->dim);
        else
            sql_bind_blob(st, 3, rec->extra + (size_t)k * (size_t)rec->dim,
                          (size_t)rec->dim * sizeof(float));
        if (sql_step(st) != SQL_DONE)
            rc = -1;
    }
    sql_finalize(st);
    return rc;
}

static enum db_status find_row(struct sql_conn *c, int64_t instance, const char *item_id,
                               int64_t *row)
{
    struct sql_stmt *st =
        sql_prepare(c, "SELECT id FROM items WHERE instance_id = ? AND item_id = ?");
    if (!st)
        return DB_ERROR;
    sql_bind_int64(st, 1, instance);
    sql_bind_text(st, 2, item_id);
    int s = sql_step(st);
    enum db_status rc = s == SQL_ROW ? DB_OK : s == SQL_DONE ? DB_NOT_FOUND : DB_ERROR;
    if (rc == DB_OK)
        *row = sql_column_int64(st, 0);
    sql_finalize(st);
    return rc;
}

/* Deletes the row and leaves a tombstone at `seq`, so a snapshot that still
 * holds the row's vectors drops them at replay. */
static int delete_row(struct sql_conn *c, int64_t instance, int64_t row, int64_t seq)
{
    struct sql_stmt *st = sql_prepare(c, "DELETE FROM items WHERE id = ?");
    if (!st)
        return -1;
    sql_bind_int64(st, 1, row);
    int rc = sql_step(st) == SQL_DONE ? 0 : -1;
    sql_finalize(st);
    if (rc != 0)
        return -1;
    st = sql_prepare(c, "INSERT INTO index_tombstones(instance_id, seq, row) VALUES (?,?,?)");
    if (!st)
        return -1;
    sql_bind_int64(st, 1, instance);
    sql_bind_int64(st, 2, seq);
    sql_bind_int64(st, 3, row);
    rc = sql_step(st) == SQL_DONE ? 0 : -1;
    sql_finalize(st);
    return rc;
}

enum db_status items_put(struct db *db, int64_t instance, struct item_rec *rec, int force,
                         int64_t *old_row)
{
    struct sql_conn *c = db_conn(db);
    if (!c)
        return DB_ERROR;
    enum db_status rc = DB_ERROR;
    struct sql_stmt *st = NULL;
    char *tags = dumps_or_null(rec->custom_tags), *num = dumps_or_null(rec->num_tags),
         *kw = dumps_or_null(rec->keywords);
    *old_row = 0;
    if (db_begin(c) != 0)
        goto out;
    /* The seq first: its row lock orders this instance's writers (another
     * node's too, on PostgreSQL), so the lookup below sees the last one's
     * row. A refused put rolls the bump back. */
    int64_t existing, seq;
    int shards = 1;
    if (bump_seq(c, instance, &seq, &shards) != 0)
        goto out;
    enum db_status f = find_row(c, instance, rec->item_id, &existing);
    if (f == DB_ERROR)
        goto out;
    if (f == DB_OK && !force) {
        rc = DB_EXISTS;
        goto out;
    }
    if (f == DB_OK) {
        if (delete_row(c, instance, existing, seq) != 0)
            goto out;
        *old_row = existing;
    }
    long long now = now_ms();
    st = sql_prepare(c,
                     "INSERT INTO items(instance_id, item_id, descr, custom_tags, custom_num_tags,"
                     " keywords, vector, phash, width, height, box, thumb, created_ms,"
                     " updated_ms, seq, shard) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
                     " RETURNING id");
    if (!st)
        goto out;
    sql_bind_int64(st, 1, instance);
    sql_bind_text(st, 2, rec->item_id);
    sql_bind_text(st, 3, rec->desc);
    sql_bind_text(st, 4, tags);
    sql_bind_text(st, 5, num);
    sql_bind_text(st, 6, kw);
    if (rec->codes)
        sql_bind_blob(st, 7, rec->codes, (size_t)rec->dim);
    else
        sql_bind_blob(st, 7, rec->vector, (size_t)rec->dim * sizeof(float));
    sql_bind_int64(st, 8, (int64_t)rec->phash);
    sql_bind_int64(st, 9, rec->width);
    sql_bind_int64(st, 10, rec->height);
    sql_bind_text(st, 11, rec->box);
    if (rec->thumb)
        sql_bind_blob(st, 12, rec->thumb, rec->thumb_len);
    sql_bind_int64(st, 13, now);
    sql_bind_int64(st, 14, now);
    sql_bind_int64(st, 15, seq);
    rec->shard = shard_of_item(rec->item_id, shards);
    sql_bind_int64(st, 16, rec->shard);
    rec->seq = seq;
    if (sql_step(st) != SQL_ROW)
        goto out;
    rec->row = sql_column_int64(st, 0);
    if (sql_step(st) != SQL_DONE)
        goto out;
    if (write_side_tables(c, rec->row, rec->custom_tags, rec->num_tags, rec->keywords) != 0 ||
        write_views(c, rec) != 0)
        goto out;
    if (db_commit(c) == 0)
        rc = DB_OK;
out:
    if (rc != DB_OK)
        db_rollback(c);
    sql_finalize(st);
    free(tags);
    free(num);
    free(kw);
    return rc;
}

/* --- reads ------------------------------------------------------------------- */

/* ItemSource from the row's columns: desc, custom_tags, custom_num_tags, keywords. */
static json_t *source_json(struct sql_stmt *st, int col)
{
    json_t *src = json_object();
    const char *desc = sql_column_text(st, col);
    if (desc)
        json_object_set_new(src, "desc", json_string(desc));
    static const char *const names[] = {"custom_tags", "custom_num_tags", "keywords"};
    for (int k = 0; k < 3; k++) {
        const char *text = sql_column_text(st, col + 1 + k);
        json_t *j = text ? json_loads(text, 0, NULL) : NULL;
        if (j)
            json_object_set_new(src, names[k], j);
    }
    return src;
}

#define SOURCE_COLS "i.descr, i.custom_tags, i.custom_num_tags, i.keywords"

enum db_status items_get(struct db *db, int64_t instance, const char *item_id, int64_t *row,
                         json_t **source)
{
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st = c ? sql_prepare(c, "SELECT i.id, " SOURCE_COLS " FROM items i"
                                             " WHERE i.instance_id = ? AND i.item_id = ?")
                            : NULL;
    if (!st)
        return DB_ERROR;
    sql_bind_int64(st, 1, instance);
    sql_bind_text(st, 2, item_id);
    int s = sql_step(st);
    enum db_status rc = s == SQL_ROW ? DB_OK : s == SQL_DONE ? DB_NOT_FOUND : DB_ERROR;
    if (rc == DB_OK) {
        if (row)
            *row = sql_column_int64(st, 0);
        if (source)
            *source = source_json(st, 1);
    }
    sql_finalize(st);
    return rc;
}

/* Copies column 0 of the statement's one row and finalizes it;
 * DB_NOT_FOUND without a row or without a blob in it. */
static enum db_status read_blob(struct sql_stmt *st, uint8_t **data, size_t *len)
{
    if (!st)
        return DB_ERROR;
    int s = sql_step(st);
    enum db_status rc = s == SQL_ROW ? DB_OK : s == SQL_DONE ? DB_NOT_FOUND : DB_ERROR;
    if (rc == DB_OK) {
        const void *b = sql_column_blob(st, 0);
        int n = sql_column_bytes(st, 0);
        *data = b && n > 0 ? malloc((size_t)n) : NULL;
        if (*data) {
            memcpy(*data, b, (size_t)n);
            *len = (size_t)n;
        } else {
            rc = b && n > 0 ? DB_ERROR : DB_NOT_FOUND;
        }
    }
    sql_finalize(st);
    return rc;
}

/* `sql` with ?1 the instance and ?2 the item_id. */
static struct sql_stmt *by_item(struct db *db, const char *sql, int64_t instance,
                                const char *item_id)
{
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st = c ? sql_prepare(c, sql) : NULL;
    if (st) {
        sql_bind_int64(st, 1, instance);
        sql_bind_text(st, 2, item_id);
    }
    return st;
}

/* A blob as dim floats (vectors_decode), replacing *data. */
static enum db_status blob_to_vector(enum db_status rc, uint8_t *data, size_t len, int dim,
                                     const struct projection *pr, float **vec)
{
    *vec = NULL;
    if (rc != DB_OK)
        return rc;
    float *v = malloc((size_t)dim * sizeof *v);
    if (!v || vectors_decode(data, (int)len, dim, pr, v) != 0) {
        free(v);
        free(data);
        return DB_ERROR;
    }
    free(data);
    *vec = v;
    return DB_OK;
}

enum db_status items_vector(struct db *db, int64_t instance, const char *item_id, int dim,
                            const struct projection *pr, float **vec)
{
    uint8_t *data = NULL;
    size_t len = 0;
    enum db_status rc =
        read_blob(by_item(db, "SELECT vector FROM items WHERE instance_id = ? AND item_id = ?",
                          instance, item_id),
                  &data, &len);
    return blob_to_vector(rc, data, len, dim, pr, vec);
}

enum db_status items_vector_row(struct db *db, int64_t row, int dim, const struct projection *pr,
                                float **vec)
{
    uint8_t *data = NULL;
    size_t len = 0;
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st = c ? sql_prepare(c, "SELECT vector FROM items WHERE id = ?") : NULL;
    if (st)
        sql_bind_int64(st, 1, row);
    enum db_status rc = read_blob(st, &data, &len);
    return blob_to_vector(rc, data, len, dim, pr, vec);
}

enum db_status items_thumb(struct db *db, int64_t instance, const char *item_id, uint8_t **data,
                           size_t *len)
{
    return read_blob(by_item(db, "SELECT thumb FROM items WHERE instance_id = ? AND item_id = ?",
                             instance, item_id),
                     data, len);
}

/* Merges `patch` into the stored JSON object text; returns new text. */
static char *merge_text(const char *stored, json_t *patch)
{
    json_t *base = stored ? json_loads(stored, 0, NULL) : NULL;
    if (!json_is_object(base)) {
        json_decref(base);
        base = json_object();
    }
    json_object_update(base, patch);
    char *s = json_dumps(base, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(base);
    return s;
}

enum db_status items_update(struct db *db, int64_t instance, const char *item_id, const char *desc,
                            json_t *custom_tags, json_t *num_tags, int replace_tags)
{
    struct sql_conn *c = db_conn(db);
    if (!c)
        return DB_ERROR;
    enum db_status rc = DB_ERROR;
    struct sql_stmt *st = NULL;
    char *tags_text = NULL, *num_text = NULL;
    json_t *tags_j = NULL, *num_j = NULL, *kw_j = NULL;
    if (db_begin(c) != 0)
        return DB_ERROR;
    st = sql_prepare(c, "SELECT id, custom_tags, custom_num_tags, keywords FROM items"
                        " WHERE instance_id = ? AND item_id = ?");
    if (!st)
        goto out;
    sql_bind_int64(st, 1, instance);
    sql_bind_text(st, 2, item_id);
    int s = sql_step(st);
    if (s == SQL_DONE) {
        rc = DB_NOT_FOUND;
        goto out;
    }
    if (s != SQL_ROW)
        goto out;
    int64_t row = sql_column_int64(st, 0);
    const char *t0 = sql_column_text(st, 1);
    const char *n0 = sql_column_text(st, 2);
    const char *k0 = sql_column_text(st, 3);
    tags_text = custom_tags ? (replace_tags ? json_dumps(custom_tags, JSON_COMPACT | JSON_SORT_KEYS)
                                            : merge_text(t0, custom_tags))
                            : (t0 ? strdup(t0) : NULL);
    num_text = num_tags ? merge_text(n0, num_tags) : (n0 ? strdup(n0) : NULL);
    kw_j = k0 ? json_loads(k0, 0, NULL) : NULL;
    sql_finalize(st);
    st = NULL;
    tags_j = tags_text ? json_loads(tags_text, 0, NULL) : NULL;
    num_j = num_text ? json_loads(num_text, 0, NULL) : NULL;
    st = sql_prepare(c, desc ? "UPDATE items SET custom_tags = ?, custom_num_tags = ?,"
                               " updated_ms = ?, descr = ? WHERE id = ?"
                             : "UPDATE items SET custom_tags = ?, custom_num_tags = ?,"
                               " updated_ms = ? WHERE id = ?");
    if (!st)
        goto out;
    sql_bind_text(st, 1, tags_text);
    sql_bind_text(st, 2, num_text);
    sql_bind_int64(st, 3, now_ms());
    if (desc) {
        sql_bind_text(st, 4, desc);
        sql_bind_int64(st, 5, row);
    } else {
        sql_bind_int64(st, 4, row);
    }
    if (sql_step(st) != SQL_DONE || write_side_tables(c, row, tags_j, num_j, kw_j) != 0)
        goto out;
    if (db_commit(c) == 0)
        rc = DB_OK;
out:
    if (rc != DB_OK)
        db_rollback(c);
    sql_finalize(st);
    free(tags_text);
    free(num_text);
    json_decref(tags_j);
    json_decref(num_j);
    json_decref(kw_j);
    return rc;
}

enum db_status items_delete(struct db *db, int64_t instance, const char *item_id, int64_t *row)
{
    int64_t seq;
    return items_delete_seq(db, instance, item_id, row, &seq);
}

enum db_status items_delete_seq(struct db *db, int64_t instance, const char *item_id, int64_t *row,
                                int64_t *seq_out)
{
    struct sql_conn *c = db_conn(db);
    if (!c || db_begin(c) != 0)
        return DB_ERROR;
    int64_t seq = 0;
    enum db_status rc = find_row(c, instance, item_id, row);
    if (rc == DB_OK &&
        (bump_seq(c, instance, &seq, NULL) != 0 || delete_row(c, instance, *row, seq) != 0))
        rc = DB_ERROR;
    if (rc == DB_OK && db_commit(c) != 0)
        rc = DB_ERROR;
    if (rc != DB_OK)
        db_rollback(c);
    *seq_out = seq;
    return rc;
}

enum db_status items_filter_rows(struct db *db, int64_t instance, const struct item_filter *f,
                                 int64_t **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    struct sql_conn *c = db_conn(db);
    if (!c)
        return DB_ERROR;
    struct sqlq q = {.len = 0};
    q_add(&q, "SELECT i.id FROM items i WHERE i.instance_id = ");
    q_int(&q, instance);
    q_filter(&q, f);
    q_add(&q, " ORDER BY i.id");
    struct sql_stmt *st = q_prepare(c, &q);
    if (!st)
        return DB_ERROR;
    size_t cap = 0;
    enum db_status rc = sql_collect_int64(st, rows, n, &cap) == 0 ? DB_OK : DB_ERROR;
    if (rc != DB_OK) {
        free(*rows);
        *rows = NULL;
        *n = 0;
    }
    return rc;
}

/* Rows looked up per statement: one round trip for a page of hits instead
 * of one per hit (PostgreSQL answers each in a network round trip). */
#define META_BATCH 64

/* Fills out[k] for the rows of one batch; rows missing from the instance
 * keep item_id NULL. Short batches are padded with 0, never a row id. */
static enum db_status meta_batch(struct sql_stmt *st, int64_t instance, const int64_t *rows,
                                 size_t n, const char *collapse_key, struct item_meta *out)
{
    sql_reset(st);
    sql_bind_text(st, 1, collapse_key ? collapse_key : "");
    sql_bind_int64(st, 2, instance);
    for (size_t k = 0; k < META_BATCH; k++)
        sql_bind_int64(st, 3 + (int)k, k < n ? rows[k] : 0);
    for (size_t k = 0; k < n; k++)
        out[k].row = rows[k];
    int s;
    while ((s = sql_step(st)) == SQL_ROW) {
        int64_t id = sql_column_int64(st, 0);
        for (size_t k = 0; k < n; k++) {
            if (rows[k] != id || out[k].item_id)
                continue;
            out[k].item_id = strdup(sql_column_text(st, 1));
            out[k].source = source_json(st, 2);
            const char *cv = sql_column_text(st, 6);
            out[k].collapse_value = cv ? strdup(cv) : NULL;
            if (!out[k].item_id || !out[k].source)
                return DB_ERROR;
        }
    }
    return s == SQL_DONE ? DB_OK : DB_ERROR;
}

enum db_status items_meta_prefix(struct db *db, int64_t instance, const int64_t *rows, size_t n,
                                 size_t want, const char *collapse_key, struct item_meta **out,
                                 size_t *scanned)
{
    *scanned = 0;
    *out = calloc(n ? n : 1, sizeof **out);
    struct sql_conn *c = db_conn(db);
    if (!*out || !c)
        return DB_ERROR;
    char sql[1024];
    int len = snprintf(sql, sizeof sql,
                       "SELECT i.id, i.item_id, " SOURCE_COLS ", (SELECT value FROM item_tags t"
                       " WHERE t.item = i.id AND t.key = ?) FROM items i WHERE i.instance_id = ?"
                       " AND i.id IN (?");
    for (int k = 1; k < META_BATCH; k++)
        len += snprintf(sql + len, sizeof sql - (size_t)len, ",?");
    snprintf(sql + len, sizeof sql - (size_t)len, ")");
    struct sql_stmt *st = sql_prepare(c, sql);
    if (!st)
        return DB_ERROR;
    enum db_status rc = DB_OK;
    size_t found = 0;
    while (rc == DB_OK && *scanned < n && found < want) {
        size_t b = n - *scanned < META_BATCH ? n - *scanned : META_BATCH;
        rc = meta_batch(st, instance, rows + *scanned, b, collapse_key, *out + *scanned);
        for (size_t k = *scanned; k < *scanned + b; k++)
            found += (*out)[k].item_id != NULL;
        *scanned += b;
    }
    sql_finalize(st);
    return rc;
}

enum db_status items_meta(struct db *db, int64_t instance, const int64_t *rows, size_t n,
                          const char *collapse_key, struct item_meta **out)
{
    size_t scanned;
    return items_meta_prefix(db, instance, rows, n, n, collapse_key, out, &scanned);
}

void items_meta_free(struct item_meta *m, size_t n)
{
    if (!m)
        return;
    for (size_t i = 0; i < n; i++) {
        free(m[i].item_id);
        json_decref(m[i].source);
        free(m[i].collapse_value);
    }
    free(m);
}

static enum db_status count_query(struct sql_conn *c, struct sqlq *q, long long *total)
{
    struct sql_stmt *st = q_prepare(c, q);
    if (!st)
        return DB_ERROR;
    enum db_status rc = sql_step(st) == SQL_ROW ? DB_OK : DB_ERROR;
    *total = sql_column_int64(st, 0);
    sql_finalize(st);
    return rc;
}

/* Reads up to `limit` rows of (item_id, SOURCE_COLS, x) into *out, where
 * column 5 is the row id (listing) or the keyword score. */
enum extra_col { ROW_COL, SCORE_COL };

static enum db_status read_listing(struct sql_conn *c, struct sqlq *q, int limit,
                                   enum extra_col extra, struct item_meta **out, size_t *n)
{
    struct sql_stmt *st = q_prepare(c, q);
    if (!st)
        return DB_ERROR;
    *out = calloc((size_t)limit + 1, sizeof **out);
    enum db_status rc = *out ? DB_OK : DB_ERROR;
    int s = SQL_DONE;
    while (rc == DB_OK && (s = sql_step(st)) == SQL_ROW) {
        struct item_meta *m = &(*out)[(*n)++];
        m->item_id = strdup(sql_column_text(st, 0));
        m->source = source_json(st, 1);
        if (extra == ROW_COL)
            m->row = sql_column_int64(st, 5);
        else
            m->score = sql_column_double(st, 5);
    }
    if (rc == DB_OK && s != SQL_DONE)
        rc = DB_ERROR;
    sql_finalize(st);
    return rc;
}

enum db_status items_list(struct db *db, int64_t instance, const struct item_filter *f,
                          const char *after, int limit, struct item_meta **out, size_t *n,
                          long long *total)
{
    *out = NULL;
    *n = 0;
    struct sql_conn *c = db_conn(db);
    if (!c)
        return DB_ERROR;
    struct sqlq q = {.len = 0};
    q_add(&q, "SELECT count(*) FROM items i WHERE i.instance_id = ");
    q_int(&q, instance);
    q_filter(&q, f);
    if (count_query(c, &q, total) != DB_OK)
        return DB_ERROR;

    memset(&q, 0, sizeof q);
    q_add(&q, "SELECT i.item_id, " SOURCE_COLS ", i.id FROM items i WHERE i.instance_id = ");
    q_int(&q, instance);
    q_filter(&q, f);
    if (after) {
        q_add(&q, " AND i.item_id > ");
        q_text(&q, after);
    }
    q_add(&q, " ORDER BY i.item_id LIMIT ");
    q_int(&q, limit);
    return read_listing(c, &q, limit, ROW_COL, out, n);
}

enum db_status items_keyword_search(struct db *db, int64_t instance, json_t *keywords,
                                    const struct item_filter *f, int has_cursor, double after_score,
                                    const char *after_id, int offset, int limit,
                                    struct item_meta **out, size_t *n, long long *total)
{
    *out = NULL;
    *n = 0;
    struct sql_conn *c = db_conn(db);
    if (!c)
        return DB_ERROR;
    size_t nq = json_array_size(keywords);
    /* Scored sub-query: matched distinct keywords / query keywords. */
    struct sqlq base = {.len = 0};
    q_add(&base, "SELECT i.id AS id, i.item_id AS item_id, " SOURCE_COLS ", CAST((SELECT"
                 " count(*) FROM item_keywords k WHERE k.item = i.id AND k.keyword IN (");
    for (size_t k = 0; k < nq; k++) {
        if (k)
            q_add(&base, ",");
        q_text(&base, json_string_value(json_array_get(keywords, k)));
    }
    q_add(&base, ")) AS DOUBLE PRECISION) / ");
    q_real(&base, (double)nq);
    q_add(&base, " AS score FROM items i WHERE i.instance_id = ");
    q_int(&base, instance);
    q_filter(&base, f);

    struct sqlq cq = {.len = 0};
    q_add(&cq, "SELECT count(*) FROM (");
    q_add(&cq, base.sql);
    q_add(&cq, ") AS s WHERE score > 0");
    memcpy(cq.b, base.b, sizeof base.b[0] * (size_t)base.n);
    cq.n = base.n;
    if (count_query(c, &cq, total) != DB_OK)
        return DB_ERROR;

    struct sqlq q = {.len = 0};
    q_add(&q, "SELECT item_id, descr, custom_tags, custom_num_tags, keywords, score FROM (");
    q_add(&q, base.sql);
    memcpy(q.b, base.b, sizeof base.b[0] * (size_t)base.n);
    q.n = base.n;
    q_add(&q, ") AS s WHERE score > 0");
    if (has_cursor) {
        q_add(&q, " AND (score < ");
        q_real(&q, after_score);
        q_add(&q, " OR (score = ");
        q_real(&q, after_score);
        q_add(&q, " AND item_id > ");
        q_text(&q, after_id);
        q_add(&q, "))");
    }
    q_add(&q, " ORDER BY score DESC, item_id LIMIT ");
    q_int(&q, limit);
    q_add(&q, " OFFSET ");
    q_int(&q, offset);
    return read_listing(c, &q, limit, SCORE_COL, out, n);
}

enum db_status items_by_phash(struct db *db, int64_t instance, uint64_t phash, int64_t **rows,
                              size_t *n)
{
    *rows = NULL;
    *n = 0;
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st =
        c ? sql_prepare(c, "SELECT id FROM items WHERE instance_id = ? AND phash = ? LIMIT 64")
          : NULL;
    if (!st)
        return DB_ERROR;
    sql_bind_int64(st, 1, instance);
    sql_bind_int64(st, 2, (int64_t)phash);
    *rows = malloc(64 * sizeof **rows);
    enum db_status rc = *rows ? DB_OK : DB_ERROR;
    while (rc == DB_OK && sql_step(st) == SQL_ROW)
        (*rows)[(*n)++] = sql_column_int64(st, 0);
    sql_finalize(st);
    return rc;
}
