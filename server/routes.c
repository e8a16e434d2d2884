/* routes.c: the whole API surface in one list. Order matters: literal
 * segments before templated ones (an instance may be named "service"). */
#include "server/handlers.h"
#include "server/router.h"

#define V2 "/v2/{project_id}/mms/{service_name}"
#define V1 "/v1/{project_id}"
#define ADM "/admin/v1/{project_id}"
#define CLOUD (R_AUTH | R_PROJECT | R_JSON)
#define CLOUD_NOBODY (R_AUTH | R_PROJECT)

const struct route routes[] = {
    /* v1 (legacy) instance API */
    {"POST", V1 "/service", API_V1, h_v1_instance_create, CLOUD, "v1_instance_create"},
    {"GET", V1 "/service/{instance_name}", API_V1, h_v1_instance_get, CLOUD_NOBODY,
     "v1_instance_get"},
    {"DELETE", V1 "/service/{instance_name}", API_V1, h_v1_instance_delete, CLOUD_NOBODY,
     "v1_instance_delete"},

    /* Ours: what the cloud only has as a console. */
    {"POST", ADM "/instances", API_ADMIN, h_admin_instance_create, CLOUD,
     "admin_instance_create"},
    {"GET", ADM "/instances", API_ADMIN, h_admin_instance_list, CLOUD_NOBODY,
     "admin_instance_list"},
    {"GET", ADM "/instances/{name}", API_ADMIN, h_admin_instance_get, CLOUD_NOBODY,
     "admin_instance_get"},
    {"DELETE", ADM "/instances/{name}", API_ADMIN, h_admin_instance_delete, CLOUD_NOBODY,
     "admin_instance_delete"},

    {"GET", "/healthz", API_OTHER, h_healthz, 0, "healthz"},
    {"GET", "/metrics", API_OTHER, h_metrics, 0, "metrics"},
};

const size_t n_routes = sizeof routes / sizeof routes[0];
