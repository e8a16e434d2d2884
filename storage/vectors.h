/* vectors.h: reading an instance's stored vectors, to rebuild its index,
 * and the change counter that says whether a saved index is current. */
#ifndef IMGSEARCH_VECTORS_H
#define IMGSEARCH_VECTORS_H

#include <stdint.h>
#include "storage/db.h"

/* Calls fn for batches of (row id, vector) in row-id order; `dim` floats
 * each. Stops and returns -1 if fn does, or on error. */
typedef int (*vectors_batch_fn)(void *arg, size_t n, const int64_t *ids, const float *vecs);
int vectors_for_each(struct db *db, int64_t instance_id, int dim, vectors_batch_fn fn, void *arg);

/* The instance's change_seq, or -1. */
long long vectors_change_seq(struct db *db, int64_t instance_id);

#endif
