/* ann_recall.c: recall@10 of the ANN index against exact search on REAL
 * descriptors (a file of float32 vectors from scripts/embed_dump.c), through
 * the same vindex the server uses. The first N vectors are the database, the
 * next Q the queries.
 *
 * usage: ann_recall VECTORS.f32 N Q FACTORY NPROBE MAX_SCAN [NPROBE MAX_SCAN ...] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "index/extract.h"
#include "index/vindex.h"

#define K 10

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 7 || (argc - 5) % 2 != 0) {
        fprintf(stderr, "usage: %s VECTORS.f32 N Q FACTORY NPROBE MAX_SCAN [...]\n", argv[0]);
        return 2;
    }
    long n = atol(argv[2]), q = atol(argv[3]);
    const int d = EXTRACT_DIM;
    float *v = malloc((size_t)(n + q) * d * sizeof *v);
    FILE *f = fopen(argv[1], "rb");
    if (!v || !f || fread(v, sizeof *v, (size_t)(n + q) * d, f) != (size_t)(n + q) * d) {
        fprintf(stderr, "cannot read %ld vectors from %s\n", n + q, argv[1]);
        return 1;
    }
    fclose(f);
    char err[256];
    struct vindex *exact, *ann;
    struct vindex_options eo = {.dim = d, .exact_max = n + 1, .ann_factory = argv[4]};
    struct vindex_options ao = {.dim = d, .exact_max = n / 2, .ann_factory = argv[4]};
    if (vindex_create(&eo, &exact, err, sizeof err) || vindex_create(&ao, &ann, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int64_t *ids = malloc((size_t)n * sizeof *ids);
    for (long i = 0; i < n; i++)
        ids[i] = i;
    double t0 = now_ms();
    /* In batches, as the server adds items; the ANN index trains on the
     * vectors it holds when it crosses exact_max (half of N). */
    for (long i = 0; i < n; i += 5000) {
        long m = n - i < 5000 ? n - i : 5000;
        if (vindex_add(exact, (size_t)m, ids + i, v + (size_t)i * d) ||
            vindex_add(ann, (size_t)m, ids + i, v + (size_t)i * d)) {
            fprintf(stderr, "add: %s\n", vindex_last_error());
            return 1;
        }
    }
    printf("database %ld real descriptors, %ld queries, factory %s, exact=%d/%d, built in %.0f s\n",
           n, q, argv[4], vindex_is_exact(exact), vindex_is_exact(ann), (now_ms() - t0) / 1e3);
    int64_t *truth = malloc((size_t)q * K * sizeof *truth);
    float sc[K];
    int found;
    for (long i = 0; i < q; i++)
        vindex_search(exact, v + (size_t)(n + i) * d, K, NULL, truth + i * K, sc, &found);
    printf("| nprobe | max_scan_num | recall@10 | p50 ms | p99 ms |\n|---|---|---|---|---|\n");
    double *lat = malloc((size_t)q * sizeof *lat);
    for (int a = 5; a + 1 < argc; a += 2) {
        struct vindex_search_params p = {.nprobe = atoi(argv[a]), .max_scan = atol(argv[a + 1])};
        long hit = 0;
        for (long i = 0; i < q; i++) {
            int64_t got[K];
            double s0 = now_ms();
            vindex_search(ann, v + (size_t)(n + i) * d, K, &p, got, sc, &found);
            lat[i] = now_ms() - s0;
            for (int x = 0; x < found; x++)
                for (int y = 0; y < K; y++)
                    hit += got[x] == truth[i * K + y];
        }
        qsort(lat, (size_t)q, sizeof *lat, cmp_double);
        printf("| %s | %s | %.3f | %.2f | %.2f |\n", argv[a], argv[a + 1],
               (double)hit / (double)(q * K), lat[q / 2], lat[q * 99 / 100]);
    }
    vindex_free(exact);
    vindex_free(ann);
    free(v);
    free(ids);
    free(truth);
    free(lat);
    return 0;
}
