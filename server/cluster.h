/* cluster.h: this node's membership of a shared PostgreSQL database
 * (docs/cluster.md): a random node id per process, a heartbeat every
 * second, and with it the change seqs this node still needs per instance
 * (so others prune tombstones only below them). Instances deleted by
 * another node are dropped from the registry here, and import jobs of dead
 * nodes requeued. Not started on SQLite. */
#ifndef IMGSEARCH_CLUSTER_H
#define IMGSEARCH_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

struct server;
struct cluster;

int cluster_start(struct server *srv, struct cluster **out, char *errbuf, size_t errlen);
/* Stops the heartbeat and removes this node's row: the others stop
 * counting it at once instead of after node_timeout_ms. */
void cluster_stop(struct cluster *cl);

/* Who owns shard `shard` of an instance of `shards` shards, by balanced
 * rendezvous hashing (shard_owners) over the live nodes with a URL as of
 * the last heartbeat (every node computes the same map from the same
 * table): 1 this node, 0 another (its URL copied to url), -1 none known
 * (no cluster, or nobody advertises a URL): serve it here. The map moves
 * when a node dies (node_timeout_ms) or joins. */
int cluster_shard_owner(struct cluster *cl, int64_t instance_id, int shards, int shard, char *url,
                        size_t len);

/* This process's node id (hex), or NULL for a NULL cluster. */
const char *cluster_node_id(const struct cluster *cl);

#endif
