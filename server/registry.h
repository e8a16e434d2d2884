/* registry.h: the live per-instance state: its vector index, loaded on
 * first use (a snapshot plus a replay of the changes SQLite logged after it,
 * else rebuilt from the vectors in SQLite, the source of truth), and a
 * writer mutex that keeps one instance's item writes in order. A background
 * thread snapshots indexes that changed enough. Entries are reference
 * counted so an instance deleted mid-request stays valid for that request. */
#ifndef IMGSEARCH_REGISTRY_H
#define IMGSEARCH_REGISTRY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct db;
struct vindex;
struct config;
struct projection;

struct instance_rt {
    int64_t id;
    int shard;            /* which of the instance's shards this index holds */
    int filter;           /* the shard its rows are read with; -1: all (one shard) */
    struct registry *reg; /* its owner: the re-rank reads the database through it */
    struct vindex *vi;
    int dim;                     /* of vi's vectors: EXTRACT_DIM, or a compact space's */
    const struct projection *pr; /* decodes its stored codes; NULL: float vectors */
    /* Shared database: vi holds every change up to this seq (and maybe a
     * few of this node's own past it; replays are idempotent). Raised under
     * write_lock; read without it to skip a catch-up that has nothing to do. */
    _Atomic int64_t applied_seq;
    pthread_mutex_t write_lock; /* item add/update/delete of this instance */
    _Atomic long long used_ms;  /* last get (monotonic ms): idle shards are released */
    int refs;                   /* guarded by the registry lock */
    int dropped;                /* deleted: files go when the last ref does */
    int retired;                /* made compact (server/compactor.c): set under write_lock, which
                                 * writers check after taking it, as their vectors are float */
    /* Snapshot state, guarded by write_lock (written) and the registry lock
     * (read for metrics). */
    int64_t snap_seq;        /* change seq of the snapshot on disk; -1: none usable */
    int64_t stored_seq;      /* ... of its copy in the snapshot store; -1: none known */
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

/* `sp`: the known projections; a compact instance's index is out_dim-d,
 * rebuilt from its decoded codes, and one of an unknown projection does not
 * load (server/compact.h refuses its calls first). */
struct spaces;
int registry_new(const struct config *cfg, struct spaces *sp, struct db *db, struct registry **out,
                 char *errbuf, size_t errlen);
/* Saves current snapshots (clean shutdown) and frees everything. */
void registry_free(struct registry *reg);

/* The instance's runtime, loading its index on first use; NULL on failure.
 * Every get is paired with a put. On a shared (PostgreSQL) database the
 * index is first caught up with the changes other nodes committed: one
 * read of change_seq, and a replay of the log past applied_seq when it is
 * behind, so an add acknowledged by any node is seen here. */
struct instance_rt *registry_get(struct registry *reg, int64_t instance_id);
/* The same for one shard of an instance of several (docs/cluster.md):
 * its index holds only that shard's items. registry_get is shard 0. */
struct instance_rt *registry_get_shard(struct registry *reg, int64_t instance_id, int shard);
/* The shard's entry if this node has it loaded, else NULL; no catch-up
 * (a writer indexes its own change into it, registry_wrote). */
struct instance_rt *registry_peek_shard(struct registry *reg, int64_t instance_id, int shard);
/* Whether the shard is loaded here (for the admin API). */
int registry_has_shard(struct registry *reg, int64_t instance_id, int shard);
void registry_put(struct registry *reg, struct instance_rt *rt);

/* After this node's own write at `seq` reached rt->vi (under write_lock):
 * applied_seq follows when no other node's change came between. */
void registry_wrote(struct instance_rt *rt, int64_t seq);
/* Waits until nobody holds rt's write lock: a caller that read the
 * instance as compact while the compactor sat between its switch and
 * dropping this float entry (which it does under that lock) waits for the
 * drop, then gets the entry again. */
void registry_wait_writer(struct instance_rt *rt);

/* Per loaded instance the lowest seq whose successors this node may replay
 * (its snapshot's, else its index's; over all its loaded shards): heartbeats
 * record them so tombstone pruning stays below every live node's. malloc'd
 * arrays, one entry per instance. */
int registry_applied(struct registry *reg, int64_t **ids, int64_t **seqs, size_t *n);

/* Releases the loaded shards (of instances of several) that were not used
 * for idle_ms and that keep(arg, instance, shard) says this node need not
 * hold (another node owns them now). Their files stay. */
void registry_release_shards(struct registry *reg, long long idle_ms,
                             int (*keep)(void *arg, int64_t instance_id, int shard), void *arg);

/* Forgets the instance (every shard) and removes its index files and the
 * stored snapshots of shard 0 and of the shards held here. */
void registry_drop(struct registry *reg, int64_t instance_id);

/* The same, for indexes found stale here (the instance was made compact
 * through another node): the stored snapshots, which their owners keep
 * current, stay. */
void registry_forget(struct registry *reg, int64_t instance_id);

/* Deletes the stored snapshots of shards 1..shards-1 (a deleted instance's
 * shards held by no node, or by others). */
void registry_delete_stored(struct registry *reg, int64_t instance_id, int shards);

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
