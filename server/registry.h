/* registry.h: the live per-instance state: its vector index, loaded on
 * first use (from a snapshot when it is current, else rebuilt from the
 * vectors in SQLite, the source of truth), and a writer mutex that keeps one
 * instance's item writes in order. Entries are reference counted so an
 * instance deleted mid-request stays valid for that request. */
#ifndef IMGSEARCH_REGISTRY_H
#define IMGSEARCH_REGISTRY_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct db;
struct vindex;
struct config;

struct instance_rt {
    int64_t id;
    struct vindex *vi;
    pthread_mutex_t write_lock; /* item add/update/delete of this instance */
    int refs;                   /* guarded by the registry lock */
    int dropped;                /* deleted: files go when the last ref does */
};

struct registry;

int registry_new(const struct config *cfg, struct db *db, struct registry **out, char *errbuf,
                 size_t errlen);
/* Saves current snapshots (clean shutdown) and frees everything. */
void registry_free(struct registry *reg);

/* The instance's runtime, loading its index on first use; NULL on failure.
 * Every get is paired with a put. */
struct instance_rt *registry_get(struct registry *reg, int64_t instance_id);
void registry_put(struct registry *reg, struct instance_rt *rt);

/* Forgets the instance and removes its index files. */
void registry_drop(struct registry *reg, int64_t instance_id);

/* Appends Prometheus lines about the loaded indexes. */
int registry_render_metrics(struct registry *reg, char **buf, size_t *len, size_t *cap);

#endif
