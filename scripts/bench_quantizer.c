/* bench_quantizer.c: what finding a query's nprobe nearest lists costs in an
 * IVF index of NLIST lists over 256-d compact vectors, with the flat coarse
 * quantizer (every centroid scanned: NLIST x 1 KiB a query) and with an
 * HNSW32 one (what index/vindex_regrow.c uses past 16384 lists). This is the
 * part of an IVF search that grows with the partition, where the list scan
 * shrinks with it; docs/benchmarks.md puts the two together for 10M items.
 *
 * Centroids: unit vectors from a two-level Gaussian mixture (clustered like
 * k-means centroids of real descriptors); queries: fresh draws near them.
 * Searched one at a time on one thread, through index/vindex.c (the exact
 * tier for flat, an IDMap2,HNSW32 ANN index for HNSW). Prints per-query
 * p50/p99 and how many of the true nprobe nearest lists HNSW finds.
 *
 * usage: bench_quantizer [--nlist 4096,16384,65536] [--ef 32,64,128] [--nprobe 32]
 *                        [--queries 2000] */
#include "index/vindex.h"
#include "scripts/bench_util.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIM 256
#define NSUPER 256

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

struct timing {
    double p50, p99;
};

static struct timing run(struct vindex *vi, const float *q, int nq, int k, int64_t *ids)
{
    double *ms = malloc((size_t)nq * sizeof *ms);
    float *sc = malloc((size_t)k * sizeof *sc);
    struct vindex_search_params p = {0};
    for (int i = 0; i < nq; i++) {
        int nf = 0;
        double t0 = now_ms();
        if (vindex_search(vi, q + (size_t)i * DIM, k, &p, ids + (size_t)i * k, sc, &nf) != 0) {
            fprintf(stderr, "search: %s\n", vindex_last_error());
            exit(1);
        }
        ms[i] = now_ms() - t0;
    }
    qsort(ms, (size_t)nq, sizeof *ms, cmp_double);
    struct timing t = {ms[nq / 2], ms[nq * 99 / 100]};
    free(ms);
    free(sc);
    return t;
}

int main(int argc, char **argv)
{
    int nlists[8] = {4096, 16384, 65536}, n_nl = 3, nprobe = 32, nq = 2000;
    int efs[8] = {32, 64, 128}, n_ef = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        int *arr = NULL, *cnt = NULL;
        if (!strcmp(argv[i], "--nlist"))
            arr = nlists, cnt = &n_nl;
        else if (!strcmp(argv[i], "--ef"))
            arr = efs, cnt = &n_ef;
        else if (!strcmp(argv[i], "--nprobe"))
            nprobe = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--queries"))
            nq = atoi(argv[i + 1]);
        if (arr) {
            *cnt = 0;
            for (char *t = strtok(argv[i + 1], ","); t && *cnt < 8; t = strtok(NULL, ","))
                arr[(*cnt)++] = atoi(t);
        }
    }
    uint64_t s = 7;
    float *super = malloc((size_t)NSUPER * DIM * sizeof *super);
    for (size_t j = 0; j < (size_t)NSUPER * DIM; j++)
        super[j] = gauss(&s);
    printf("coarse quantizer: %d-d, nprobe %d, %d queries one at a time, 1 thread; HNSW32 at "
           "efSearch = ef (its recall: the share of the true %d nearest lists it returns)\n\n",
           DIM, nprobe, nq, nprobe);
    printf("| lists | flat p50 / p99 ms | HNSW32 ef | HNSW32 p50 / p99 ms | HNSW32 recall | "
           "HNSW32 build s |\n| --- | --- | --- | --- | --- | --- |\n");
    for (int li = 0; li < n_nl; li++) {
        int nl = nlists[li];
        float *c = malloc((size_t)nl * DIM * sizeof *c), *q = malloc((size_t)nq * DIM * sizeof *q);
        int64_t *ids = malloc((size_t)nl * sizeof *ids);
        for (int i = 0; i < nl; i++) {
            const float *sp = super + (size_t)(rng_next(&s) % NSUPER) * DIM;
            for (int j = 0; j < DIM; j++)
                c[(size_t)i * DIM + j] = sp[j] + 0.8f * gauss(&s);
            bench_normalise(c + (size_t)i * DIM, DIM);
            ids[i] = i;
        }
        for (int i = 0; i < nq; i++) {
            const float *ci = c + (size_t)(rng_next(&s) % (uint64_t)nl) * DIM;
            for (int j = 0; j < DIM; j++)
                q[(size_t)i * DIM + j] = ci[j] + 0.05f * gauss(&s);
            bench_normalise(q + (size_t)i * DIM, DIM);
        }
        char err[256];
        struct vindex *flat = NULL, *hnsw = NULL;
        struct vindex_options fo = {.dim = DIM, .exact_max = 1L << 40, .ann_factory = "HNSW32"};
        struct vindex_options ho = {.dim = DIM, .exact_max = 0, .ann_factory = "HNSW32"};
        if (vindex_create(&fo, &flat, err, sizeof err) != 0 ||
            vindex_create(&ho, &hnsw, err, sizeof err) != 0) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        vindex_add(flat, (size_t)nl, ids, c);
        double t0 = now_ms();
        if (vindex_add(hnsw, (size_t)nl, ids, c) != 0) { /* switches: builds the graph */
            fprintf(stderr, "hnsw: %s\n", vindex_last_error());
            return 1;
        }
        double build_s = (now_ms() - t0) / 1e3;
        int64_t *tf = malloc((size_t)nq * nprobe * sizeof *tf);
        run(flat, q, nq < 200 ? nq : 200, nprobe, tf); /* warm-up */
        struct timing f = run(flat, q, nq, nprobe, tf);
        for (int e = 0; e < n_ef; e++) {
            int k = nprobe;
            if (vindex_set_param(hnsw, "efSearch", efs[e]) != 0) {
                fprintf(stderr, "efSearch: %s\n", vindex_last_error());
                return 1;
            }
            int64_t *th = malloc((size_t)nq * k * sizeof *th);
            run(hnsw, q, nq < 200 ? nq : 200, k, th);
            struct timing h = run(hnsw, q, nq, k, th);
            long hit = 0;
            for (int i = 0; i < nq; i++)
                for (int a = 0; a < nprobe; a++)
                    for (int b = 0; b < nprobe; b++)
                        if (th[(size_t)i * k + a] == tf[(size_t)i * nprobe + b]) {
                            hit++;
                            break;
                        }
            printf("| %d | %.3f / %.3f | %d | %.3f / %.3f | %.3f | %.1f |\n", nl, f.p50, f.p99,
                   efs[e], h.p50, h.p99, (double)hit / ((double)nq * nprobe), build_s);
            fflush(stdout);
            free(th);
        }
        vindex_free(flat);
        vindex_free(hnsw);
        free(c);
        free(q);
        free(ids);
        free(tf);
    }
    free(super);
    return 0;
}
