/* lister.c: the background listing of import sources (see lister.h). Keys
 * reach SQLite in batches of BATCH_KEYS (a page of S3's), or sooner when
 * the oldest has waited BATCH_MS for a slow store; each batch commits the keys and the
 * new total together, so a kill -9 leaves a prefix of the listing that the
 * next start continues after its last key. A failed listing is retried a
 * few times from where it stopped, then ends the job FAILED with the
 * store's reason. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "server/cluster.h"
#include "server/http_log.h"
#include "server/lister.h"
#include "server/server.h"
#include "storage/jobs.h"
#include "storage/source.h"

#define BATCH_KEYS 1000
#define BATCH_MS 250
#define LIST_ATTEMPTS 3 /* a store that fails three times in a row ends the job */

struct lister {
    struct server *srv;
    void (*on_keys)(void *);
    void *arg;
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pending; /* a job was created since the thread last looked */
    atomic_int stop;
};

/* Keys gathered from the listing and not yet appended. */
struct batch {
    struct lister *l;
    const struct job *job;
    struct job_key *k;
    size_t n, cap;
    long long first_ms; /* when the oldest gathered key was listed */
    enum { B_OK, B_GONE, B_DB_ERROR, B_NOMEM } state;
};

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int lister_key_wanted(const char *key)
{
    size_t len = strlen(key);
    return len > 0 && key[len - 1] != '/';
}

static void batch_clear(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->k[i].key);
        free(b->k[i].url);
    }
    b->n = 0;
}

/* Appends the gathered keys; -1 when the listing must stop. */
static int flush(struct batch *b)
{
    if (b->n == 0)
        return 0;
    enum db_status s = jobs_append(b->l->srv->db, b->job, b->k, b->n);
    batch_clear(b);
    if (s != DB_OK) {
        b->state = s == DB_NOT_FOUND ? B_GONE : B_DB_ERROR;
        return -1;
    }
    b->l->on_keys(b->l->arg);
    return 0;
}

static int on_key(void *arg, const char *url, const char *key, size_t size)
{
    struct batch *b = arg;
    (void)size;
    if (atomic_load(&b->l->stop))
        return 1;
    if (!lister_key_wanted(key))
        return 0;
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 256;
        struct job_key *g = realloc(b->k, cap * sizeof *g);
        if (!g)
            return b->state = B_NOMEM, 1;
        b->k = g;
        b->cap = cap;
    }
    if (b->n == 0)
        b->first_ms = mono_ms();
    struct job_key *k = &b->k[b->n];
    memset(k, 0, sizeof *k);
    k->key = strdup(key);
    k->url = strdup(url);
    b->n++;
    if (!k->key || !k->url)
        return b->state = B_NOMEM, 1;
    if (b->n >= BATCH_KEYS || mono_ms() - b->first_ms >= BATCH_MS)
        return flush(b) ? 1 : 0;
    return 0;
}

/* Sleeps up to ms, or until stop. */
static void nap(struct lister *l, long long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&l->mu);
    if (!l->pending && !atomic_load(&l->stop))
        pthread_cond_timedwait(&l->cv, &l->mu, &ts);
    l->pending = 0;
    pthread_mutex_unlock(&l->mu);
}

/* Lists one job to its end (or until it is cancelled, fails, or the
 * lister stops). 0: the job moved on; -1: a database error left it as it
 * was, so wait before taking a job again. */
static int list_job(struct lister *l, const struct job *job)
{
    struct db *db = l->srv->db;
    char *after = NULL;
    if (jobs_last_key(db, job->id, &after) != DB_OK)
        return -1;
    log_info("import %s: listing %s%s%s", job->job_id, job->source, after ? ", resumed after " : "",
             after ? after : "");
    for (int attempt = 1;; attempt++) {
        char detail[256] = "";
        struct batch b = {.l = l, .job = job};
        enum source_status st = source_list_after(l->srv->source, job->source, after, on_key, &b,
                                                  detail, sizeof detail);
        /* What was listed before a failure is in order: keep it. */
        if (b.state == B_OK && !atomic_load(&l->stop))
            flush(&b);
        batch_clear(&b);
        free(b.k);
        free(after);
        after = NULL;
        if (atomic_load(&l->stop))
            return 0; /* shutdown: resumes at the next start */
        if (b.state == B_GONE) {
            log_info("import %s: listing stopped (job cancelled or removed)", job->job_id);
            return 0;
        }
        if (b.state != B_OK) {
            jobs_listing_fail(db, job,
                              b.state == B_NOMEM ? "listing the source: out of memory"
                                                 : "listing the source: database error");
            l->on_keys(l->arg);
            return 0;
        }
        if (st == SRC_OK) {
            enum db_status s = jobs_listing_finish(db, job);
            l->on_keys(l->arg);
            if (s == DB_ERROR)
                return -1;
            log_info("import %s: listing done", job->job_id);
            return 0;
        }
        /* A malformed URL or unknown bucket will not get better. */
        if (attempt >= LIST_ATTEMPTS || st == SRC_OBS_BAD_URL) {
            char err[320];
            snprintf(err, sizeof err, "listing the source failed: %s",
                     *detail ? detail : "object store unreachable or refused");
            log_info("import %s: %s", job->job_id, err);
            jobs_listing_fail(db, job, err);
            l->on_keys(l->arg);
            return 0;
        }
        log_info("import %s: listing failed (%s), retrying", job->job_id, detail);
        nap(l, 1000LL * attempt);
        if (atomic_load(&l->stop))
            return 0;
        if (jobs_last_key(db, job->id, &after) != DB_OK)
            return -1;
    }
}

static void *lister_main(void *arg)
{
    struct lister *l = arg;
    while (!atomic_load(&l->stop)) {
        struct job job;
        /* On a shared database only this node's jobs: two listers of one
         * source would append its keys twice. */
        const char *node = cluster_node_id(l->srv->cluster);
        enum db_status s = node ? jobs_next_unlisted_by(l->srv->db, node, &job)
                                : jobs_next_unlisted(l->srv->db, &job);
        int rc = -1;
        if (s == DB_OK) {
            rc = list_job(l, &job);
            job_free(&job);
        }
        if (rc != 0)
            nap(l, 1000);
    }
    return NULL;
}

int lister_start(struct server *srv, void (*on_keys)(void *), void *arg, struct lister **out,
                 char *errbuf, size_t errlen)
{
    struct lister *l = calloc(1, sizeof *l);
    *out = NULL;
    if (!l) {
        snprintf(errbuf, errlen, "lister: out of memory");
        return -1;
    }
    l->srv = srv;
    l->on_keys = on_keys;
    l->arg = arg;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    if (pthread_create(&l->thread, NULL, lister_main, l) != 0) {
        snprintf(errbuf, errlen, "lister: cannot start its thread");
        lister_stop(l);
        return -1;
    }
    l->started = 1;
    *out = l;
    return 0;
}

void lister_notify(struct lister *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    l->pending = 1;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

void lister_stop(struct lister *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    atomic_store(&l->stop, 1);
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    if (l->started)
        pthread_join(l->thread, NULL);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    free(l);
}
