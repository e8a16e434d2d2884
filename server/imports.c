/* imports.c: the import worker pool. Each worker claims one QUEUED job,
 * imports its pending keys in order through image_load -> image_embed ->
 * item_store (the v2 data/add path), records each key's result durably
 * before moving on, checks for cancellation between images, and ends the
 * job SUCCEEDED (bad images are listed, never fatal), FAILED or CANCELLED.
 * Keys of a bucket prefix arrive from the lister (server/lister.c) while
 * the job runs: a worker out of keys waits for more until the listing is
 * done. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "server/cluster.h"
#include "server/http_log.h"
#include "server/imports.h"
#include "server/ingest.h"
#include "server/json_util.h"
#include "server/lister.h"
#include "server/metrics.h"
#include "server/params.h"
#include "server/server.h"
#include "storage/jobs.h"
#include "storage/nodes.h"

#define PENDING_BATCH 64
#define ACTIVE_FLUSH_MS 1000 /* job row updated at most once a second */
#define KEYS_WAIT_MS 200     /* out of keys while listing: look again this often */

struct imports {
    struct server *srv;
    pthread_t *threads;
    int n_threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pending;            /* a job was queued since a worker last looked */
    pthread_cond_t keys_cv; /* the lister appended keys or ended a listing */
    struct lister *lister;
    atomic_int stop;
    atomic_llong images_done, images_failed;
};

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Item metadata of a manifest line, checked like data/add checks its body. */
struct key_meta {
    json_t *obj;
    const char *item_id, *desc;
    json_t *tags, *num, *keywords;
};

static enum err meta_parse(struct request *req, const struct instance *inst, const char *text,
                           struct key_meta *m)
{
    enum err e;
    memset(m, 0, sizeof *m);
    if (!text)
        return E_OK;
    m->obj = json_loads(text, 0, NULL);
    if (!json_is_object(m->obj))
        return req_fail(req, E_BAD_PARAM, "manifest");
    if ((e = jget_string(req, m->obj, "item_id", JOPT, 1, 256, &m->item_id)) ||
        (e = jget_string(req, m->obj, "desc", JOPT, 1, 2048, &m->desc)) ||
        (e = params_item_tags(req, inst, m->obj, &m->tags, &m->num)) ||
        (e = params_keywords(req, m->obj, 1, 100, JOPT, &m->keywords)))
        return e;
    return E_OK;
}

/* One key through the data/add path. `exists_ok`: the item may already be
 * there from a run that crashed between the item commit and the key marker. */
static enum err import_one(struct server *srv, const struct job *job, const struct instance *inst,
                           const struct job_key *k, int exists_ok, struct request *req)
{
    struct key_meta m;
    struct image img = {0};
    float *vec = NULL;
    enum err e = meta_parse(req, inst, k->meta, &m);
    if (e)
        goto out;
    const char *item_id = m.item_id                            ? m.item_id
                          : !strcmp(job->item_id_from, "path") ? k->url
                                                               : k->key;
    if (utf8_len(item_id) < 1 || utf8_len(item_id) > 256) {
        e = req_fail(req, E_BAD_PARAM, "item_id");
        goto out;
    }
    struct image_input in = {.url = k->url,
                             .base64_field = "image_base64",
                             .url_field = "image_url",
                             .box_field = "box",
                             .limits = {65, 4095, EXTRACT_SIDE},
                             .max_bytes = V2_MAX_IMAGE_BYTES,
                             .min_box_side = 15};
    if ((e = image_load(req, &in, &img)))
        goto out;
    uint64_t phash = 0;
    if (!(vec = malloc(EXTRACT_DIM * sizeof *vec))) {
        e = req_fail(req, E_INTERNAL, "out of memory");
        goto out;
    }
    if ((e = image_embed(req, &img, vec, &phash)))
        goto out;
    struct item_rec rec = {.item_id = item_id,
                           .desc = m.desc,
                           .custom_tags = m.tags,
                           .num_tags = m.num,
                           .keywords = m.keywords,
                           .vector = vec,
                           .dim = EXTRACT_DIM,
                           .phash = phash,
                           .width = img.orig_width,
                           .height = img.orig_height};
    e = item_store(req, inst, &rec, &img, job->force);
    if (e == E_MMS_ITEM_EXISTS && exists_ok)
        e = E_OK;
out:
    (void)srv;
    free(vec);
    image_free(&img);
    json_decref(m.obj);
    return e;
}

/* Checked between images, like cancellation: the instance may be deleted
 * (or deleted and re-created) under the job. */
static int instance_gone(struct server *srv, const struct job *job, int64_t id)
{
    struct instance inst;
    enum db_status s = instances_get(srv->db, job->project_id, job->instance, &inst);
    int gone = s == DB_NOT_FOUND || (s == DB_OK && inst.id != id); /* or re-created */
    if (s == DB_OK)
        instance_free(&inst);
    return gone;
}

/* A failed store (a full disk) is the server's fault, not the image's: the
 * worker waits a second (or until stop) and retries, so the job neither
 * lists good images as failed nor dies with its status unwritable, and goes
 * on by itself once there is room. */
static void store_pause(struct imports *im)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 1;
    pthread_mutex_lock(&im->mu);
    if (!atomic_load(&im->stop))
        pthread_cond_timedwait(&im->cv, &im->mu, &ts);
    pthread_mutex_unlock(&im->mu);
}

/* Waits up to KEYS_WAIT_MS for the lister to append keys. */
static void wait_keys(struct imports *im)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += KEYS_WAIT_MS * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&im->mu);
    if (!atomic_load(&im->stop))
        pthread_cond_timedwait(&im->keys_cv, &im->mu, &ts);
    pthread_mutex_unlock(&im->mu);
}

static void keys_appended(void *arg)
{
    struct imports *im = arg;
    pthread_mutex_lock(&im->mu);
    pthread_cond_broadcast(&im->keys_cv);
    pthread_mutex_unlock(&im->mu);
}

/* Out of pending keys: sets *end when the job is over, *listed when its
 * listing was done before the caller's last look at the pending keys
 * (only then does "no keys" mean "finished"). */
static void out_of_keys(struct imports *im, const struct job *job, int *listed, const char **end,
                        const char **end_error)
{
    struct job now;
    enum db_status s = jobs_get_row(im->srv->db, job->id, &now);
    if (s == DB_NOT_FOUND) {
        *end = "CANCELLED"; /* removed with its instance */
        return;
    }
    if (s != DB_OK) {
        *end = "FAILED", *end_error = "database error";
        return;
    }
    if (strcmp(now.status, "RUNNING"))
        *end = "CANCELLED"; /* cancelled, or failed by the lister: already marked */
    else if (*listed) {
        *end = now.total ? "SUCCEEDED" : "FAILED";
        *end_error = now.total ? NULL : "no objects under the source";
    } else if (now.listing_done)
        *listed = 1; /* look at the pending keys once more */
    else
        wait_keys(im);
    job_free(&now);
}

/* Runs a claimed job until it ends, is cancelled, or the pool stops. */
static void run_job(struct imports *im, struct job *job, int resumed)
{
    struct server *srv = im->srv;
    struct instance inst = {0};
    long long t0 = mono_ms(), flushed = t0;
    enum db_status s = instances_get(srv->db, job->project_id, job->instance, &inst);
    if (s != DB_OK) {
        jobs_finish(srv->db, job->id, "FAILED",
                    s == DB_NOT_FOUND ? "instance no longer exists" : "instance lookup failed");
        return;
    }
    log_info("import %s: %s into %s/%s (%lld keys%s%s)", job->job_id, job->source, job->project_id,
             job->instance, job->total, job->listing_done ? "" : " so far",
             resumed ? ", resumed" : "");
    int first = 1, listed = 0, unmarked = 0; /* unmarked: last key stored, its marker not */
    const char *end = NULL, *end_error = NULL;
    while (!end && !atomic_load(&im->stop)) {
        struct job_key *keys = NULL;
        size_t n = 0;
        if (jobs_pending(srv->db, job->id, PENDING_BATCH, &keys, &n) != DB_OK) {
            end = "FAILED", end_error = "database error";
            break;
        }
        if (n == 0)
            out_of_keys(im, job, &listed, &end, &end_error);
        else
            listed = 0;
        for (size_t i = 0; i < n && !end && !atomic_load(&im->stop); i++) {
            char status[16] = "";
            if (jobs_status_for(srv->db, job->id, cluster_node_id(srv->cluster), status,
                                sizeof status) != DB_OK ||
                strcmp(status, "RUNNING")) {
                if (!strcmp(status, "LOST"))
                    log_info("import %s: requeued while this node was taken for dead; "
                             "another node runs it now",
                             job->job_id);
                end = "CANCELLED"; /* already marked by whoever changed it */
                break;
            }
            if (instance_gone(srv, job, inst.id)) {
                end = "FAILED", end_error = "instance deleted during the import";
                break;
            }
            struct request req = {.srv = srv, .family = API_V2, .method = "IMPORT"};
            snprintf(req.request_id, sizeof req.request_id, "imp%lldk%lld", (long long)job->id,
                     (long long)keys[i].seq);
            req.path = keys[i].url;
            req.project_id = job->project_id;
            /* exists_ok: a resumed or re-tried key may be stored already. */
            enum err e =
                import_one(srv, job, &inst, &keys[i], (resumed && first) || unmarked, &req);
            first = 0;
            unmarked = 0;
            if (e == E_STORE_FAILED) { /* the key stays pending: re-read, retry */
                store_pause(im);
                break;
            }
            char code[32] = "", msg[512] = "";
            if (e != E_OK) {
                enum err r = err_resolve(e, API_V2);
                snprintf(code, sizeof code, "%s", err_info(r)->code);
                err_message(r, req.detail, msg, sizeof msg);
            }
            /* Durable before it counts: resume starts after the last marker. */
            if (jobs_key_result(srv->db, job->id, keys[i].seq, e ? KEY_FAILED : KEY_DONE,
                                e ? code : NULL, e ? msg : NULL) != DB_OK) {
                unmarked = e == E_OK;
                store_pause(im);
                break;
            }
            atomic_fetch_add(e ? &im->images_failed : &im->images_done, 1);
            long long now = mono_ms();
            if (now - flushed >= ACTIVE_FLUSH_MS) {
                jobs_add_active(srv->db, job->id, now - flushed);
                flushed = now;
            }
        }
        job_keys_free(keys, n);
    }
    jobs_add_active(srv->db, job->id, mono_ms() - flushed);
    if (end && strcmp(end, "CANCELLED"))
        while (jobs_finish(srv->db, job->id, end, end_error) != DB_OK && !atomic_load(&im->stop))
            store_pause(im);
    log_info("import %s: %s", job->job_id, end ? end : "paused (shutdown)");
    instance_free(&inst);
}

static void *worker_main(void *arg)
{
    struct imports *im = arg;
    while (!atomic_load(&im->stop)) {
        struct job job;
        int resumed = 0;
        enum db_status s =
            jobs_claim_by(im->srv->db, cluster_node_id(im->srv->cluster), &job, &resumed);
        if (s == DB_OK) {
            run_job(im, &job, resumed);
            job_free(&job);
            continue;
        }
        pthread_mutex_lock(&im->mu);
        if (!im->pending && !atomic_load(&im->stop)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&im->cv, &im->mu, &ts);
        }
        im->pending = 0;
        pthread_mutex_unlock(&im->mu);
    }
    return NULL;
}

int imports_start(struct server *srv, struct imports **out, char *errbuf, size_t errlen)
{
    *out = NULL;
    struct imports *im = calloc(1, sizeof *im);
    int n = srv->cfg.import_workers > 0 ? srv->cfg.import_workers : 1;
    if (!im || !(im->threads = calloc((size_t)n, sizeof *im->threads))) {
        free(im);
        snprintf(errbuf, errlen, "imports: out of memory");
        return -1;
    }
    im->srv = srv;
    pthread_mutex_init(&im->mu, NULL);
    pthread_cond_init(&im->cv, NULL);
    pthread_cond_init(&im->keys_cv, NULL);
    /* Jobs left RUNNING by a crash: on one node all of them; on a shared
     * database only those of dead nodes (a live one is still running its
     * own; the heartbeat requeues them if it dies later). */
    if (srv->cluster ? nodes_requeue_orphan_jobs(srv->db, srv->cfg.cluster.node_timeout_ms) != 0
                     : jobs_requeue_running(srv->db) != DB_OK) {
        snprintf(errbuf, errlen, "imports: cannot requeue interrupted jobs");
        goto fail;
    }
    if (lister_start(srv, keys_appended, im, &im->lister, errbuf, errlen) != 0)
        goto fail;
    for (; im->n_threads < n; im->n_threads++)
        if (pthread_create(&im->threads[im->n_threads], NULL, worker_main, im) != 0) {
            snprintf(errbuf, errlen, "imports: cannot start worker threads");
            goto fail;
        }
    *out = im;
    return 0;
fail:
    imports_stop(im);
    return -1;
}

void imports_notify(struct imports *im)
{
    if (!im)
        return;
    pthread_mutex_lock(&im->mu);
    im->pending = 1;
    pthread_cond_signal(&im->cv);
    pthread_mutex_unlock(&im->mu);
    lister_notify(im->lister);
}

void imports_stop(struct imports *im)
{
    if (!im)
        return;
    lister_stop(im->lister); /* first: it calls back into im */
    pthread_mutex_lock(&im->mu);
    atomic_store(&im->stop, 1);
    pthread_cond_broadcast(&im->cv);
    pthread_cond_broadcast(&im->keys_cv);
    pthread_mutex_unlock(&im->mu);
    for (int i = 0; i < im->n_threads; i++)
        pthread_join(im->threads[i], NULL);
    pthread_cond_destroy(&im->keys_cv);
    pthread_cond_destroy(&im->cv);
    pthread_mutex_destroy(&im->mu);
    free(im->threads);
    free(im);
}

/* Label values: project ids and instance names are restricted, but a label
 * must never break the exposition format. */
static void label(char *out, size_t len, const char *s)
{
    size_t o = 0;
    for (; s && *s && o + 3 < len; s++) {
        if (*s == '"' || *s == '\\' || *s == '\n') {
            out[o++] = '\\';
            out[o++] = *s == '\n' ? 'n' : *s;
        } else {
            out[o++] = *s;
        }
    }
    out[o] = 0;
}

int imports_render_metrics(struct server *srv, char **buf, size_t *len, size_t *cap)
{
    struct instance *insts = NULL;
    struct job *jobs = NULL;
    size_t n_insts = 0, n_jobs = 0;
    int rc = -1;
    char p[160], i[160];
    if (instances_all(srv->db, &insts, &n_insts) != DB_OK ||
        jobs_list(srv->db, NULL, NULL, NULL, &jobs, &n_jobs) != DB_OK)
        goto fail;
    if (metrics_printf(buf, len, cap,
                       "# HELP imgsearch_instance_items Items stored per instance.\n"
                       "# TYPE imgsearch_instance_items gauge\n"))
        goto fail;
    for (size_t k = 0; k < n_insts; k++) {
        label(p, sizeof p, insts[k].project_id);
        label(i, sizeof i, insts[k].name);
        if (metrics_printf(buf, len, cap,
                           "imgsearch_instance_items{project=\"%s\",instance=\"%s\"} %lld\n", p, i,
                           insts[k].item_count))
            goto fail;
    }
    static const char *const states[] = {"QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"};
    if (metrics_printf(buf, len, cap,
                       "# HELP imgsearch_import_jobs Import jobs by status.\n"
                       "# TYPE imgsearch_import_jobs gauge\n"))
        goto fail;
    for (size_t s = 0; s < sizeof states / sizeof states[0]; s++) {
        long long c = 0;
        for (size_t k = 0; k < n_jobs; k++)
            c += !strcmp(jobs[k].status, states[s]);
        if (metrics_printf(buf, len, cap, "imgsearch_import_jobs{status=\"%s\"} %lld\n", states[s],
                           c))
            goto fail;
    }
    long long listing = 0;
    for (size_t k = 0; k < n_jobs; k++)
        listing += !jobs[k].listing_done &&
                   (!strcmp(jobs[k].status, "QUEUED") || !strcmp(jobs[k].status, "RUNNING"));
    if (metrics_printf(buf, len, cap,
                       "# HELP imgsearch_import_jobs_listing Unfinished import jobs still listing"
                       " their source.\n"
                       "# TYPE imgsearch_import_jobs_listing gauge\n"
                       "imgsearch_import_jobs_listing %lld\n",
                       listing))
        goto fail;
    /* Progress of unfinished jobs only: finished ones would grow without end. */
    static const char *const series[] = {"total", "done", "failed"};
    for (size_t s = 0; s < 3; s++) {
        if (metrics_printf(buf, len, cap,
                           "# HELP imgsearch_import_%s Keys %s of unfinished import jobs.\n"
                           "# TYPE imgsearch_import_%s gauge\n",
                           series[s], s == 0 ? "to import" : series[s], series[s]))
            goto fail;
        for (size_t k = 0; k < n_jobs; k++) {
            if (strcmp(jobs[k].status, "QUEUED") && strcmp(jobs[k].status, "RUNNING"))
                continue;
            long long v = s == 0 ? jobs[k].total : s == 1 ? jobs[k].done : jobs[k].failed;
            label(p, sizeof p, jobs[k].project_id);
            label(i, sizeof i, jobs[k].instance);
            if (metrics_printf(buf, len, cap,
                               "imgsearch_import_%s{project=\"%s\",instance=\"%s\",job_id=\"%s\"}"
                               " %lld\n",
                               series[s], p, i, jobs[k].job_id, v))
                goto fail;
        }
    }
    struct imports *im = srv->imports;
    if (metrics_printf(buf, len, cap,
                       "# HELP imgsearch_import_images_total Images processed by import jobs.\n"
                       "# TYPE imgsearch_import_images_total counter\n"
                       "imgsearch_import_images_total{result=\"done\"} %lld\n"
                       "imgsearch_import_images_total{result=\"failed\"} %lld\n",
                       im ? (long long)atomic_load(&im->images_done) : 0LL,
                       im ? (long long)atomic_load(&im->images_failed) : 0LL))
        goto fail;
    rc = 0;
fail:
    instances_free(insts, n_insts);
    jobs_free(jobs, n_jobs);
    return rc;
}
