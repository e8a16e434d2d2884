/* request.h: one HTTP request as handlers see it, and what they answer.
 * A handler returns E_OK after setting `reply` (a JSON object it owns), or an
 * error from errors.h with `detail` (e.g. the offending field) filled in. */
#ifndef IMGSEARCH_REQUEST_H
#define IMGSEARCH_REQUEST_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include "server/errors.h"
#include "server/req_timing.h"

struct server;
struct route;
struct MHD_Connection;

#define REQ_MAX_PARAMS 4

struct principal {
    const char *name;       /* credential/token section name; "anonymous" in mode none */
    const char *project_id; /* NULL: not limited to one project */
};

struct request {
    struct server *srv;
    const struct route *route;
    enum api_family family;
    struct MHD_Connection *conn;
    const char *method;
    const char *path;
    const char *params[REQ_MAX_PARAMS]; /* path parameters, in template order */
    const char *project_id;             /* params[0] for every cloud route */
    const uint8_t *body;
    size_t body_len;
    json_t *json; /* parsed body, for routes that take JSON */
    struct principal who;
    char request_id[33];

    /* Answer. */
    int status;    /* 200 unless the handler says otherwise */
    json_t *reply; /* owned; NULL with E_OK means {} */
    char *raw;     /* non-JSON answer (console files, metrics), malloc'd */
    size_t raw_len;
    const char *raw_type;
    char detail[256];
    struct req_timing timing;
};

/* Records the failing field/reason and returns `e`, for `return req_fail(...)`. */
enum err req_fail(struct request *req, enum err e, const char *detail);

/* Header lookup, case-insensitive; NULL when absent. */
const char *req_header(const struct request *req, const char *name);

#endif
