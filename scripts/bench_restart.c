/* bench_restart.c: restart cost of an instance's index after an unclean
 * stop, through the real storage (items_put: schema, change log) and
 * registry (snapshot, load + replay, rebuild) code.
 *
 *   bench_restart build DIR N M   N items (random unit vectors, 1 vector an
 *                                 item), a snapshot, then M more changes (adds,
 *                                 every 10th a delete) and an exit without
 *                                 the shutdown snapshot: a kill -9
 *   bench_restart load DIR        times the load: snapshot + replay
 *   bench_restart rebuild DIR     removes the snapshot, times the rebuild
 *
 * The dimension is the server's (EXTRACT_DIM): the registry has no other. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <math.h>
#include "config/config.h"
#include "index/extract.h"
#include "index/vindex.h"
#include "server/registry.h"
#include "storage/db.h"
#include "storage/items.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rs = 0x9e3779b97f4a7c15ull;
static float frand(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (float)((double)(rs >> 11) / (double)(1ull << 53)) - 0.5f;
}

static void unit(float *v)
{
    double s = 0;
    for (int j = 0; j < EXTRACT_DIM; j++)
        v[j] = frand(), s += (double)v[j] * v[j];
    s = sqrt(s);
    for (int j = 0; j < EXTRACT_DIM; j++)
        v[j] = (float)(v[j] / s);
}

static int open_all(const char *dir, struct config *cfg, struct db **db, struct registry **reg)
{
    char path[4096], err[256];
    config_defaults(cfg);
    free(cfg->data_dir);
    cfg->data_dir = strdup(dir);
    cfg->index.snapshot_changes = 0; /* no background thread: we snapshot by hand */
    cfg->index.snapshot_seconds = 0;
    /* BENCH_EXACT_MAX: keep (or not) the index exact across the run, so an
     * IVF retrain does not hide the load cost (default: the server's). */
    if (getenv("BENCH_EXACT_MAX"))
        cfg->index.exact_max = atol(getenv("BENCH_EXACT_MAX"));
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/imgsearch.db", dir);
    if (db_open(path, db, err, sizeof err) != 0 ||
        registry_new(cfg, NULL, *db, reg, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 0;
}

/* One add as item_store does it: COMMIT, then the index, under the lock. */
static int add(struct db *db, struct instance_rt *rt, long i, float *v)
{
    char name[32];
    snprintf(name, sizeof name, "it%ld", i);
    unit(v);
    struct item_rec rec = {.item_id = name, .vector = v, .dim = EXTRACT_DIM};
    int64_t old = 0;
    pthread_mutex_lock(&rt->write_lock);
    int rc = items_put(db, 1, &rec, 1, &old) == DB_OK ? 0 : -1;
    if (rc == 0)
        rc = vindex_add(rt->vi, 1, &rec.row, v);
    pthread_mutex_unlock(&rt->write_lock);
    return rc;
}

static int build(const char *dir, long n, long m)
{
    struct config cfg;
    struct db *db;
    struct registry *reg;
    float v[EXTRACT_DIM];
    if (open_all(dir, &cfg, &db, &reg) != 0)
        return 1;
    sql_exec(db_conn(db), "INSERT INTO projects VALUES ('p', 0);"
                          "INSERT INTO instances(id, project_id, name, created_ms)"
                          " VALUES (1, 'p', 'b', 0);");
    struct instance_rt *rt = registry_get(reg, 1);
    double t0 = now();
    for (long i = 0; i < n; i++)
        if (add(db, rt, i, v) != 0)
            return fprintf(stderr, "add %ld failed\n", i), 1;
    printf("built %ld items in %.1f s\n", n, now() - t0);
    t0 = now();
    if (registry_snapshot(reg, rt) != 0)
        return 1;
    printf("snapshot: %.3f s total, writes blocked %.3f s\n", rt->snap_total_s, rt->snap_block_s);
    for (long i = 0; i < m; i++) {
        if (i % 10 == 9) {
            char name[32];
            int64_t row;
            snprintf(name, sizeof name, "it%ld", i * 7 % n);
            pthread_mutex_lock(&rt->write_lock);
            if (items_delete(db, 1, name, &row) == DB_OK)
                vindex_remove(rt->vi, 1, &row);
            pthread_mutex_unlock(&rt->write_lock);
        } else if (add(db, rt, n + i, v) != 0) {
            return 1;
        }
    }
    printf("%ld changes after the snapshot; exiting without the shutdown snapshot\n", m);
    fflush(stdout);
    _exit(0); /* like kill -9: no registry_free, no snapshot */
}

static int load(const char *dir, int rebuild)
{
    struct config cfg;
    struct db *db;
    struct registry *reg;
    char path[4200];
    if (rebuild) {
        snprintf(path, sizeof path, "%s/index/1.snap", dir);
        unlink(path);
    }
    if (open_all(dir, &cfg, &db, &reg) != 0)
        return 1;
    double t0 = now();
    struct instance_rt *rt = registry_get(reg, 1);
    double dt = now() - t0;
    if (!rt)
        return 1;
    printf("%s: %.3f s, %zu vectors, replayed %lld changes\n", rebuild ? "rebuild" : "load+replay",
           dt, vindex_count(rt->vi), rt->load_replayed);
    fflush(stdout);
    _exit(0); /* keep the snapshot as it is for the next run */
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "build"))
        return build(argv[2], atol(argv[3]), atol(argv[4]));
    if (argc == 3 && !strcmp(argv[1], "load"))
        return load(argv[2], 0);
    if (argc == 3 && !strcmp(argv[1], "rebuild"))
        return load(argv[2], 1);
    fprintf(stderr, "usage: bench_restart build DIR N M | load DIR | rebuild DIR\n");
    return 2;
}
