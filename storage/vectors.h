/* vectors.h: reading an instance's stored vectors, to rebuild its index,
 * and the change counter that says whether a saved index is current. */
#ifndef IMGSEARCH_VECTORS_H
#define IMGSEARCH_VECTORS_H

#include <stdint.h>
#include "storage/db.h"

/* Index ids: an item's whole-image vector has its row id; its regional
 * vectors k = 1..5 have row | k << 56, so instances without regions keep
 * plain row ids. */
#define VEC_REGIONS 5
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

/* Calls fn for batches of (index id, vector): every whole-image vector, then
 * every regional one; `dim` floats each. Stops and returns -1 if fn does, or
 * on error. */
typedef int (*vectors_batch_fn)(void *arg, size_t n, const int64_t *ids, const float *vecs);
int vectors_for_each(struct db *db, int64_t instance_id, int dim, vectors_batch_fn fn, void *arg);

/* The instance's change_seq, or -1. */
long long vectors_change_seq(struct db *db, int64_t instance_id);

#endif
