/* registry.h: the live per-instance state: its vector index, loaded on
 * first use (a snapshot plus a replay of the changes SQLite logged after it,
 * else rebuilt from the vectors in SQLite, the source of truth), and a
 * writer mutex that keeps one instance's item writes in order. A background
 * thread snapshots indexes that changed enough. Entries are reference
 * counted so an instance deleted mid-request stays valid for that request. */
#ifndef IMGSEARCH_REGISTRY_H
#define IMGSEARCH_REGISTRY_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct db;
struct vindex;
struct config;
struct projection;

struct instance_rt {
    int64_t id;
    struct vindex *vi;
    int dim;                    /* of vi's vectors: EXTRACT_DIM, or a compact space's */
    pthread_mutex_t write_lock; /* item add/update/delete of this instance */
    int refs;                   /* guarded by the registry lock */
    int dropped;                /* deleted: files go when the last ref does */
    /* Snapshot state, guarded by write_lock (written) and the registry lock
     * (read for metrics). */
    int64_t snap_seq;        /* change seq of the snapshot on disk; -1: none usable */
    long long dirty_ms;      /* when a change after snap_seq was first seen; 0: clean */
    long long retry_ms;      /* no snapshot attempt before this (after a failure) */
    int no_snapshot;         /* the index lacks a stored item: only a rebuild is right */
    int load_rebuilt;        /* how the index was loaded */
    long long load_replayed; /* changes replayed onto the snapshot */
    double load_s;
    double snap_block_s, snap_total_s; /* last snapshot: writes blocked, all of it */
    long long snap_failures;
};

struct registry;

/* `pr`: the server's projection (NULL: none); a compact instance's index is
 * out_dim-d, rebuilt from its decoded codes, and one of another projection
 * does not load (server/compact.h refuses its calls first). */
int registry_new(const struct config *cfg, const struct projection *pr, struct db *db,
                 struct registry **out, char *errbuf, size_t errlen);
/* Saves current snapshots (clean shutdown) and frees everything. */
void registry_free(struct registry *reg);

/* The instance's runtime, loading its index on first use; NULL on failure.
 * Every get is paired with a put. */
struct instance_rt *registry_get(struct registry *reg, int64_t instance_id);
void registry_put(struct registry *reg, struct instance_rt *rt);

/* Forgets the instance and removes its index files. */
void registry_drop(struct registry *reg, int64_t instance_id);

/* The index no longer matches SQLite (an item stored but not indexed, and
 * its undo failed): its snapshot is deleted and none is written, so the next
 * start rebuilds from SQLite. */
void registry_invalidate(struct registry *reg, struct instance_rt *rt);

/* Writes the instance's snapshot now if it changed since the last one.
 * Returns 0 when the snapshot on disk is current. */
int registry_snapshot(struct registry *reg, struct instance_rt *rt);

/* Appends Prometheus lines about the loaded indexes. */
int registry_render_metrics(struct registry *reg, char **buf, size_t *len, size_t *cap);

#endif
