/* vectors.h: reading an instance's stored vectors, to rebuild its index,
 * and the change counter that says whether a saved index is current. */
#ifndef IMGSEARCH_VECTORS_H
#define IMGSEARCH_VECTORS_H

#include <stdint.h>
#include "storage/db.h"

struct projection;

/* Index ids: an item's whole-image vector has its row id; its extra views
 * have row | k << 56, so whole-image ids stay plain row ids:
 *   k = 1      centre window (0.6 x 0.6 of the sides): "views" and "regions"
 *   k = 2..5   the four corner windows: "regions" only
 *   k = 6      low-resolution copy: "views"
 *   k = 7      grey contrast-stretched copy: "views"; only grey queries
 *              are compared with it */
#define VEC_REGIONS 5
#define VEC_K_CENTRE 1
#define VEC_K_LOWRES 6
#define VEC_K_GREY 7
#define VEC_KINDS 8 /* k = 0..7 */
#define VEC_K_SHIFT 56
static inline int64_t vec_id(int64_t row, int k)
{
    return row | ((int64_t)k << VEC_K_SHIFT);
}
static inline int64_t vec_row(int64_t id)
{
    return id & (((int64_t)1 << VEC_K_SHIFT) - 1);
}
static inline int vec_k(int64_t id)
{
    return (int)(id >> VEC_K_SHIFT);
}

/* A stored vector blob: `dim` float32, or for a compact instance (pr not
 * NULL, dim == pr->out_dim) `dim` int8 codes, decoded here to `dim` floats.
 * A compact instance's row may still hold pr->in_dim floats (a conversion
 * in progress, storage/compaction.h): it is projected and encoded here,
 * with vectors_code_rows, to exactly what its codes will decode to. 0 ok; -1
 * when the blob has another size (a vector of the other mode). */
int vectors_decode(const void *blob, int bytes, int dim, const struct projection *pr, float *out);

/* The int8 codes (n x pr->out_dim) of n float vectors (n x pr->in_dim), in
 * one matrix product (projection_apply_rows): what the conversion writes
 * and what every reader computes for a row still float, the same bytes
 * whether a row is coded alone or in a batch. 0 ok; -1 out of memory. */
int vectors_code_rows(const struct projection *pr, size_t n, const float *x, int8_t *q);

/* Calls fn for batches of (index id, vector): every whole-image vector, then
 * every regional one; `dim` floats each (decoded through pr when not NULL).
 * Stops and returns -1 if fn does, or on error. */
typedef int (*vectors_batch_fn)(void *arg, size_t n, const int64_t *ids, const float *vecs);
int vectors_for_each(struct db *db, int64_t instance_id, int dim, const struct projection *pr,
                     vectors_batch_fn fn, void *arg);

/* Like vectors_for_each, for the items inserted by changes with seq > since
 * (the replay of a snapshot taken at `since`). */
int vectors_for_each_since(struct db *db, int64_t instance_id, int64_t since, int dim,
                           const struct projection *pr, vectors_batch_fn fn, void *arg);

/* Either of the above for one shard's items (shard -1: all of them; since
 * -1: every item): a shard's index is built and replayed from these. */
int vectors_for_each_shard(struct db *db, int64_t instance_id, int shard, int64_t since, int dim,
                           const struct projection *pr, vectors_batch_fn fn, void *arg);

/* The stored vectors of n index ids (vec_id: row and kind k) of an
 * instance, decoded to dim floats each into out (row i for ids[i]), for an
 * ANN index's exact re-rank (index/rerank.h). found[i] = 0 when the row or
 * its view is gone (deleted since the index answered) or has another size.
 * Two statements (one per table, IN lists of row ids), not one per id: a
 * B-tree descent per whole image and per item with views on SQLite, two
 * round trips on PostgreSQL. 0, or -1 on a database error. */
int vectors_fetch(struct db *db, int64_t instance_id, size_t n, const int64_t *ids, int dim,
                  const struct projection *pr, float *out, unsigned char *found);

/* Row ids touched by changes with seq > since: tombstoned rows and rows
 * inserted after it (malloc'd, unsorted). Their vectors are removed from a
 * snapshot before the replay adds the live ones, so a replay is idempotent. */
int vectors_changed_rows(struct db *db, int64_t instance_id, int64_t since, int64_t **rows,
                         size_t *n);

/* change_seq and replay_floor: the change log is complete for seq > floor. */
int vectors_log_state(struct db *db, int64_t instance_id, int64_t *change_seq,
                      int64_t *replay_floor);

/* After a durable snapshot at `upto`: drops the tombstones it covers and
 * raises replay_floor to it, so no older snapshot is ever replayed. */
int vectors_prune_log(struct db *db, int64_t instance_id, int64_t upto);

/* The kinds k of an item's vectors for an instance with these flags, k = 0
 * first then ascending; returns how many. */
int vectors_kinds(int regions, int views, int ks[VEC_KINDS]);

/* How many vectors an item of the instance has (1 when unknown). */
int vectors_per_item(struct db *db, int64_t instance_id);

/* The digest of the projection the instance's vectors are int8 codes in
 * (instances.projection): *digest NULL for float vectors, else malloc'd. */
enum db_status vectors_projection(struct db *db, int64_t instance_id, char **digest);

/* The instance's number of shards (instances.shards), or -1. */
int vectors_shards(struct db *db, int64_t instance_id);

/* The instance's change_seq, or -1. */
long long vectors_change_seq(struct db *db, int64_t instance_id);

#endif
