/* server.h: the whole server state at a glance. Built once in main(),
 * passed down explicitly; nothing else is global. */
#ifndef IMGSEARCH_SERVER_H
#define IMGSEARCH_SERVER_H

#include <semaphore.h>
#include <stdatomic.h>
#include "config/config.h"

struct db;
struct source;
struct extractor;
struct registry;
struct metrics;
struct imports;
struct MHD_Daemon;
struct workpool;
struct projection;
struct cluster;

struct server {
    struct config cfg;           /* immutable after start-up */
    struct db *db;               /* SQLite metadata, the source of truth */
    struct source *source;       /* image bytes: URLs and object store */
    struct extractor *extractor; /* NULL when the model file is missing */
    struct registry *registry;   /* per-instance vector indexes and locks */
    struct cluster *cluster;     /* membership on a shared database; NULL on SQLite */
    /* [index] projection: compact descriptors for instances created now;
     * NULL: off (server/compact.h). */
    struct projection *projection; /* owned by spaces */
    struct spaces *spaces;         /* every known projection, by digest */
    struct compactor *compactor;   /* [index] compact_after; NULL: off */
    struct metrics *metrics;
    struct imports *imports;     /* background import jobs */
    struct workpool *pool;       /* runs the image calls; full queue -> 429 */
    struct workpool *store_pool; /* runs the other project calls (storage) */
    struct workpool *compute;    /* decodes and extractions, one per core, at image_nice */
    struct MHD_Daemon *daemon;
    int n_cores;
    int n_threads;
    atomic_int in_flight; /* requests between first byte and completion */
    atomic_int stopping;
    sem_t fetch_slots;   /* downloads at once, so stalled URLs cannot hold every thread */
};

/* Starts the HTTP front end on cfg.listen_host:listen_port (port 0 picks a
 * free one; server_port tells which). */
int http_start(struct server *srv, char *errbuf, size_t errlen);
int http_port(struct server *srv);
/* Stops accepting, waits up to `grace_s` for in-flight requests, stops. */
void http_stop(struct server *srv, int grace_s);

#endif
