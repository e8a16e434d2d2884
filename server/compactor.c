/* compactor.c: a float instance made compact in its own space (compactor.h). */
#include <pthread.h>
#include <stdatomic.h>
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

#define PENDING_MAX 64

struct compactor {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    atomic_int stopping;
    int64_t pending[PENDING_MAX];
    int n_pending;
    int64_t *done; /* compacted or refused: never tried again by this process */
    size_t n_done, cap_done;
};

/* The rewrite stops for a shutdown (http_stop sets srv->stopping, the
 * compactor's own stop sets cp->stopping): the next start resumes it. */
static int stop_requested(void *arg)
{
    struct server *srv = arg;
    struct compactor *cp = srv->compactor;
    return atomic_load(&srv->stopping) || (cp && atomic_load(&cp->stopping));
}

static int rewrite(struct server *srv, int64_t id, const struct projection *pr,
                   struct compaction_progress *p, char *errbuf, size_t errlen)
{
    struct compaction_pace pace = {(int)srv->cfg.index.compact_batch,
                                   (int)srv->cfg.index.compact_pause_ms, stop_requested, srv};
    double t0 = now_s();
    int rc = compaction_rewrite(srv->db, id, pr, &pace, p, errbuf, errlen);
    log_info("instance %lld: %s %lld float vectors as codes of %.12s in %lld transactions "
             "(%.2f s; the writer held %.0f ms in all, %.1f ms at most)%s%s",
             (long long)id, rc == 0 ? "rewrote" : "rewrote only", p->converted, pr->digest,
             p->batches, now_s() - t0, p->hold_ms, p->max_hold_ms,
             rc > 0   ? ": stopped, the next start resumes"
             : rc < 0 ? ": "
                      : "",
             rc < 0 ? errbuf : "");
    return rc;
}

int compact_instance(struct server *srv, int64_t id, struct compact_result *res, char *errbuf,
                     size_t errlen)
{
    double t0 = now_s();
    memset(res, 0, sizeof *res);
    int rc = -1;
    char *digest = NULL;
    unsigned char *bytes = NULL;
    size_t len = 0;
    struct projection *pr = NULL;
    /* The instance's index entries on this node: one, or each shard held
     * here (the writers of every shard must meet the switch). */
    struct instance_rt **rts = NULL;
    int n_rt = 0, locked = 0;
    if (vectors_projection(srv->db, id, &digest) != DB_OK) {
        snprintf(errbuf, errlen, "cannot read the instance's space");
        goto out;
    }
    if (digest) {
        snprintf(errbuf, errlen, "the instance is already compact (projection %.12s)", digest);
        rc = -2;
        goto out;
    }
    /* The fit only reads: adds and searches go on meanwhile. The items
     * added after the sample are coded in the fitted space like the rest. */
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
    int shards = vectors_shards(srv->db, id);
    if (shards < 1 || !(rts = calloc((size_t)shards, sizeof *rts))) {
        snprintf(errbuf, errlen,
                 shards < 1 ? "cannot read the instance's shards" : "out of memory");
        goto out;
    }
    if (shards == 1) {
        if (!(rts[n_rt++] = registry_get(srv->registry, id))) {
            snprintf(errbuf, errlen, "index unavailable");
            goto out;
        }
    } else {
        for (int sh = 0; sh < shards; sh++) /* only those held: none is loaded for this */
            if ((rts[n_rt] = registry_peek_shard(srv->registry, id, sh)))
                n_rt++;
    }
    /* The switch, under the write locks (in shard order; a writer takes
     * one): writers that read the instance as float find `retired` after it
     * and store their vectors in the new space (server/ingest.c). */
    for (int i = 0; i < n_rt; i++)
        pthread_mutex_lock(&rts[i]->write_lock);
    locked = 1;
    for (int i = 0; i < n_rt; i++)
        if (rts[i]->retired) {
            snprintf(errbuf, errlen, "the instance changed meanwhile; retry");
            rc = -2;
            goto out;
        }
    double ts = now_s();
    if (compaction_switch(srv->db, id, pr, bytes, len, errbuf, errlen) != 0) {
        rc = strstr(errbuf, "already compact") ? -2 : -1;
        goto out;
    }
    res->switch_ms = (now_s() - ts) * 1e3;
    snprintf(res->digest, sizeof res->digest, "%s", pr->digest);
    spaces_add(srv->spaces, pr); /* frees pr when the space is known already */
    pr = NULL;
    for (int i = 0; i < n_rt; i++)
        rts[i]->retired = 1;
    /* Before the writers queued on the locks look again: the next get
     * rebuilds the index in the new space (float rows coded on the fly);
     * the float snapshots go. */
    registry_drop(srv->registry, id);
    registry_delete_stored(srv->registry, id, shards);
    for (int i = 0; i < n_rt; i++)
        pthread_mutex_unlock(&rts[i]->write_lock);
    locked = 0;
    for (int i = 0; i < n_rt; i++)
        registry_put(srv->registry, rts[i]);
    n_rt = 0;
    log_info("instance %lld: compact in its own space %.12s (fitted on %zu vectors; the switch "
             "held the writer %.1f ms)",
             (long long)id, res->digest, res->trained_on, res->switch_ms);
    const struct projection *space = spaces_get(srv->spaces, res->digest);
    struct compaction_progress prog;
    int w = space ? rewrite(srv, id, space, &prog, errbuf, errlen) : -1;
    if (!space)
        snprintf(errbuf, errlen, "the projection just stored cannot be read back");
    res->vectors = space ? prog.converted : 0;
    res->batches = space ? prog.batches : 0;
    res->max_hold_ms = space ? prog.max_hold_ms : 0;
    res->pending = w != 0;
    rc = 0; /* compact: the rows left are coded on the fly, and resumed at the next start */
out:
    for (int i = 0; i < n_rt; i++) {
        if (locked)
            pthread_mutex_unlock(&rts[i]->write_lock);
        registry_put(srv->registry, rts[i]);
    }
    free(rts);
    projection_free(pr);
    free(bytes);
    free(digest);
    res->seconds = now_s() - t0;
    return rc;
}

/* Finishes the rewrite of every compact instance with float rows left (a
 * stop or kill cut it short). */
static void resume_pending(struct server *srv)
{
    int64_t *ids = NULL;
    size_t n = 0;
    if (compaction_pending(srv->db, &ids, &n) != 0)
        log_info("compactor: cannot list the conversions to resume (%s)", db_last_error());
    for (size_t i = 0; i < n && !stop_requested(srv); i++) {
        char *digest = NULL, why[300];
        const struct projection *pr = NULL;
        if (vectors_projection(srv->db, ids[i], &digest) == DB_OK && digest)
            pr = spaces_get(srv->spaces, digest);
        if (!pr) {
            log_info("instance %lld: float rows left, but its projection %.12s is unknown",
                     (long long)ids[i], digest ? digest : "?");
        } else {
            log_info("instance %lld: resuming its conversion to codes of %.12s", (long long)ids[i],
                     digest);
            struct compaction_progress prog;
            rewrite(srv, ids[i], pr, &prog, why, sizeof why);
        }
        free(digest);
    }
    free(ids);
}

/* --- [index] compact_after ------------------------------------------------ */

static int seen(const struct compactor *cp, int64_t id)
{
    for (size_t i = 0; i < cp->n_done; i++)
        if (cp->done[i] == id)
            return 1;
    for (int i = 0; i < cp->n_pending; i++)
        if (cp->pending[i] == id)
            return 1;
    return 0;
}

static void mark_done(struct compactor *cp, int64_t id)
{
    if (cp->n_done == cp->cap_done) {
        size_t cap = cp->cap_done ? cp->cap_done * 2 : 16;
        int64_t *g = realloc(cp->done, cap * sizeof *g);
        if (!g)
            return; /* it may be tried again: harmless, it is refused */
        cp->done = g;
        cp->cap_done = cap;
    }
    cp->done[cp->n_done++] = id;
}

static void run_one(struct server *srv, int64_t id)
{
    struct compact_result res;
    char why[300];
    int rc = compact_instance(srv, id, &res, why, sizeof why);
    if (rc != 0)
        log_info("instance %lld: not made compact (%s)", (long long)id, why);
    else
        log_info("instance %lld: compact, %lld vectors rewritten in %.2f s", (long long)id,
                 res.vectors, res.seconds);
}

static void *compactor_main(void *arg)
{
    struct server *srv = arg;
    struct compactor *cp = srv->compactor;
    resume_pending(srv);
    /* Existing data dirs: every float instance already past the size. */
    int64_t *ids = NULL;
    size_t n = 0;
    if (srv->cfg.index.compact_after > 0 &&
        compaction_candidates(srv->db, srv->cfg.index.compact_after, &ids, &n) != 0)
        log_info("compactor: cannot list the instances to make compact (%s)", db_last_error());
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&cp->lock);
        int stop = cp->stopping;
        if (!stop)
            mark_done(cp, ids[i]);
        pthread_mutex_unlock(&cp->lock);
        if (stop)
            break;
        run_one(srv, ids[i]);
    }
    free(ids);
    pthread_mutex_lock(&cp->lock);
    for (;;) {
        while (!cp->n_pending && !cp->stopping)
            pthread_cond_wait(&cp->wake, &cp->lock);
        if (cp->stopping)
            break;
        int64_t id = cp->pending[--cp->n_pending];
        mark_done(cp, id);
        pthread_mutex_unlock(&cp->lock);
        run_one(srv, id);
        pthread_mutex_lock(&cp->lock);
    }
    pthread_mutex_unlock(&cp->lock);
    return NULL;
}

/* Always started: with compact_after = 0 it only resumes conversions (an
 * explicit POST .../compact cut short) and then waits. */
int compactor_start(struct server *srv)
{
    srv->compactor = NULL;
    struct compactor *cp = calloc(1, sizeof *cp);
    if (!cp)
        return -1;
    pthread_mutex_init(&cp->lock, NULL);
    pthread_cond_init(&cp->wake, NULL);
    srv->compactor = cp;
    if (pthread_create(&cp->thread, NULL, compactor_main, srv) != 0) {
        srv->compactor = NULL;
        free(cp);
        return -1;
    }
    return 0;
}

void compactor_note(struct server *srv, int64_t instance_id, size_t items)
{
    struct compactor *cp = srv->compactor;
    if (!cp || srv->cfg.index.compact_after <= 0 || items < (size_t)srv->cfg.index.compact_after)
        return;
    pthread_mutex_lock(&cp->lock);
    if (!seen(cp, instance_id) && cp->n_pending < PENDING_MAX) {
        cp->pending[cp->n_pending++] = instance_id;
        pthread_cond_signal(&cp->wake);
    }
    pthread_mutex_unlock(&cp->lock);
}

/* A rewrite in progress stops after its current batch; the next start
 * resumes it. */
void compactor_stop(struct server *srv)
{
    struct compactor *cp = srv->compactor;
    if (!cp)
        return;
    pthread_mutex_lock(&cp->lock);
    atomic_store(&cp->stopping, 1);
    pthread_cond_signal(&cp->wake);
    pthread_mutex_unlock(&cp->lock);
    pthread_join(cp->thread, NULL);
    pthread_mutex_destroy(&cp->lock);
    pthread_cond_destroy(&cp->wake);
    free(cp->done);
    free(cp);
    srv->compactor = NULL;
}
