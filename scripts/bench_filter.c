/* bench_filter.c: cost of tag-filtered searches on an IVF index now that a
 * filter widens probing by 1/selectivity (index/vindex.c widen_for_filter):
 * latency and recall against brute force over the allowed items, per
 * selectivity, next to an unfiltered search.
 *   bench_filter [N [DIM [FACTORY]]]   (100000, 256, IVF1024,SQ8) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "index/vindex.h"

static uint64_t rs = 88172645463325252ull;
static double urand(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (double)(rs >> 11) / (double)(1ull << 53);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)atol(argv[1]) : 100000;
    int d = argc > 2 ? atoi(argv[2]) : 256;
    const char *factory = argc > 3 ? argv[3] : "IVF1024,SQ8";
    int nc = 256, k = 10, nq = 50;
    float *c = malloc((size_t)nc * d * sizeof *c), *x = malloc(n * d * sizeof *x);
    int64_t *ids = malloc(n * sizeof *ids);
    for (size_t i = 0; i < (size_t)nc * d; i++)
        c[i] = (float)(urand() - 0.5);
    for (size_t i = 0; i < n; i++) {
        const float *ci = c + (size_t)(urand() * nc) * d;
        double s = 0;
        for (int j = 0; j < d; j++) {
            float v = ci[j] + 0.15f * (float)(urand() - 0.5);
            x[i * d + j] = v;
            s += (double)v * v;
        }
        for (int j = 0; j < d; j++)
            x[i * d + j] /= (float)sqrt(s);
        ids[i] = (int64_t)i;
    }
    struct vindex_options o = {.dim = d, .exact_max = 1, .ann_factory = factory};
    struct vindex *vi;
    char err[256];
    if (vindex_create(&o, &vi, err, sizeof err) != 0)
        return fprintf(stderr, "%s\n", err), 1;
    double t0 = now();
    if (vindex_add(vi, n, ids, x) != 0)
        return fprintf(stderr, "%s\n", vindex_last_error()), 1;
    printf("%zu x %d, %s: built in %.1f s\n\n", n, d, factory, now() - t0);
    printf("| filter passes | n allowed | ms/query | recall@10 vs brute force over allowed |\n");
    printf("|---|---|---|---|\n");
    static const double sel[] = {1.0, 0.5, 0.1, 0.01, 0.001};
    int64_t *allowed = malloc(n * sizeof *allowed);
    for (size_t si = 0; si < sizeof sel / sizeof sel[0]; si++) {
        size_t na = 0, step = (size_t)(1.0 / sel[si] + 0.5);
        for (size_t i = 3 % step; i < n; i += step)
            allowed[na++] = (int64_t)i;
        double total = 0, hits = 0;
        for (int q = 0; q < nq; q++) {
            const float *qv = x + (size_t)(q * 7919 % n) * d;
            int64_t got[10], want[10];
            float gs[10], ws[10];
            int nf = 0;
            struct vindex_search_params p = {.nprobe = 100};
            if (sel[si] < 1.0)
                p.allowed = allowed, p.n_allowed = na;
            double a = now();
            vindex_search(vi, qv, k, &p, got, gs, &nf);
            total += now() - a;
            /* brute force over the allowed items */
            int nw = 0;
            for (size_t ai = 0; ai < na; ai++) {
                const float *v = x + (size_t)allowed[ai] * d;
                float s = 0;
                for (int j = 0; j < d; j++)
                    s += v[j] * qv[j];
                int pos = nw < k ? nw++ : k;
                if (pos == k && s <= ws[k - 1])
                    continue;
                if (pos == k)
                    pos = k - 1;
                while (pos > 0 && ws[pos - 1] < s) {
                    ws[pos] = ws[pos - 1], want[pos] = want[pos - 1];
                    pos--;
                }
                ws[pos] = s, want[pos] = allowed[ai];
            }
            for (int i = 0; i < nf; i++)
                for (int j = 0; j < nw; j++)
                    hits += got[i] == want[j];
        }
        printf("| %g%% | %zu | %.2f | %.3f |\n", sel[si] * 100, na, total / nq * 1000,
               hits / (nq * k));
    }
    vindex_free(vi);
    return 0;
}
