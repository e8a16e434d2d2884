/* rerank.h: exact re-scoring of an ANN index's candidates. A PQ index keeps
 * a few dozen bytes per vector in RAM and orders its candidates by those
 * lossy codes; the exact vectors (for a compact instance, the int8 codes in
 * SQLite) re-score the top candidates, so the final order is the exact one
 * whenever the true top k are among the candidates. */
#ifndef IMGSEARCH_RERANK_H
#define IMGSEARCH_RERANK_H

#include <stddef.h>
#include <stdint.h>

/* The exact vectors of n ids: dim floats each into vecs (row i for ids[i]);
 * found[i] = 0 for an id it does not hold (a row deleted since the index
 * answered), 1 otherwise. Returns 0, or -1 on failure (the search fails).
 * Called concurrently from searching threads, with no index lock held. */
typedef int (*rerank_fetch_fn)(void *arg, size_t n, const int64_t *ids, float *vecs,
                               unsigned char *found);

/* Re-scores the n candidates in ids/scores by the inner product of `query`
 * with their fetched vectors, drops those not found, and leaves the best k
 * first (ties: smaller id first). Returns how many are left (<= k), or -1
 * with the reason in *why (a static string). */
int rerank_exact(rerank_fetch_fn fetch, void *arg, int dim, const float *query, int n, int64_t *ids,
                 float *scores, int k, const char **why);

#endif
