/* h_cluster.c: the nodes sharing this database, for operators and load
 * balancers: GET /admin/v1/cluster (ours, outside the cloud's paths) and
 * the "nodes" of /healthz. A node is "alive" while its heartbeat is younger
 * than [cluster] node_timeout_ms, by the database's clock. */
#include <stdlib.h>
#include <string.h>
#include "server/cluster.h"
#include "server/handlers.h"
#include "server/registry.h"
#include "server/server.h"
#include "storage/nodes.h"

json_t *cluster_nodes_json(struct server *srv)
{
    struct node_info *v;
    size_t n;
    if (!srv->cluster || nodes_list(srv->db, &v, &n) != 0)
        return NULL;
    const char *self = cluster_node_id(srv->cluster);
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        int alive = v[i].silent_ms <= srv->cfg.cluster.node_timeout_ms;
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:b, s:I, s:I}", "id", v[i].id, "url",
                                             v[i].url, "state", alive ? "alive" : "dead", "self",
                                             strcmp(v[i].id, self) == 0, "heartbeat_age_ms",
                                             (json_int_t)v[i].silent_ms, "started_ms",
                                             (json_int_t)v[i].started_ms));
    }
    nodes_list_free(v, n);
    return arr;
}

/* shard_map as recorded by the owners, with the owner this node would
 * ask now (the two differ for a second or so after a node joins or dies)
 * and whether this node has the shard loaded. */
static json_t *shard_owners_json(struct server *srv)
{
    struct shard_row *v;
    size_t n;
    if (nodes_shard_map(srv->db, &v, &n) != 0)
        return NULL;
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        char url[512] = "";
        int o = cluster_shard_owner(srv->cluster, v[i].instance_id, v[i].shards, v[i].shard, url,
                                    sizeof url);
        if (o == 1)
            snprintf(url, sizeof url, "%s",
                     srv->cfg.cluster.node_url ? srv->cfg.cluster.node_url : "");
        json_array_append_new(
            arr, json_pack("{s:I, s:s, s:s, s:i, s:s, s:I, s:I, s:s, s:b}", "instance_id",
                           (json_int_t)v[i].instance_id, "project_id", v[i].project_id, "instance",
                           v[i].instance, "shard", v[i].shard, "node_id", v[i].node_id, "epoch",
                           (json_int_t)v[i].epoch, "assigned_ms", (json_int_t)v[i].assigned_ms,
                           "owner_url", url, "loaded_here",
                           registry_has_shard(srv->registry, v[i].instance_id, v[i].shard)));
    }
    nodes_shard_map_free(v, n);
    return arr;
}

enum err h_admin_cluster(struct request *req)
{
    struct server *srv = req->srv;
    if (!srv->cluster) {
        /* SQLite: one node, nothing shared. */
        req->reply = json_pack("{s:s, s:[]}", "mode", "single", "nodes");
        return E_OK;
    }
    json_t *nodes = cluster_nodes_json(srv);
    if (!nodes)
        return req_fail(req, E_STORE_FAILED, "cannot list the nodes");
    json_t *owners = shard_owners_json(srv);
    if (!owners) {
        json_decref(nodes);
        return req_fail(req, E_STORE_FAILED, "cannot read the shard map");
    }
    req->reply = json_pack("{s:s, s:s, s:s?, s:I, s:o, s:I, s:I, s:o}", "mode", "shared", "node_id",
                           cluster_node_id(srv->cluster), "node_url", srv->cfg.cluster.node_url,
                           "node_timeout_ms", (json_int_t)srv->cfg.cluster.node_timeout_ms, "nodes",
                           nodes, "shards", (json_int_t)srv->cfg.cluster.shards, "shard_timeout_ms",
                           (json_int_t)srv->cfg.cluster.shard_timeout_ms, "shard_owners", owners);
    return E_OK;
}
