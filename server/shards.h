/* shards.h: the search fan-out over an instance's shards (docs/cluster.md).
 * The node that receives a search probes every shard: its own by a local
 * index search, the others' owners by POST /internal/v1/shards/search (the
 * [cluster] secret in a header, all at once, each within
 * [cluster] shard_timeout_ms), and merges their top k by score descending
 * then id ascending, which is the order one index of the same items gives.
 * Filters, views, pHash and folding stay with the caller (server/search.c). */
#ifndef IMGSEARCH_SHARDS_H
#define IMGSEARCH_SHARDS_H

#include <stdint.h>
#include "server/request.h"
#include "storage/shard.h"

struct server;
struct instance;

/* One probe: the query (already in the instance's space), how many index
 * ids, and the search parameters of vindex_search. */
struct shard_query {
    const float *query;
    int dim;
    int k;
    int nprobe;
    long max_scan;
    const int64_t *allowed; /* sorted index ids; NULL: all */
    size_t n_allowed;
};

/* Shards that did not answer a search whose caller accepts a partial
 * answer ("partial": true): accumulated over the query's several probes. */
struct shard_gaps {
    unsigned char missing[SHARDS_MAX];
    int any;
};

/* Searches every shard of inst and merges: ids/scores get the best q->k
 * (room for q->k each), *found how many. A shard that fails or does not
 * answer in time fails the search with 503 (ModelArts.4403), unless `gaps`
 * is given: then it is recorded there and the others' answer stands. */
enum err shards_search(struct request *req, const struct instance *inst,
                       const struct shard_query *q, int64_t *ids, float *scores, int *found,
                       struct shard_gaps *gaps);

/* One shard's search on this node (its index loaded and caught up first).
 * 0, or -1 with a reason in err. */
int shard_probe_local(struct server *srv, int64_t instance_id, int shard,
                      const struct shard_query *q, int64_t *ids, float *scores, int *found,
                      char *err, size_t errlen);

/* POST /internal/v1/shards/search: another node's probe of a shard of
 * this one. Binary in and out (server/shards.c); refused without the secret. */
enum err h_internal_shard_search(struct request *req);

#endif
