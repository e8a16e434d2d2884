/* shard.h: which shard of an instance an item lives in, and which node owns
 * a shard (docs/cluster.md). Pure functions: every node computes the same
 * answers from the same inputs, with no coordination. */
#ifndef IMGSEARCH_SHARD_H
#define IMGSEARCH_SHARD_H

#include <stddef.h>
#include <stdint.h>

#define SHARDS_MAX 256

/* 64-bit FNV-1a of n bytes, continuing from h (start: SHARD_FNV_BASIS). */
#define SHARD_FNV_BASIS 0xcbf29ce484222325ULL
uint64_t shard_fnv1a(const void *p, size_t n, uint64_t h);

/* The shard of an item: FNV-1a 64 of the item_id's bytes, mod shards
 * (0 when shards <= 1). Stored in items.shard; never changes for an id. */
int shard_of_item(const char *item_id, int shards);

/* Rendezvous (highest random weight) hashing: node_id's weight for
 * (instance, shard); the live node of highest weight owns the shard, so
 * when a node leaves only its shards move. */
uint64_t shard_weight(const char *node_id, int64_t instance_id, int shard);

/* Index in ids[0..n) of the plain rendezvous owner of (instance, shard):
 * highest weight, ties to the smaller id (strcmp). -1 when n == 0. */
int shard_owner(const char *const *ids, size_t n, int64_t instance_id, int shard);

/* The owners of all `shards` shards of an instance (indexes in ids[0..n),
 * into owner[0..shards)): rendezvous, then balanced so that every node holds
 * floor(shards/n) or ceil(shards/n) of them. Plain rendezvous leaves two of
 * every three 3-shard instances on 3 nodes with a node holding two shards
 * and another none; the balancing moves a shard from a node over its share
 * to one under it, always the (shard, node) pair of highest weight, so the
 * answer depends only on the set of ids and when a node leaves mostly its
 * shards move. 0, or -1 when n == 0 (owner[] all -1) or out of memory. */
int shard_owners(const char *const *ids, size_t n, int64_t instance_id, int shards, int *owner);

#endif
