/* ingest.c: bytes -> image -> vector -> item. Error codes follow the family
 * of the request: v2 answers MMS/ModelArts, v1 answers IS codes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "index/thumb.h"
#include "index/views.h"
#include "index/vindex.h"
#include "server/compact.h"
#include "server/compactor.h"
#include "server/http_log.h"
#include "server/ingest.h"
#include "server/metrics.h"
#include "server/registry.h"
#include "server/server.h"
#include "server/workpool.h"
#include "storage/base64.h"
#include "storage/shard.h"
#include "storage/source.h"
#include "storage/vectors.h"

/* A request thread waits at most a second for a download slot (then 429,
 * which the SDKs retry by themselves); background work just waits. */
static int fetch_slot_take(struct request *req)
{
    if (!req->conn)
        return sem_wait(&req->srv->fetch_slots);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 1;
    int rc;
    while ((rc = sem_timedwait(&req->srv->fetch_slots, &ts)) != 0 && errno == EINTR)
        ;
    return rc;
}

/* Decoding and the CNN, the CPU-heavy parts of an image call, run on the
 * compute pool (one thread per core, at [server] image_nice) and nothing
 * else does: a thread of low priority holding the writer mutex or an
 * instance lock when a normal one preempts it would stall every write
 * behind it, so the threads that lock and commit keep normal priority while
 * the cheap calls (and the WAL's fsync wake-ups) preempt the heavy work.
 * Without the pool (unit tests) or when it refuses (stopping), the caller
 * runs the job itself. */
static void on_compute(struct server *srv, work_fn fn, void *arg)
{
    if (!srv->compute || workpool_call(srv->compute, fn, arg) != 0)
        fn(arg);
}

struct decode_job {
    const uint8_t *bytes;
    size_t len;
    const struct decode_limits *limits;
    struct image *img;
    enum decode_status status;
};

static void decode_job_run(void *p)
{
    struct decode_job *j = p;
    j->status = decode_image(j->bytes, j->len, j->limits, j->img);
}

struct embed_job {
    const struct extractor *ex;
    const struct image *img;
    float *vec;
    int rc;
    double seconds; /* the CNN's own time, without the wait for a thread */
};

static void embed_job_run(void *p)
{
    struct embed_job *j = p;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    j->rc = extractor_embed(j->ex, j->img, j->vec);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    j->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
}

static enum err source_error(struct request *req, enum source_status s, const char *field)
{
    if (req->family == API_V1)
        return req_fail(req, s == SRC_OBS_TOO_BIG ? E_IS_0006 : E_IS_0016, field);
    switch (s) {
    case SRC_URL_NOT_ALLOWED:
        return req_fail(req, E_MA_4601, field);
    case SRC_URL_FAILED:
        return req_fail(req, E_MA_4603, field);
    case SRC_OBS_BAD_URL:
        return req_fail(req, E_MA_4703, field);
    case SRC_OBS_FAILED:
        return req_fail(req, E_MA_4704, field);
    case SRC_OBS_TOO_BIG:
        return req_fail(req, E_MA_4705, field);
    case SRC_OBS_MISSING:
        return req_fail(req, E_MA_4706, field);
    default:
        return req_fail(req, E_INTERNAL, field);
    }
}

enum err image_load(struct request *req, const struct image_input *in, struct image *img)
{
    uint8_t *bytes = NULL;
    size_t len = 0;
    const char *field = in->base64 ? in->base64_field : in->url_field;
    memset(img, 0, sizeof *img);
    if (in->base64) {
        enum b64_status b =
            base64_decode(in->base64, strlen(in->base64), in->max_bytes, &bytes, &len);
        if (b == B64_NOMEM)
            return req_fail(req, E_INTERNAL, "out of memory");
        if (b != B64_OK || len == 0)
            return req_fail(req, E_BAD_PARAM, field);
    } else {
        struct bytes got = {0};
        char detail[256] = "";
        if (fetch_slot_take(req) != 0)
            return req_fail(req, E_MA_4401, "download slots busy");
        enum source_status s =
            source_get(req->srv->source, in->url, in->max_bytes, &got, detail, sizeof detail);
        sem_post(&req->srv->fetch_slots);
        if (s != SRC_OK) {
            if (detail[0])
                fprintf(stderr, "%s: fetch %s: %s\n", req->request_id, in->url, detail);
            return source_error(req, s, field);
        }
        bytes = got.data;
        len = got.len;
    }
    struct decode_job dj = {bytes, len, &in->limits, img, DECODE_OK};
    on_compute(req->srv, decode_job_run, &dj);
    enum decode_status d = dj.status;
    free(bytes);
    if (d == DECODE_NOMEM)
        return req_fail(req, E_INTERNAL, "out of memory");
    if (d != DECODE_OK) {
        fprintf(stderr, "%s: %s: %s\n", req->request_id, field, decode_status_text(d));
        return req_fail(req, E_BAD_PARAM, field);
    }
    if (in->has_box) {
        int w = img->orig_width, h = img->orig_height;
        if (in->x1 < 0 || in->y1 < 0 || in->x1 >= in->x2 || in->y1 >= in->y2 || in->x2 > w ||
            in->y2 > h || in->x2 - in->x1 < in->min_box_side ||
            in->y2 - in->y1 < in->min_box_side) {
            image_free(img);
            return req_fail(req, E_BAD_PARAM, in->box_field);
        }
        struct image crop;
        if (image_crop(img, in->x1, in->y1, in->x2, in->y2, &crop) != 0) {
            image_free(img);
            return req_fail(req, E_BAD_PARAM, in->box_field);
        }
        image_free(img);
        *img = crop;
    }
    return E_OK;
}

enum err image_embed(struct request *req, const struct image *img, float *vec, uint64_t *phash)
{
    struct server *srv = req->srv;
    if (!srv->extractor)
        return req_fail(req, E_MA_4508, "no model loaded");
    struct embed_job ej = {srv->extractor, img, vec, -1, 0};
    on_compute(srv, embed_job_run, &ej);
    metrics_extract(srv->metrics, ej.seconds);
    if (ej.rc != 0)
        return req_fail(req, E_INTERNAL, "extraction failed");
    if (phash)
        *phash = image_phash(img);
    return E_OK;
}

int instance_view_kinds(const struct instance *inst, int ks[VEC_KINDS])
{
    return vectors_kinds(inst->regions, inst->views, ks);
}

/* View k of storage/vectors.h. The windows are 0.6 x 0.6 of the sides at
 * the centre (k = 1) and the corners (k = 2..5), so a query that is a crop
 * of an item still meets a vector made from about the same part of it. */
int item_view(const struct image *img, int k, struct image *out)
{
    static const int pos[VEC_REGIONS][2] = {{1, 1}, {0, 0}, {2, 0}, {0, 2}, {2, 2}};
    if (k == VEC_K_LOWRES)
        return image_lowres(img, VIEW_LOWRES_SIDE, out);
    if (k == VEC_K_GREY)
        return image_grey_stretch(img, out);
    int w = img->orig_width, h = img->orig_height;
    int cw = (w * 3 + 2) / 5, ch = (h * 3 + 2) / 5;
    int x = (w - cw) * pos[k - 1][0] / 2, y = (h - ch) * pos[k - 1][1] / 2;
    return image_crop(img, x, y, x + cw, y + ch, out);
}

static enum err embed_views(struct request *req, const struct image *img, const int *ks, int n,
                            float *out)
{
    for (int i = 0; i < n; i++) {
        struct image view;
        if (item_view(img, ks[i], &view) != 0)
            return req_fail(req, E_INTERNAL, "image view");
        enum err e = image_embed(req, &view, out + (size_t)i * EXTRACT_DIM, NULL);
        image_free(&view);
        if (e)
            return e;
    }
    return E_OK;
}

/* All index ids an item may have (whole image and every view). */
static void item_ids(int64_t row, int64_t ids[VEC_KINDS])
{
    for (int k = 0; k < VEC_KINDS; k++)
        ids[k] = vec_id(row, k);
}

static int index_item(struct vindex *vi, const struct item_rec *rec)
{
    if (vindex_add(vi, 1, &rec->row, rec->vector) != 0)
        return -1;
    if (rec->n_extra <= 0)
        return 0;
    int64_t ids[VEC_KINDS];
    for (int i = 0; i < rec->n_extra; i++)
        ids[i] = vec_id(rec->row, rec->extra_k[i]);
    if (vindex_add(vi, (size_t)rec->n_extra, ids, rec->extra) != 0) {
        vindex_remove(vi, 1, &rec->row);
        return -1;
    }
    return 0;
}

/* A compact instance stores the int8 codes of every vector of rec and
 * indexes their decoded values (compact.h): rec's vectors are swapped for
 * those, in `proj` (n floats of out_dim each) and `codes`. */
static int project_rec(const struct projection *pr, struct item_rec *rec, float **proj,
                       int8_t **codes)
{
    int n = 1 + rec->n_extra, d = compact_dim(pr);
    *proj = malloc((size_t)n * (size_t)d * sizeof **proj);
    *codes = malloc((size_t)n * (size_t)d);
    if (!*proj || !*codes)
        return -1;
    for (int i = 0; i < n; i++)
        compact_project(pr, i ? rec->extra + (size_t)(i - 1) * EXTRACT_DIM : rec->vector,
                        *proj + (size_t)i * (size_t)d, *codes + (size_t)i * (size_t)d);
    rec->vector = *proj;
    rec->codes = *codes;
    rec->extra = rec->n_extra ? *proj + d : NULL;
    rec->extra_codes = rec->n_extra ? *codes + d : NULL;
    rec->dim = d;
    return 0;
}

/* The answer to a refused items_put. */
static enum err put_result(struct request *req, const struct item_rec *rec, enum db_status s)
{
    if (s == DB_OK)
        return E_OK;
    if (s == DB_EXISTS)
        return req_fail(req, E_MMS_ITEM_EXISTS, rec->item_id);
    char detail[300];
    snprintf(detail, sizeof detail, "item write: %s", db_last_error());
    return req_fail(req, E_STORE_FAILED, detail);
}

enum err item_store(struct request *req, const struct instance *inst, struct item_rec *rec,
                    const struct image *img, int force)
{
    struct server *srv = req->srv;
    uint8_t *thumb = NULL;
    size_t thumb_len = 0;
    float *regions = NULL, *proj = NULL;
    int8_t *codes = NULL;
    const float *raw = rec->vector; /* the caller's, given back at the end */
    int raw_dim = rec->dim;
    const struct projection *pr;
    enum err e = compact_space(req, inst, &pr);
    if (e)
        return e;
    int kinds[VEC_KINDS];
    int n_kinds = instance_view_kinds(inst, kinds);
    if (n_kinds > 1 && img) {
        regions = malloc((size_t)(n_kinds - 1) * EXTRACT_DIM * sizeof *regions);
        if (!regions)
            return req_fail(req, E_INTERNAL, "out of memory");
        e = embed_views(req, img, kinds + 1, n_kinds - 1, regions);
        if (e) {
            free(regions);
            return e;
        }
        rec->extra = regions;
        rec->extra_k = kinds + 1;
        rec->n_extra = n_kinds - 1;
    }
    if (pr && project_rec(pr, rec, &proj, &codes) != 0) {
        e = req_fail(req, E_INTERNAL, "out of memory");
        goto out;
    }
    if (img && thumb_jpeg(img, THUMB_SIDE, &thumb, &thumb_len) == 0) {
        rec->thumb = thumb;
        rec->thumb_len = thumb_len;
    }
    /* The write lock keeps SQLite and the index in the same order for this
     * instance; searches do not take it. COMMIT first: on a full disk it is
     * what fails, and then nothing was stored and the index is untouched.
     * (Indexing inside the transaction would hold SQLite's write lock, for
     * every instance, through a retrain into the ANN index.) */
    /* Several shards (docs/cluster.md): the database takes the write; the
     * shard's index learns it here only when this node holds it, else its
     * owner replays it before its next answer. */
    int sharded = inst->shards > 1;
    int shard = sharded ? shard_of_item(rec->item_id, inst->shards) : 0;
    struct instance_rt *rt = NULL;
    for (int attempt = 0;; attempt++) {
        rt = sharded ? registry_peek_shard(srv->registry, inst->id, shard)
                     : registry_get(srv->registry, inst->id);
        if (!rt && sharded) {
            int64_t old_row;
            e = put_result(req, rec, items_put(srv->db, inst->id, rec, force, &old_row));
            goto out;
        }
        if (!rt) {
            e = req_fail(req, E_INDEX_FAILED, "index unavailable");
            goto out;
        }
        double t_lock = req_clock_ms();
        if (rt->dim == compact_dim(pr)) {
            pthread_mutex_lock(&rt->write_lock);
            req->timing.lock_ms += req_clock_ms() - t_lock;
            if (!rt->retired)
                break; /* locked, and the right space */
            pthread_mutex_unlock(&rt->write_lock);
        }
        /* Made compact since this call read the instance (retired: while
         * it waited for the lock): its vectors go into the new space, once.
         * Else the index of a deleted instance whose id a new one took
         * before the registry dropped it: never index into another space. */
        if (pr && !attempt) {
            /* Read as compact before the compactor dropped this float
             * entry: wait for the drop and look again. */
            registry_wait_writer(rt);
            registry_put(srv->registry, rt);
            continue;
        }
        const struct projection *now = !pr && !attempt ? compact_now(srv, inst->id) : NULL;
        int retired = rt->retired;
        registry_put(srv->registry, rt);
        if (sharded && pr && !now) {
            /* Made compact through another node: this node's float shards
             * are stale; they reload in the new space when next asked. */
            registry_forget(srv->registry, inst->id);
            int64_t old_row;
            e = put_result(req, rec, items_put(srv->db, inst->id, rec, force, &old_row));
            goto out;
        }
        if (!now) {
            e = retired ? req_fail(req, E_MA_4508, "the instance's descriptor space changed; retry")
                        : req_fail(req, E_INDEX_FAILED, "index of another descriptor space");
            goto out;
        }
        pr = now;
        if (project_rec(pr, rec, &proj, &codes) != 0) {
            e = req_fail(req, E_INTERNAL, "out of memory");
            goto out;
        }
    }
    int64_t old_row = 0;
    enum db_status s = items_put(srv->db, inst->id, rec, force, &old_row);
    double t_index = req_clock_ms();
    if (s != DB_OK) {
        e = put_result(req, rec, s);
    } else {
        if (old_row) {
            int64_t ids[VEC_KINDS];
            item_ids(old_row, ids);
            vindex_remove(rt->vi, VEC_KINDS, ids);
        }
        if (index_item(rt->vi, rec) != 0) {
            /* Undo the row so SQLite and the index agree. */
            int64_t row;
            if (items_delete(srv->db, inst->id, rec->item_id, &row) != DB_OK) {
                log_info("%s: item %s stored but not indexed, and removing it failed (%s): "
                         "it is searchable after the next restart",
                         req->request_id, rec->item_id, db_last_error());
                /* A snapshot would keep it out of the index for good. */
                registry_invalidate(srv->registry, rt);
            }
            e = req_fail(req, E_INDEX_FAILED, vindex_last_error());
        } else {
            registry_wrote(rt, rec->seq);
        }
    }
    req->timing.index_ms = req_clock_ms() - t_index;
    /* A shard holds about 1/shards of the items (ids hash evenly). */
    size_t items = e == E_OK && !pr ? vindex_count(rt->vi) / (size_t)(1 + rec->n_extra) *
                                          (size_t)(sharded ? inst->shards : 1)
                                    : 0;
    pthread_mutex_unlock(&rt->write_lock);
    registry_put(srv->registry, rt);
    if (items)
        compactor_note(srv, inst->id, items);
out:
    free(thumb);
    free(regions);
    free(proj);
    free(codes);
    rec->thumb = NULL;
    rec->extra = NULL;
    rec->extra_k = NULL;
    rec->n_extra = 0;
    rec->vector = raw;
    rec->codes = rec->extra_codes = NULL;
    rec->dim = raw_dim;
    return e;
}

enum err item_remove(struct request *req, const struct instance *inst, const char *item_id,
                     int *found)
{
    struct server *srv = req->srv;
    const struct projection *pr;
    enum err ce = compact_space(req, inst, &pr);
    *found = 0;
    if (ce)
        return ce;
    int sharded = inst->shards > 1;
    int shard = sharded ? shard_of_item(item_id, inst->shards) : 0;
    struct instance_rt *rt = sharded ? registry_peek_shard(srv->registry, inst->id, shard)
                                     : registry_get(srv->registry, inst->id);
    enum err e = E_OK;
    int64_t row = 0, seq = 0;
    if (!rt && sharded) { /* not held here: its owner replays the tombstone */
        enum db_status s = items_delete_seq(srv->db, inst->id, item_id, &row, &seq);
        *found = s == DB_OK;
        if (s != DB_OK && s != DB_NOT_FOUND) {
            char detail[300];
            snprintf(detail, sizeof detail, "item delete: %s", db_last_error());
            e = req_fail(req, E_STORE_FAILED, detail);
        }
        return e;
    }
    if (!rt)
        return req_fail(req, E_INDEX_FAILED, "index unavailable");
    double t_lock = req_clock_ms();
    pthread_mutex_lock(&rt->write_lock);
    req->timing.lock_ms = req_clock_ms() - t_lock;
    if (rt->retired) {
        /* Made compact meanwhile: the new index has this row too. */
        pthread_mutex_unlock(&rt->write_lock);
        registry_put(srv->registry, rt);
        rt = sharded ? registry_get_shard(srv->registry, inst->id, shard)
                     : registry_get(srv->registry, inst->id);
        if (!rt)
            return req_fail(req, E_INDEX_FAILED, "index unavailable");
        pthread_mutex_lock(&rt->write_lock);
        if (rt->retired) { /* not twice in one call */
            pthread_mutex_unlock(&rt->write_lock);
            registry_put(srv->registry, rt);
            return req_fail(req, E_MA_4508, "the instance's descriptor space changed; retry");
        }
    }
    enum db_status s = items_delete_seq(srv->db, inst->id, item_id, &row, &seq);
    *found = s == DB_OK;
    if (s == DB_OK) {
        int64_t ids[VEC_KINDS];
        item_ids(row, ids);
        double t_index = req_clock_ms();
        vindex_remove(rt->vi, VEC_KINDS, ids);
        registry_wrote(rt, seq);
        req->timing.index_ms = req_clock_ms() - t_index;
    } else if (s != DB_NOT_FOUND) {
        char detail[300];
        snprintf(detail, sizeof detail, "item delete: %s", db_last_error());
        e = req_fail(req, E_STORE_FAILED, detail);
    }
    pthread_mutex_unlock(&rt->write_lock);
    registry_put(srv->registry, rt);
    return e;
}

enum err item_write_result(struct request *req, enum db_status s, enum err not_found,
                           const char *item_id)
{
    if (s == DB_NOT_FOUND)
        return req_fail(req, not_found, item_id);
    if (s != DB_OK) {
        char detail[300];
        snprintf(detail, sizeof detail, "item write: %s", db_last_error());
        return req_fail(req, E_STORE_FAILED, detail);
    }
    req->reply = json_pack("{s:s}", "result", "success");
    return E_OK;
}
