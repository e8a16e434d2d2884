/* main.c: imgsearchd start-up and shutdown. Reads the configuration, opens
 * SQLite, the image sources and the extractor, starts HTTP, then waits for
 * SIGTERM/SIGINT and shuts down in the reverse order, letting in-flight
 * requests finish. */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "index/extract.h"
#include "index/projection.h"
#include "server/cluster.h"
#include "server/http_log.h"
#include "server/imports.h"
#include "server/metrics.h"
#include "server/compactor.h"
#include "server/registry.h"
#include "server/spaces.h"
#include "server/server.h"
#include "server/workpool.h"
#include "storage/db.h"
#include "storage/source.h"

/* mkdir -p */
static int make_dirs(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

/* Request threads block on I/O (URL fetches, fsync) as much as they compute,
 * so the pool is a few per core; the OpenMP/OpenBLAS pools stay at one
 * thread per request so they never oversubscribe the cores. */
static void set_thread_env(struct server *srv)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    srv->n_cores = cores > 0 ? (int)cores : 1;
    srv->n_threads = srv->cfg.threads > 0 ? srv->cfg.threads : 4 * srv->n_cores;
    setenv("OMP_NUM_THREADS", "1", 0);
    setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
    setenv("OPENBLAS_NUM_THREADS", "1", 0);
    /* Request bodies, decoded images and feature maps are large and short-
     * lived, allocated by many threads. glibc's default raises its mmap
     * threshold after the first such free and gives each thread an arena,
     * so freed buffers stayed in up to 16 heaps and RSS crept up for
     * minutes under a steady load (scripts/bench-soak: +22 % against +5 %
     * with these). Large blocks are mmapped and returned on free. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    mallopt(M_ARENA_MAX, 2 * srv->n_cores);
}

/* [index] projection: compact descriptors for new instances. A file that
 * is missing or fails its checksum stops the start: running without it
 * would refuse every compact instance. */
static int load_projection(struct server *srv, char *err, size_t errlen)
{
    char why[512];
    const char *path = srv->cfg.index.projection;
    if (projection_load(path, &srv->projection, why, sizeof why) != 0) {
        snprintf(err, errlen, "[index] projection %s: %s (make projection)", path, why);
        return -1;
    }
    if (srv->projection->in_dim != EXTRACT_DIM) {
        snprintf(err, errlen, "[index] projection %s: maps %d-d vectors, the extractor's are %d-d",
                 path, srv->projection->in_dim, EXTRACT_DIM);
        projection_free(srv->projection);
        srv->projection = NULL;
        return -1;
    }
    log_info("compact descriptors: new instances use %s (%d-d, digest %.12s)", path,
             srv->projection->out_dim, srv->projection->digest);
    return 0;
}

int main(int argc, char **argv)
{
    static struct server srv;
    char err[1024] = "";
    int rc = config_load(argc, argv, &srv.cfg, err, sizeof err);
    if (rc == 1)
        return 0;
    if (rc != 0) {
        fprintf(stderr, "imgsearchd: %s\n", err);
        return 2;
    }
    set_thread_env(&srv);

    /* Block the stop signals in every thread; main waits for them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    char db_path[4096];
    snprintf(db_path, sizeof db_path, "%s/imgsearch.db", srv.cfg.data_dir);
    if (make_dirs(srv.cfg.data_dir) != 0) {
        fprintf(stderr, "imgsearchd: cannot create %s: %s\n", srv.cfg.data_dir, strerror(errno));
        return 1;
    }
    for (size_t i = 0; i < srv.cfg.n_buckets; i++)
        if (srv.cfg.buckets[i].kind == BUCKET_LOCAL)
            make_dirs(srv.cfg.buckets[i].root);
    if (source_global_init() != 0) {
        fprintf(stderr, "imgsearchd: libcurl initialisation failed\n");
        return 1;
    }
    if (srv.cfg.index.projection && load_projection(&srv, err, sizeof err) != 0) {
        fprintf(stderr, "imgsearchd: %s\n", err);
        return 2;
    }
    /* SQLite in data_dir, or the shared PostgreSQL database; a server that
     * cannot reach it (or migrate it) stops here, saying why. */
    int pg = srv.cfg.storage.backend == STORAGE_POSTGRES;
    if (db_open_backend(pg ? SQL_POSTGRES : SQL_SQLITE, pg ? srv.cfg.storage.dsn : db_path, &srv.db,
                        err, sizeof err) != 0 ||
        source_create(&srv.cfg, &srv.source, err, sizeof err) != 0 ||
        spaces_new(srv.db, srv.projection, &srv.spaces) != 0 ||
        registry_new(&srv.cfg, srv.spaces, srv.db, &srv.registry, err, sizeof err) != 0) {
        fprintf(stderr, "imgsearchd: %s\n", err);
        return 1;
    }
    /* Several nodes may share a PostgreSQL database: heartbeats, and the
     * change seqs this node needs, from before it answers anything. */
    if (pg && cluster_start(&srv, &srv.cluster, err, sizeof err) != 0) {
        fprintf(stderr, "imgsearchd: %s\n", err);
        return 1;
    }
    srv.metrics = metrics_new();
    /* Decode and CNN threads (server/ingest.c), before the imports, which
     * extract too. Each image or import worker waits on one job at a time,
     * so the queue never fills; if it did, the caller would run the job. */
    if (workpool_new(srv.n_cores, 1024, srv.cfg.image_nice, &srv.compute) != 0) {
        fprintf(stderr, "imgsearchd: cannot start %d compute threads\n", srv.n_cores);
        return 1;
    }
    int fetches =
        srv.cfg.fetch.max_concurrent > 0 ? srv.cfg.fetch.max_concurrent : srv.n_threads / 2;
    sem_init(&srv.fetch_slots, 0, (unsigned)(fetches > 0 ? fetches : 1));
    enum extract_path path = srv.cfg.index.int8 ? EXTRACT_PATH_INT8 : EXTRACT_PATH_FLOAT;
    if (extractor_open_path(srv.cfg.model_path, path, &srv.extractor, err, sizeof err) != 0) {
        /* Instances and metadata still work; image calls answer 503. */
        log_info("warning: no feature extractor (%s); image operations will fail until the "
                 "model is installed (make model)",
                 err);
        srv.extractor = NULL;
    }
    if (srv.cfg.auth_mode == AUTH_NONE)
        log_info("warning: [auth] mode = none: every request is accepted without credentials");
    /* Before HTTP, so new jobs find the pool; resumes interrupted jobs. */
    if (compactor_start(&srv) != 0) {
        fprintf(stderr, "imgsearchd: cannot start the compactor\n");
        return 1;
    }
    if (imports_start(&srv, &srv.imports, err, sizeof err) != 0) {
        fprintf(stderr, "imgsearchd: %s\n", err);
        return 1;
    }
    int workers = srv.cfg.image_workers > 0 ? srv.cfg.image_workers : 2 * srv.n_cores;
    int queue = srv.cfg.image_queue > 0 ? srv.cfg.image_queue : 4 * srv.n_cores;
    if (workpool_new(workers, queue, 0, &srv.pool) != 0) {
        fprintf(stderr, "imgsearchd: cannot start %d image workers\n", workers);
        return 1;
    }
    /* As many store calls may wait as there may be connections. They wait
     * on the disk more than they compute, so 8 per core run at once (at
     * least as many as HTTP threads): when writes queue behind a slow
     * fsync, reads still find a free worker (a soak with 32 clients saw
     * checks wait 12 ms for one of 8). */
    int store_workers = srv.n_threads > 8 * srv.n_cores ? srv.n_threads : 8 * srv.n_cores;
    if (workpool_new(store_workers, srv.cfg.max_connections, 0, &srv.store_pool) != 0) {
        fprintf(stderr, "imgsearchd: cannot start %d store workers\n", store_workers);
        return 1;
    }
    if (http_start(&srv, err, sizeof err) != 0) {
        fprintf(stderr, "imgsearchd: %s\n", err);
        return 1;
    }
    log_info("imgsearchd listening on %s:%d (%d threads, %d image workers, %d cores, %s CNN, "
             "metadata in %s, data in %s)",
             srv.cfg.listen_host, http_port(&srv), srv.n_threads, workers, srv.n_cores,
             !srv.extractor                                       ? "no"
             : extractor_path(srv.extractor) == EXTRACT_PATH_INT8 ? "int8"
                                                                  : "float",
             pg ? "postgres" : "sqlite", srv.cfg.data_dir);

    int sig = 0;
    sigwait(&stop, &sig);
    log_info("signal %d: shutting down", sig);
    http_stop(&srv, 30);
    workpool_free(srv.pool);
    workpool_free(srv.store_pool);
    imports_stop(srv.imports); /* after the current image; the rest resumes at start */
    compactor_stop(&srv);
    workpool_free(srv.compute); /* after every caller: image pool, imports */
    cluster_stop(srv.cluster);  /* before the registry it reads */
    registry_free(srv.registry);
    extractor_close(srv.extractor);
    spaces_free(srv.spaces); /* the configured projection too */
    source_free(srv.source);
    db_close(srv.db);
    metrics_free(srv.metrics);
    config_free(&srv.cfg);
    log_info("stopped");
    return 0;
}
