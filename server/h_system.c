/* h_system.c: health and metrics, outside the cloud's paths. */
#include <stdlib.h>
#include <string.h>
#include "server/handlers.h"
#include "server/imports.h"
#include "server/metrics.h"
#include "server/registry.h"
#include "server/server.h"
#include "server/workpool.h"
#include "storage/db.h"

/* A round trip to the database (a PostgreSQL server that went away is
 * found out here, and reconnected to once it is back); "backend" says which
 * one the metadata lives in. */
static int db_alive(struct db *db)
{
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st = c ? sql_prepare(c, "SELECT 1") : NULL;
    int ok = st && sql_step(st) == SQL_ROW;
    sql_finalize(st);
    return ok;
}

enum err h_healthz(struct request *req)
{
    int ok = db_alive(req->srv->db);
    int model = req->srv->extractor != NULL;
    req->reply =
        json_pack("{s:s, s:b, s:s, s:b}", "status", ok ? "ok" : "unavailable", "database", ok,
                  "backend", sql_backend_name(db_backend(req->srv->db)), "model", model);
    req->status = ok ? 200 : 503;
    /* On a shared database: which nodes share it, so a load balancer's
     * health page shows the cluster too. */
    json_t *nodes = ok && req->reply ? cluster_nodes_json(req->srv) : NULL;
    if (nodes)
        json_object_set_new(req->reply, "nodes", nodes);
    return E_OK;
}

static int render_pool(struct server *srv, char **buf, size_t *len, size_t *cap)
{
    if (!srv->pool)
        return 0;
    int queued, running;
    unsigned long refused;
    workpool_stats(srv->pool, &queued, &running, &refused);
    return metrics_printf(buf, len, cap,
                          "# TYPE imgsearch_pool_queued gauge\nimgsearch_pool_queued %d\n"
                          "# TYPE imgsearch_pool_running gauge\nimgsearch_pool_running %d\n"
                          "# TYPE imgsearch_pool_refused_total counter\n"
                          "imgsearch_pool_refused_total %lu\n",
                          queued, running, refused);
}

enum err h_metrics(struct request *req)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    if (metrics_render(req->srv->metrics, &buf, &len, &cap) != 0 ||
        registry_render_metrics(req->srv->registry, &buf, &len, &cap) != 0 ||
        imports_render_metrics(req->srv, &buf, &len, &cap) != 0 ||
        render_pool(req->srv, &buf, &len, &cap) != 0) {
        free(buf);
        return req_fail(req, E_INTERNAL, "metrics");
    }
    req->raw = buf;
    req->raw_len = len;
    req->raw_type = "text/plain; version=0.0.4";
    return E_OK;
}
