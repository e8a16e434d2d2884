/* bench_search.c: vector search benchmark for index/vindex (run through
 * scripts/bench-search, which builds it and writes docs/bench/search.md).
 *
 * Synthetic data: L2-normalised vectors from a two-level Gaussian mixture
 * (256 super-clusters, 16384 sub-clusters, per-point noise), generated chunk
 * by chunk from fixed seeds (--noise sets how loose the sub-clusters are;
 * 1.5 is easy for IVF, 3 is close to unclustered at this dimension) so 1M x 1792-d never has to sit
 * in memory as floats. Ground truth (exact top-10 by inner product) for the query sample is
 * computed with OpenBLAS sgemm while the chunks go by. Queries are fresh draws from the same
 * mixture, searched one at a time (as the server does). */
#include "index/vindex.h"
#include "scripts/bench_util.h"

#include <faiss/c_api/utils/distances_c.h>

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define K 10
#define NSUPER 256
#define NSUB 16384
#define CHUNK 10000

struct gen {
    int dim;
    float *sub; /* NSUB sub-cluster centres */
};

static int dim = 1792;
static float noise = 2.0f; /* per-point noise around its sub-cluster centre */

/* centre + sigma * noise of unit expected norm, normalised. */
static void around(const float *centre, float sigma, uint64_t *s, float *out)
{
    float scale = sigma / sqrtf((float)dim);
    for (int j = 0; j < dim; j++)
        out[j] = (centre ? centre[j] : 0.0f) + scale * gauss(s);
    bench_normalise(out, dim);
}

static void gen_init(struct gen *g)
{
    uint64_t s = 0x1234567887654321ull;
    float *super = malloc((size_t)NSUPER * dim * sizeof *super);
    g->sub = malloc((size_t)NSUB * dim * sizeof *g->sub);
    for (int i = 0; i < NSUPER; i++)
        around(NULL, 1.0f, &s, super + (size_t)i * dim);
    for (int i = 0; i < NSUB; i++)
        around(super + (rng_next(&s) % NSUPER) * dim, 1.0f, &s, g->sub + (size_t)i * dim);
    free(super);
}

/* Points of one chunk (or the query set): deterministic from `seed`. */
static void gen_points(const struct gen *g, uint64_t seed, size_t n, float *out)
{
    uint64_t s = 0x9e3779b97f4a7c15ull ^ (seed * 0xbf58476d1ce4e5b9ull);
    for (size_t i = 0; i < n; i++)
        around(g->sub + (rng_next(&s) % NSUB) * dim, noise, &s, out + i * dim);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(double *v, int n, double p)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    int i = (int)ceil(p * n) - 1;
    return v[i < 0 ? 0 : (i >= n ? n - 1 : i)];
}

/* Exact top-K per query, updated chunk by chunk. */
struct truth {
    int nq;
    int64_t *ids; /* nq * K, best first */
    float *s;
    float *buf; /* nq * CHUNK sgemm output */
};

static void truth_init(struct truth *t, int nq)
{
    t->nq = nq;
    t->ids = malloc((size_t)nq * K * sizeof *t->ids);
    t->s = malloc((size_t)nq * K * sizeof *t->s);
    t->buf = malloc((size_t)nq * CHUNK * sizeof *t->buf);
    for (int i = 0; i < nq * K; i++)
        t->ids[i] = -1, t->s[i] = -INFINITY;
}

static void truth_free(struct truth *t)
{
    free(t->ids);
    free(t->s);
    free(t->buf);
}

static void truth_update(struct truth *t, const float *q, const float *x, const int64_t *ids,
                         size_t n)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, t->nq, (int)n, dim, 1.0f, q, dim, x, dim,
                0.0f, t->buf, (int)n);
    for (int a = 0; a < t->nq; a++) {
        float *s = t->s + a * K;
        int64_t *id = t->ids + a * K;
        for (size_t i = 0; i < n; i++) {
            float v = t->buf[(size_t)a * n + i];
            if (v <= s[K - 1])
                continue;
            int p = K - 1;
            while (p > 0 && s[p - 1] < v) {
                s[p] = s[p - 1];
                id[p] = id[p - 1];
                p--;
            }
            s[p] = v;
            id[p] = ids[i];
        }
    }
}

/* One-at-a-time searches of all queries: latency percentiles, recall@K. */
static void run_queries(struct vindex *vi, const struct truth *t, const float *q,
                        const struct vindex_search_params *p, const char *label)
{
    double *lat = malloc((size_t)t->nq * sizeof *lat);
    int64_t got[K];
    float gs[K];
    int hits = 0, total = 0, nf;
    for (int a = 0; a < t->nq; a++) {
        double t0 = now_ms();
        if (vindex_search(vi, q + (size_t)a * dim, K, p, got, gs, &nf) != 0) {
            fprintf(stderr, "search: %s\n", vindex_last_error());
            exit(1);
        }
        lat[a] = now_ms() - t0;
        for (int i = 0; i < K; i++)
            for (int j = 0; j < nf; j++)
                hits += got[j] == t->ids[a * K + i];
        total += K;
    }
    double p50 = pct(lat, t->nq, 0.5), p99 = pct(lat, t->nq, 0.99);
    if (p->allowed) // the ground truth is unfiltered
        printf("| %s | %d | %.2f | %.2f | n/a |\n", label, t->nq, p50, p99);
    else
        printf("| %s | %d | %.2f | %.2f | %.3f |\n", label, t->nq, p50, p99, (double)hits / total);
    fflush(stdout);
    free(lat);
}

struct run {
    long n;
    long exact_max;
    const char *factory;
    int nq;
};

/* Builds one index of r->n items, then searches it with each setting. */
static void bench_one(const struct gen *g, const struct run *r, const float *q, int blas_variant)
{
    struct vindex_options o = {.dim = dim, .exact_max = r->exact_max, .ann_factory = r->factory};
    struct vindex *vi = NULL;
    char err[512];
    struct truth t;
    float *x = malloc((size_t)CHUNK * dim * sizeof *x);
    int64_t *ids = malloc(CHUNK * sizeof *ids);
    double add_ms = 0, switch_ms = 0, gen_ms = 0, t0;

    if (vindex_create(&o, &vi, err, sizeof err) != 0) {
        fprintf(stderr, "create: %s\n", err);
        exit(1);
    }
    truth_init(&t, r->nq);
    long rss0 = rss_kb();
    for (long off = 0; off < r->n; off += CHUNK) {
        size_t n = (size_t)(r->n - off < CHUNK ? r->n - off : CHUNK);
        t0 = now_ms();
        gen_points(g, (uint64_t)off / CHUNK + 1, n, x);
        for (size_t i = 0; i < n; i++)
            ids[i] = off + (long)i;
        truth_update(&t, q, x, ids, n);
        gen_ms += now_ms() - t0;
        int was_exact = vindex_is_exact(vi);
        t0 = now_ms();
        // Batches of 1000, as an import would call it.
        for (size_t b = 0; b < n; b += 1000) {
            size_t m = n - b < 1000 ? n - b : 1000;
            if (vindex_add(vi, m, ids + b, x + b * dim) != 0) {
                fprintf(stderr, "add: %s\n", vindex_last_error());
                exit(1);
            }
            if (was_exact && !vindex_is_exact(vi)) {
                switch_ms = now_ms() - t0;
                was_exact = 0;
                t0 = now_ms();
            }
        }
        add_ms += now_ms() - t0;
    }
    long rss1 = rss_kb();
    printf("\n### %ld items, %s\n\n", r->n,
           vindex_is_exact(vi) ? "exact (IDMap2,Flat)" : r->factory);
    printf("- add: %.0f items/s (excluding the switch); data generation + ground truth %.1f s\n",
           (r->n - (switch_ms > 0 ? r->exact_max : 0)) / (add_ms / 1e3), gen_ms / 1e3);
    if (switch_ms > 0)
        printf("- switch to ANN at %ld items (train %s on them + move them): %.1f s\n",
               r->exact_max, r->factory, switch_ms / 1e3);
    printf("- RSS: +%.0f MB, %.0f bytes/item\n\n", (rss1 - rss0) / 1024.0,
           (rss1 - rss0) * 1024.0 / r->n);
    printf("| search | queries | p50 ms | p99 ms | recall@%d |\n|---|---|---|---|---|\n", K);

    struct vindex_search_params p = {.nprobe = 100, .max_scan = 10000};
    if (vindex_is_exact(vi)) {
        run_queries(vi, &t, q, &p, "exact");
        if (blas_variant) { // vindex sets 1; FAISS's own default is 20
            faiss_set_distance_compute_blas_threshold(20);
            run_queries(vi, &t, q, &p, "exact, FAISS default blas_threshold=20");
            faiss_set_distance_compute_blas_threshold(1);
        }
    } else {
        run_queries(vi, &t, q, &p, "nprobe 100, max_scan 10000 (API defaults)");
        struct vindex_search_params v[] = {
            {.nprobe = 100, .max_scan = 0},     {.nprobe = 32, .max_scan = 10000},
            {.nprobe = 200, .max_scan = 20000}, {.nprobe = 16, .max_scan = 0},
            {.nprobe = 64, .max_scan = 0},      {.nprobe = 1 << 20, .max_scan = 0},
        };
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
            if (v[i].nprobe == 1 << 20 && r->n > 200000)
                continue; // a full scan per query: too slow at 1M
            char label[64];
            if (v[i].nprobe == 1 << 20) // every list: what the quantiser alone loses
                snprintf(label, sizeof label, "all lists, max_scan 0");
            else
                snprintf(label, sizeof label, "nprobe %d, max_scan %ld", v[i].nprobe,
                         v[i].max_scan);
            run_queries(vi, &t, q, &v[i], label);
        }
    }
    // A tag filter matching 10% of the items.
    size_t na = (size_t)(r->n / 10);
    int64_t *allowed = malloc(na * sizeof *allowed);
    for (size_t i = 0; i < na; i++)
        allowed[i] = (int64_t)i * 10;
    p.allowed = allowed;
    p.n_allowed = na;
    run_queries(vi, &t, q, &p, "filter: 10% of ids allowed, defaults");
    // A selective filter (50 ids): exercises the full-scan fallback on ANN.
    p.n_allowed = 50;
    run_queries(vi, &t, q, &p, "filter: 50 ids allowed, defaults");
    free(allowed);
    vindex_free(vi);
    truth_free(&t);
    free(x);
    free(ids);
}

int main(int argc, char **argv)
{
    int quick = 0, skip_exact = 0;
    long exact_only = 0;                   // one exact run of this many vectors, nothing else
    const char *factories = "IVF1024,SQ8"; // each extra factory adds 5-10 min at 1M
    long big = 1000000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--ann-only"))
            skip_exact = 1;
        else if (!strcmp(argv[i], "--factories") && i + 1 < argc)
            factories = argv[++i];
        else if (!strcmp(argv[i], "--exact-only") && i + 1 < argc)
            exact_only = atol(argv[++i]);
        else if (!strcmp(argv[i], "--big") && i + 1 < argc)
            big = atol(argv[++i]);
        else if (!strcmp(argv[i], "--noise") && i + 1 < argc)
            noise = (float)atof(argv[++i]);
        else if (!strcmp(argv[i], "--dim") && i + 1 < argc)
            dim = atoi(argv[++i]);
        else {
            fprintf(stderr,
                    "usage: %s [--quick] [--ann-only] [--exact-only N] [--factories 'F1;F2'] "
                    "[--big N] [--dim D] [--noise S]\n",
                    argv[0]);
            return 2;
        }
    }
    struct gen g;
    gen_init(&g);
    int nq = quick ? 50 : 200;
    float *q = malloc((size_t)nq * dim * sizeof *q);
    gen_points(&g, 0xfeedull, (size_t)nq, q);
    long exact_max = quick ? 30000 : 100000;
    if (quick)
        big = big < 100000 ? big : 100000;

    printf("dim %d, k %d, %d queries one at a time (1 OpenMP thread per search)\n", dim, K, nq);
    if (exact_only > 0) {
        struct run r = {exact_only, exact_only, "IVF1024,SQ8", nq};
        bench_one(&g, &r, q, 1);
        free(q);
        free(g.sub);
        return 0;
    }
    struct run exact_runs[] = {{10000, exact_max, "IVF1024,SQ8", nq},
                               {exact_max, exact_max, "IVF1024,SQ8", nq}};
    for (int i = 0; i < 2 && !skip_exact; i++)
        bench_one(&g, &exact_runs[i], q, 1);
    char list[512];
    snprintf(list, sizeof list, "%s", factories);
    for (char *save = NULL, *f = strtok_r(list, ";", &save); f; f = strtok_r(NULL, ";", &save)) {
        struct run ann = {big, exact_max, f, quick ? 50 : 100};
        bench_one(&g, &ann, q, 0);
    }
    free(q);
    free(g.sub);
    return 0;
}
