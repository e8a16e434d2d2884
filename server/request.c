/* request.c: the small request helpers handlers share, kept apart from
 * http.c so validators (and their fuzz target) link without the server. */
#include <microhttpd.h>
#include <stdio.h>
#include "server/request.h"

enum err req_fail(struct request *req, enum err e, const char *detail)
{
    if (detail)
        snprintf(req->detail, sizeof req->detail, "%s", detail);
    else
        req->detail[0] = 0;
    return e;
}

const char *req_header(const struct request *req, const char *name)
{
    return req->conn ? MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name) : NULL;
}
