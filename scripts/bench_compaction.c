/* bench_compaction.c: the conversion of a big float instance to compact
 * codes (storage/compaction.h), through the server's storage code, with a
 * writer of another instance running all along.
 *
 *   bench_compaction build DIR N      N float items with 4 views each
 *                                     (random unit vectors: the cost does
 *                                     not depend on them) in instance 1,
 *                                     and an empty instance 2
 *   bench_compaction convert DIR B    fit (what server/compactor.c does),
 *                                     switch, one full read with the float
 *                                     rows coded on the fly (an index
 *                                     rebuild right after the switch), the
 *                                     rewrite in transactions of B rows,
 *                                     and the same read again (all codes)
 *
 * Meanwhile a thread adds items (4 float views, one transaction each, as
 * data/add does) to instance 2 and records how long each add took: what the
 * conversion costs every other writer. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "index/extract.h"
#include "index/kernels.h"
#include "index/projection.h"
#include "storage/compaction.h"
#include "storage/db.h"
#include "storage/instances.h"
#include "storage/items.h"
#include "storage/vectors.h"

#define OUT 256
#define SAMPLE 20000 /* COMPACT_SAMPLE_MAX */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static _Thread_local uint64_t rs = 0x9e3779b97f4a7c15ull;
static void unit(float *v)
{
    double s = 0;
    for (int j = 0; j < EXTRACT_DIM; j++) {
        rs ^= rs << 13;
        rs ^= rs >> 7;
        rs ^= rs << 17;
        v[j] = (float)((double)(rs >> 11) / (double)(1ull << 53)) - 0.5f;
        s += (double)v[j] * v[j];
    }
    for (int j = 0; j < EXTRACT_DIM; j++)
        v[j] = (float)(v[j] / sqrt(s));
}

static struct db *open_db(const char *dir)
{
    char path[4096], err[256];
    struct db *db = NULL;
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/imgsearch.db", dir);
    if (db_open(path, &db, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    return db;
}

static const int KS[] = {1, 6, 7};

static int put(struct db *db, int64_t inst, const char *name)
{
    static _Thread_local float v[4][EXTRACT_DIM];
    for (int i = 0; i < 4; i++)
        unit(v[i]);
    struct item_rec rec = {.item_id = name,
                           .vector = v[0],
                           .dim = EXTRACT_DIM,
                           .extra = v[1],
                           .extra_k = KS,
                           .n_extra = 3};
    int64_t old = 0;
    return items_put(db, inst, &rec, 1, &old) == DB_OK ? 0 : -1;
}

static int build(const char *dir, long n)
{
    struct db *db = open_db(dir);
    sql_exec(db_conn(db), "INSERT INTO projects VALUES ('p', 0)");
    for (int i = 1; i <= 2; i++) {
        struct instance in = {.project_id = "p",
                              .name = i == 1 ? "big" : "other",
                              .model = "common-search",
                              .views = 1};
        if (instances_create(db, &in) != DB_OK)
            return fprintf(stderr, "instance: %s\n", db_last_error()), 1;
    }
    double t0 = now();
    char name[32];
    for (long i = 0; i < n; i++) {
        snprintf(name, sizeof name, "it%ld", i);
        if (put(db, 1, name) != 0)
            return fprintf(stderr, "add %ld: %s\n", i, db_last_error()), 1;
    }
    printf("built %ld float items (4 views) in %.1f s\n", n, now() - t0);
    db_close(db);
    return 0;
}

/* The other instance's writer. */
static struct db *g_db;
static atomic_int g_stop;
static double lat[1 << 20];
static long n_lat;

static void *writer(void *arg)
{
    (void)arg;
    char name[32];
    while (!atomic_load(&g_stop) && n_lat < (long)(sizeof lat / sizeof lat[0])) {
        snprintf(name, sizeof name, "w%ld", n_lat);
        double t0 = now();
        if (put(g_db, 2, name) != 0)
            fprintf(stderr, "writer: %s\n", db_last_error());
        lat[n_lat++] = now() - t0;
    }
    return NULL;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report_writer(const char *phase)
{
    qsort(lat, (size_t)n_lat, sizeof lat[0], cmp_d);
    if (n_lat)
        printf("  other instance's adds during %s: %ld, p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
               phase, n_lat, lat[n_lat / 2] * 1e3, lat[n_lat * 99 / 100] * 1e3,
               lat[n_lat - 1] * 1e3);
    n_lat = 0;
}

static int count(void *arg, size_t n, const int64_t *ids, const float *vecs)
{
    (void)ids;
    (void)vecs;
    *(size_t *)arg += n;
    return 0;
}

static void start_writer(pthread_t *t)
{
    atomic_store(&g_stop, 0);
    n_lat = 0;
    pthread_create(t, NULL, writer, NULL);
}

static void stop_writer(pthread_t t, const char *phase)
{
    atomic_store(&g_stop, 1);
    pthread_join(t, NULL);
    report_writer(phase);
}

static int convert(const char *dir, int batch)
{
    struct db *db = g_db = open_db(dir);
    char err[256];
    pthread_t t;
    float *x = NULL;
    size_t n = 0;
    struct projection *pr = NULL;
    unsigned char *bytes = NULL;
    size_t len = 0;

    start_writer(&t);
    double t0 = now();
    if (compaction_sample(db, 1, EXTRACT_DIM, SAMPLE, &x, &n) != 0 ||
        projection_train(x, n, EXTRACT_DIM, OUT, 1.0, 0.0, &pr, err, sizeof err) != 0 ||
        projection_to_bytes(pr, &bytes, &len) != 0)
        return fprintf(stderr, "fit: %s\n", err), 1;
    free(x);
    printf("fit: %.1f s (sample of %zu vectors; reads only)\n", now() - t0, n);
    stop_writer(t, "the fit");

    start_writer(&t);
    t0 = now();
    if (compaction_switch(db, 1, pr, bytes, len, err, sizeof err) != 0)
        return fprintf(stderr, "switch: %s\n", err), 1;
    printf("switch: %.1f ms (one transaction)\n", (now() - t0) * 1e3);
    size_t got = 0;
    t0 = now();
    vectors_for_each(db, 1, OUT, pr, count, &got);
    printf("read right after the switch (all rows float, coded on the fly): %zu vectors, "
           "%.1f s\n",
           got, now() - t0);
    stop_writer(t, "that read");

    start_writer(&t);
    struct compaction_pace pace = {batch, 0, NULL, NULL};
    struct compaction_progress p;
    t0 = now();
    int rc = compaction_rewrite(db, 1, pr, &pace, &p, err, sizeof err);
    double secs = now() - t0;
    printf("rewrite (%d rows a transaction): rc %d, %lld vectors in %lld transactions, %.1f s; "
           "the writer held %.1f s in all, %.1f ms at most\n",
           batch, rc, p.converted, p.batches, secs, p.hold_ms / 1e3, p.max_hold_ms);
    stop_writer(t, "the rewrite");

    got = 0;
    t0 = now();
    vectors_for_each(db, 1, OUT, pr, count, &got);
    printf("read after the rewrite (all codes): %zu vectors, %.1f s\n", got, now() - t0);
    projection_free(pr);
    free(bytes);
    db_close(db);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    kern_init(); /* OpenBLAS on one thread, as in the server */
    if (argc == 4 && !strcmp(argv[1], "build"))
        return build(argv[2], atol(argv[3]));
    if (argc == 4 && !strcmp(argv[1], "convert"))
        return convert(argv[2], atoi(argv[3]));
    if (argc == 3 && !strcmp(argv[1], "code")) { /* coding: one at a time, then 1024 at once */
        struct projection *pr = NULL;
        long n = atol(argv[2]);
        float *x = malloc(4096 * (size_t)EXTRACT_DIM * sizeof *x);
        static int8_t q[OUT];
        static float y[OUT];
        char err[256];
        for (int i = 0; i < 4096; i++)
            unit(x + (size_t)i * EXTRACT_DIM);
        projection_train(x, 4096, EXTRACT_DIM, OUT, 1.0, 0.0, &pr, err, sizeof err);
        double t0 = now();
        for (long i = 0; i < n; i++)
            projection_apply(pr, x + (size_t)(i % 4096) * EXTRACT_DIM, y);
        printf("projection_apply (sgemv): %.1f us a vector\n", (now() - t0) / (double)n * 1e6);
        t0 = now();
        for (long i = 0; i < n; i++)
            vectors_code_rows(pr, 1, x + (size_t)(i % 4096) * EXTRACT_DIM, q);
        printf("vectors_code_rows, 1 row: %.1f us a vector\n", (now() - t0) / (double)n * 1e6);
        static int8_t qs[1024 * OUT];
        t0 = now();
        for (long i = 0; i < n; i += 1024)
            vectors_code_rows(pr, 1024, x + (size_t)(i % 4096 / 1024 * 1024) * EXTRACT_DIM, qs);
        printf("vectors_code_rows, 1024 rows: %.1f us a vector\n", (now() - t0) / (double)n * 1e6);
        return 0;
    }
    fprintf(stderr, "usage: bench_compaction build DIR N | convert DIR ROWS_PER_TXN\n");
    return 2;
}
