/* compact.c: an instance's descriptor space (compact.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "index/extract.h"
#include "index/projection.h"
#include "server/compact.h"
#include "server/http_log.h"
#include "server/server.h"
#include "server/spaces.h"
#include "storage/vectors.h"

enum err compact_space(struct request *req, const struct instance *inst,
                       const struct projection **pr)
{
    const struct projection *have = req->srv->projection;
    *pr = NULL;
    if (!inst->projection)
        return E_OK;
    if ((*pr = spaces_get(req->srv->spaces, inst->projection)))
        return E_OK;
    char detail[200];
    snprintf(detail, sizeof detail,
             "instance %s has compact descriptors of projection %.12s, %s%.12s", inst->name,
             inst->projection, have ? "the server has " : "the server has none",
             have ? have->digest : "");
    log_info("%s: %s ([index] projection)", req->request_id, detail);
    return req_fail(req, E_MA_4508, detail);
}

int compact_dim(const struct projection *pr)
{
    return pr ? pr->out_dim : EXTRACT_DIM;
}

void compact_project(const struct projection *pr, const float *x, float *y, int8_t *q)
{
    projection_apply(pr, x, y);
    if (q) {
        projection_encode(pr, y, q);
        projection_decode(pr, q, y);
    }
}

const struct projection *compact_now(struct server *srv, int64_t instance_id)
{
    char *digest = NULL;
    const struct projection *pr = NULL;
    if (vectors_projection(srv->db, instance_id, &digest) == DB_OK && digest)
        pr = spaces_get(srv->spaces, digest);
    free(digest);
    return pr;
}

int compact_switched(struct server *srv, int64_t instance_id, const struct projection *pr)
{
    char *digest = NULL;
    int yes = pr && vectors_projection(srv->db, instance_id, &digest) == DB_OK && digest &&
              !strcmp(digest, pr->digest);
    free(digest);
    return yes;
}
