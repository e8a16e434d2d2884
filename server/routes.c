/* routes.c: the whole API surface in one list. Order matters: literal
 * segments before templated ones (an instance may be named "service"). */
#include "server/handlers.h"
#include "server/router.h"
#include "server/shards.h"

#define V2 "/v2/{project_id}/mms/{service_name}"
#define V1 "/v1/{project_id}"
#define ADM "/admin/v1/{project_id}"
/* Every project call touches storage: it runs on the store pool, so an HTTP
 * thread never waits for a COMMIT's fsync while other connections wait for
 * it (server/http.c). */
#define CLOUD (R_AUTH | R_PROJECT | R_JSON | R_STORE)
#define CLOUD_NOBODY (R_AUTH | R_PROJECT | R_STORE)
/* Calls that take an image: they run on the work pool (server/workpool.h). */
#define CLOUD_IMAGE (CLOUD | R_POOL)

const struct route routes[] = {
    /* v2 ("MMS"), what every current SDK speaks */
    {"POST", V2 "/data/add", API_V2, h_v2_add, CLOUD_IMAGE, "v2_data_add"},
    {"POST", V2 "/search", API_V2, h_v2_search, CLOUD_IMAGE, "v2_search"},
    {"POST", V2 "/data/check", API_V2, h_v2_check, CLOUD | R_READ, "v2_data_check"},
    {"POST", V2 "/data/update", API_V2, h_v2_update, CLOUD, "v2_data_update"},
    {"POST", V2 "/data/delete", API_V2, h_v2_delete, CLOUD, "v2_data_delete"},

    /* v1 (legacy) instance API */
    {"POST", V1 "/service", API_V1, h_v1_instance_create, CLOUD, "v1_instance_create"},
    {"GET", V1 "/service/{instance_name}", API_V1, h_v1_instance_get, CLOUD_NOBODY,
     "v1_instance_get"},
    {"DELETE", V1 "/service/{instance_name}", API_V1, h_v1_instance_delete, CLOUD_NOBODY,
     "v1_instance_delete"},

    /* v1 pictures; DELETE carries a JSON body */
    {"POST", V1 "/{instance_name}/image", API_V1, h_v1_image_add, CLOUD_IMAGE, "v1_image_add"},
    {"PUT", V1 "/{instance_name}/image", API_V1, h_v1_image_modify, CLOUD, "v1_image_modify"},
    {"DELETE", V1 "/{instance_name}/image", API_V1, h_v1_image_delete, CLOUD, "v1_image_delete"},
    {"POST", V1 "/{instance_name}/image/check", API_V1, h_v1_image_check, CLOUD | R_READ,
     "v1_image_check"},
    {"POST", V1 "/{instance_name}/image/search", API_V1, h_v1_image_search, CLOUD_IMAGE,
     "v1_image_search"},

    /* Ours: what the cloud only has as a console. */
    {"POST", ADM "/instances", API_ADMIN, h_admin_instance_create, CLOUD, "admin_instance_create"},
    {"GET", ADM "/instances", API_ADMIN, h_admin_instance_list, CLOUD_NOBODY,
     "admin_instance_list"},
    {"GET", ADM "/instances/{name}", API_ADMIN, h_admin_instance_get, CLOUD_NOBODY,
     "admin_instance_get"},
    {"DELETE", ADM "/instances/{name}", API_ADMIN, h_admin_instance_delete, CLOUD_NOBODY,
     "admin_instance_delete"},
    {"POST", ADM "/instances/{name}/compact", API_ADMIN, h_admin_instance_compact, CLOUD_NOBODY,
     "admin_instance_compact"},

    {"GET", ADM "/instances/{name}/items/{item_id}/thumbnail", API_ADMIN, h_admin_item_thumb,
     CLOUD_NOBODY, "admin_item_thumbnail"},

    {"POST", ADM "/instances/{name}/imports", API_ADMIN, h_admin_import_start, CLOUD,
     "admin_import_start"},
    {"GET", ADM "/instances/{name}/imports", API_ADMIN, h_admin_import_list, CLOUD_NOBODY,
     "admin_import_list"},
    {"GET", ADM "/instances/{name}/imports/{job_id}", API_ADMIN, h_admin_import_get, CLOUD_NOBODY,
     "admin_import_get"},
    {"DELETE", ADM "/instances/{name}/imports/{job_id}", API_ADMIN, h_admin_import_cancel,
     CLOUD_NOBODY, "admin_import_cancel"},

    {"GET", ADM "/instances/{name}/thumbnail", API_ADMIN, h_console_thumb, CLOUD_NOBODY,
     "admin_thumbnail_by_query"},

    /* The web console: static files, no auth (the page asks for a token). */
    {"GET", "/console", API_OTHER, h_console, 0, "console_index"},
    {"GET", "/console/*", API_OTHER, h_console, 0, "console"},

    /* Ours: the nodes sharing the database (docs/cluster.md). */
    {"GET", "/admin/v1/cluster", API_ADMIN, h_admin_cluster, R_AUTH | R_STORE, "admin_cluster"},

    /* Ours, between the nodes of a sharded cluster only (server/shards.h):
     * outside the cloud's paths and the admin API, authenticated by the
     * [cluster] secret, absent (404) without one. */
    {"POST", "/internal/v1/instances/{id}/shards/{shard}/search", API_OTHER,
     h_internal_shard_search, R_STORE, "internal_shard_search"},

    {"GET", "/healthz", API_OTHER, h_healthz, 0, "healthz"},
    {"GET", "/metrics", API_OTHER, h_metrics, 0, "metrics"},
};

const size_t n_routes = sizeof routes / sizeof routes[0];
