/* rerank.c: exact re-scoring of ANN candidates (rerank.h). The candidates are
 * few (the re-rank depth, 100-200), so a plain dot product and qsort are
 * enough: the fetch (SQLite lookups) is what costs. */
#include "index/rerank.h"

#include <stdlib.h>

struct cand {
    float score;
    int64_t id;
};

/* Best first; equal scores by id so results do not depend on fetch order. */
static int cmp_cand(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return (x->id > y->id) - (x->id < y->id);
}

static float dot(const float *a, const float *b, int dim)
{
    float s = 0;
    for (int j = 0; j < dim; j++)
        s += a[j] * b[j];
    return s;
}

int rerank_exact(rerank_fetch_fn fetch, void *arg, int dim, const float *query, int n, int64_t *ids,
                 float *scores, int k, const char **why)
{
    if (n <= 0)
        return 0;
    float *vecs = malloc((size_t)n * (size_t)dim * sizeof *vecs);
    unsigned char *found = calloc((size_t)n, 1);
    struct cand *c = malloc((size_t)n * sizeof *c);
    int m = -1;
    if (!vecs || !found || !c) {
        *why = "out of memory";
        goto out;
    }
    if (fetch(arg, (size_t)n, ids, vecs, found) != 0) {
        *why = "cannot read the vectors to re-rank";
        goto out;
    }
    m = 0;
    for (int i = 0; i < n; i++)
        if (found[i])
            c[m++] = (struct cand){dot(query, vecs + (size_t)i * (size_t)dim, dim), ids[i]};
    qsort(c, (size_t)m, sizeof *c, cmp_cand);
    if (m > k)
        m = k;
    for (int i = 0; i < m; i++) {
        ids[i] = c[i].id;
        scores[i] = c[i].score;
    }
out:
    free(vecs);
    free(found);
    free(c);
    return m;
}
