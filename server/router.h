/* router.h: the route table maps method + path template to a handler; the
 * whole API surface is the one list in routes.c. */
#ifndef IMGSEARCH_ROUTER_H
#define IMGSEARCH_ROUTER_H

#include "server/request.h"

typedef enum err (*handler_fn)(struct request *req);

enum route_flags {
    R_JSON = 1 << 0,    /* body must be a JSON object (parsed into req->json) */
    R_AUTH = 1 << 1,    /* credentials checked per [auth] mode */
    R_PROJECT = 1 << 2, /* params[0] is {project_id} */
    R_RAW = 1 << 3,     /* body kept raw, not parsed (e.g. uploads) */
    R_POOL = 1 << 4,    /* runs on the work pool (downloads, decodes, extracts) */
    R_STORE = 1 << 5,   /* reads or writes storage: runs on the store pool (R_POOL wins) */
    R_READ = 1 << 6,    /* R_STORE that only reads: on SQLite it runs on the HTTP thread */
};

struct route {
    const char *method;
    const char *tmpl; /* "/v2/{project_id}/mms/{service_name}/search"; "*" at the end: rest */
    enum api_family family;
    handler_fn fn;
    unsigned flags;
    const char *name; /* metric label */
};

enum route_match { ROUTE_FOUND = 0, ROUTE_NO_PATH, ROUTE_NO_METHOD };

/* Matches `path` (decoded) against the table. On ROUTE_FOUND, params point
 * into `scratch` (a copy of the path the caller keeps alive). The family is
 * set even when only the prefix matched, so 404s answer in the right family. */
enum route_match router_match(const struct route *table, size_t n, const char *method,
                              const char *path, char *scratch, size_t scratch_len,
                              const struct route **out, const char **params, int *n_params,
                              enum api_family *family);

extern const struct route routes[];
extern const size_t n_routes;

#endif
