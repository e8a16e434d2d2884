/* ann_recall.c: recall@10 of the ANN index against exact search on REAL
 * descriptors (a file of float32 vectors from scripts/embed_dump.c), through
 * the same vindex the server uses. The first N vectors are the database, the
 * next Q the queries.
 *
 * With VIEWS set to a file of scripts/embed_dump.c --views (3 vectors per
 * item: centre window, 96 px copy, grey copy), each item is indexed 4 times
 * as on an instance with views, and recall is measured on items: both
 * indexes are asked for 4 x 10 vectors, views count 0.02 less, grey views
 * are skipped (the server's fold for a plain query), and the best 10 items
 * are compared.
 *
 * usage: [VIEWS=views.f32] ann_recall VECTORS.f32 N Q FACTORY NPROBE MAX_SCAN [...] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "index/extract.h"
#include "index/vindex.h"
#include "storage/vectors.h"

#define K 10

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static const int view_k[3] = {VEC_K_CENTRE, VEC_K_LOWRES, VEC_K_GREY};
static int per_item = 1;

/* The best K items (row ids, into out[K]) of a search for K * per_item
 * vectors, folded as server/search.c does for a plain query. */
static int search_items(struct vindex *vi, const float *q, const struct vindex_search_params *p,
                        int64_t *res)
{
    int64_t ids[K * 4], out[K * 4];
    float sc[K * 4];
    double best[K * 4];
    int found = 0, n = 0;
    if (vindex_search(vi, q, K * per_item, p, ids, sc, &found) != 0)
        return 0;
    for (int i = 0; i < found; i++) {
        if (vec_k(ids[i]) == VEC_K_GREY)
            continue;
        int64_t row = vec_row(ids[i]);
        double s = sc[i] - (vec_k(ids[i]) ? 0.02 : 0);
        int j;
        for (j = 0; j < n && out[j] != row; j++)
            ;
        if (j == n) {
            out[n] = row;
            best[n++] = s;
        } else if (s > best[j])
            best[j] = s;
    }
    for (int a = 0; a < n; a++) /* best first, then keep K */
        for (int b = a + 1; b < n; b++)
            if (best[b] > best[a]) {
                double t = best[a];
                int64_t r = out[a];
                best[a] = best[b];
                out[a] = out[b];
                best[b] = t;
                out[b] = r;
            }
    n = n < K ? n : K;
    memcpy(res, out, (size_t)n * sizeof *res);
    return n;
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
    float *views = NULL;
    if (getenv("VIEWS")) {
        per_item = 4;
        views = malloc((size_t)n * 3 * d * sizeof *views);
        f = fopen(getenv("VIEWS"), "rb");
        if (!views || !f ||
            fread(views, sizeof *views, (size_t)n * 3 * d, f) != (size_t)n * 3 * d) {
            fprintf(stderr, "cannot read %ld x 3 view vectors from %s\n", n, getenv("VIEWS"));
            return 1;
        }
        fclose(f);
    }
    char err[256];
    struct vindex *exact, *ann;
    struct vindex_options eo = {.dim = d, .exact_max = n * per_item + 1, .ann_factory = argv[4]};
    struct vindex_options ao = {.dim = d, .exact_max = n * per_item / 2, .ann_factory = argv[4]};
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
    /* The views after the whole images, as an instance's rebuild adds them. */
    int64_t *vids = malloc(5000 * sizeof *vids);
    float *vv = malloc((size_t)5000 * d * sizeof *vv);
    for (int k = 0; views && k < 3; k++)
        for (long i = 0; i < n; i += 5000) {
            long m = n - i < 5000 ? n - i : 5000;
            for (long j = 0; j < m; j++) {
                vids[j] = vec_id(i + j, view_k[k]);
                memcpy(vv + (size_t)j * d, views + ((size_t)(i + j) * 3 + k) * d, d * sizeof *vv);
            }
            if (vindex_add(exact, (size_t)m, vids, vv) || vindex_add(ann, (size_t)m, vids, vv)) {
                fprintf(stderr, "add views: %s\n", vindex_last_error());
                return 1;
            }
        }
    free(vids);
    free(vv);
    free(views);
    printf("database %ld real descriptors%s, %ld queries, factory %s, exact=%d/%d, built in "
           "%.0f s\n",
           n, per_item > 1 ? " x 4 views (recall on items)" : "", q, argv[4],
           vindex_is_exact(exact), vindex_is_exact(ann), (now_ms() - t0) / 1e3);
    int64_t *truth = malloc((size_t)q * K * sizeof *truth);
    int found;
    int *ntruth = malloc((size_t)q * sizeof *ntruth);
    for (long i = 0; i < q; i++)
        ntruth[i] = search_items(exact, v + (size_t)(n + i) * d, NULL, truth + i * K);
    printf("| nprobe | max_scan_num | recall@10 | p50 ms | p99 ms |\n|---|---|---|---|---|\n");
    double *lat = malloc((size_t)q * sizeof *lat);
    for (int a = 5; a + 1 < argc; a += 2) {
        struct vindex_search_params p = {.nprobe = atoi(argv[a]), .max_scan = atol(argv[a + 1])};
        long hit = 0;
        for (long i = 0; i < q; i++) {
            int64_t got[K * 4];
            double s0 = now_ms();
            found = search_items(ann, v + (size_t)(n + i) * d, &p, got);
            lat[i] = now_ms() - s0;
            for (int x = 0; x < found; x++)
                for (int y = 0; y < ntruth[i]; y++)
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
    free(ntruth);
    free(lat);
    return 0;
}
