/* nodes.h: the nodes that share one PostgreSQL database (docs/cluster.md):
 * each one's heartbeat, and per instance the change seq from which that
 * node may still replay the change log, so tombstones are pruned only
 * below what every live node has applied. Times are the database's clock,
 * so nodes need not agree on theirs. */
#ifndef IMGSEARCH_NODES_H
#define IMGSEARCH_NODES_H

#include <stdint.h>
#include "storage/db.h"

/* Upserts the node's row with the database's now as its heartbeat; the
 * first call also sets started_ms. 0 or -1. */
int nodes_heartbeat(struct db *db, const char *node_id, const char *url);

/* Removes the node (and its applied seqs): a clean shutdown, so others
 * need not wait for it to time out. */
int nodes_forget(struct db *db, const char *node_id);

/* Removes nodes silent for over `older_ms` (their applied seqs go too). */
int nodes_reap(struct db *db, long long older_ms);

/* Records that the node replays instance's log from `seq` on. DB_NOT_FOUND:
 * the instance no longer exists (deleted by another node). */
enum db_status nodes_set_applied(struct db *db, const char *node_id, int64_t instance_id,
                                 int64_t seq);

/* The lowest applied seq of nodes heard from within timeout_ms for the
 * instance; INT64_MAX when none has recorded one. 0 or -1. */
int nodes_min_applied(struct db *db, int64_t instance_id, long long timeout_ms, int64_t *min);

/* RUNNING -> QUEUED for import jobs whose node is not alive (silent for
 * timeout_ms, gone, or none recorded), so a live node resumes them. */
int nodes_requeue_orphan_jobs(struct db *db, long long timeout_ms);

/* Every known node, for /healthz and the admin API. */
struct node_info {
    char *id, *url;
    long long started_ms, heartbeat_ms;
    long long silent_ms; /* database now - heartbeat_ms */
};
int nodes_list(struct db *db, struct node_info **out, size_t *n);
void nodes_list_free(struct node_info *v, size_t n);

/* Shards (docs/cluster.md): the instances split into several, with their
 * number of shards (malloc'd arrays). 0 or -1. */
int nodes_sharded_instances(struct db *db, int64_t **ids, int **shards, size_t *n);

/* Records in shard_map that node_id owns (instance, shard); its epoch
 * grows by one whenever the owner changes. 0 or -1. */
int nodes_claim_shard(struct db *db, int64_t instance_id, int shard, const char *node_id);

/* shard_map as recorded, for the admin API. */
struct shard_row {
    int64_t instance_id;
    char *project_id, *instance, *node_id;
    int shard, shards; /* this row's shard, of the instance's shards */
    long long epoch, assigned_ms;
};
int nodes_shard_map(struct db *db, struct shard_row **out, size_t *n);
void nodes_shard_map_free(struct shard_row *v, size_t n);

#endif
