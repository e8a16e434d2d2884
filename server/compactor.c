/* compactor.c: a float instance made compact in its own space (compactor.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "index/extract.h"
#include "index/projection.h"
#include "server/compactor.h"
#include "server/http_log.h"
#include "server/registry.h"
#include "server/spaces.h"
#include "storage/compaction.h"
#include "storage/vectors.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Full whitening: the study's choice for a projection fitted on the
 * instance itself, without shrinkage from its ~3,000 vectors. With fewer
 * than 8 per output dimension the smallest eigenvalues are noise, and
 * whitening would blow them up: shrink them towards the mean (0.5 x mean
 * eigenvalue, what tests/e2e/test_compact.py found for 288 vectors). */
static struct projection *fit(struct server *srv, int64_t id, size_t *n, char *errbuf,
                              size_t errlen)
{
    float *x = NULL;
    struct projection *pr = NULL;
    if (compaction_sample(srv->db, id, EXTRACT_DIM, COMPACT_SAMPLE_MAX, &x, n) != 0) {
        snprintf(errbuf, errlen, "cannot read the instance's vectors (%s)", db_last_error());
        *n = (size_t)-1; /* a failure, not too few */
        return NULL;
    }
    if (*n <= COMPACT_OUT_DIM)
        snprintf(errbuf, errlen,
                 "the instance has %zu vectors; fitting %d dimensions needs more than %d", *n,
                 COMPACT_OUT_DIM, COMPACT_OUT_DIM);
    else
        projection_train(x, *n, EXTRACT_DIM, COMPACT_OUT_DIM, 1.0,
                         *n >= 8 * COMPACT_OUT_DIM ? 0.0 : 0.5, &pr, errbuf, errlen);
    free(x);
    return pr;
}

int compact_instance(struct server *srv, int64_t id, struct compact_result *res, char *errbuf,
                     size_t errlen)
{
    double t0 = now_s();
    memset(res, 0, sizeof *res);
    struct instance_rt *rt = registry_get(srv->registry, id);
    if (!rt) {
        snprintf(errbuf, errlen, "index unavailable");
        return -1;
    }
    int rc = -1;
    char *digest = NULL;
    unsigned char *bytes = NULL;
    size_t len = 0;
    struct projection *pr = NULL;
    pthread_mutex_lock(&rt->write_lock);
    if (rt->retired) {
        snprintf(errbuf, errlen, "the instance changed meanwhile; retry");
        rc = -2;
        goto out;
    }
    if (vectors_projection(srv->db, id, &digest) != DB_OK) {
        snprintf(errbuf, errlen, "cannot read the instance's space");
        goto out;
    }
    if (digest) {
        snprintf(errbuf, errlen, "the instance is already compact (projection %.12s)", digest);
        rc = -2;
        goto out;
    }
    if (!(pr = fit(srv, id, &res->trained_on, errbuf, errlen))) {
        if (res->trained_on <= COMPACT_OUT_DIM)
            rc = -2;
        res->trained_on = 0;
        goto out;
    }
    if (projection_to_bytes(pr, &bytes, &len) != 0) {
        snprintf(errbuf, errlen, "out of memory");
        goto out;
    }
    if (compaction_convert(srv->db, id, pr, bytes, len, &res->vectors, errbuf, errlen) != 0)
        goto out;
    snprintf(res->digest, sizeof res->digest, "%s", pr->digest);
    spaces_add(srv->spaces, pr);
    pr = NULL;
    /* Writers queued on this lock see `retired` and answer 503; the next
     * registry_get rebuilds the index from the codes. */
    rt->retired = 1;
    rc = 0;
out:
    pthread_mutex_unlock(&rt->write_lock);
    registry_put(srv->registry, rt);
    if (rc == 0)
        registry_drop(srv->registry, id); /* also removes the float snapshot */
    projection_free(pr);
    free(bytes);
    free(digest);
    res->seconds = now_s() - t0;
    if (rc == 0)
        log_info("instance %lld: compact in its own space %.12s (%lld vectors, fitted on %zu, "
                 "%.2f s)",
                 (long long)id, res->digest, res->vectors, res->trained_on, res->seconds);
    return rc;
}
