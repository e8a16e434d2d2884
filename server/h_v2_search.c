/* h_v2_search.c: v2 search (API spec §4.2). IMAGE: nearest neighbours of
 * the query image; KEYWORD: items carrying the keywords. TEXT and CATEGORY
 * need models we do not have and are refused by name, never faked. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "server/handlers.h"
#include "server/ingest.h"
#include "server/json_util.h"
#include "server/params.h"
#include "server/search.h"
#include "server/server.h"
#include "server/shards.h"

static long long elapsed_ms(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (long long)(t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

struct search_args {
    long long limit, offset;
    double min_score;
    int has_min_score;
    const char *collapse_key;
    long long nprobe, max_scan;
    int partial; /* ours: a shard that does not answer leaves a partial answer */
};

/* Keeps only the best hit per distinct value of the collapse tag; items
 * without the tag are dropped. Hits arrive best first. */
static size_t collapse(struct item_meta *meta, size_t n, int *keep)
{
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        keep[i] = meta[i].item_id && meta[i].collapse_value;
        for (size_t j = 0; keep[i] && j < i; j++)
            if (keep[j] && !strcmp(meta[j].collapse_value, meta[i].collapse_value))
                keep[i] = 0;
        kept += (size_t)keep[i];
    }
    return kept;
}

static enum err image_search(struct request *req, const struct instance *inst,
                             const struct search_args *a, const struct item_filter *f,
                             struct timespec *t0)
{
    struct image_input in;
    struct image img = {0};
    float *vec = NULL;
    struct hit *hits = NULL;
    size_t nh = 0;
    struct item_meta *meta = NULL;
    int *keep = NULL;
    int64_t *rows = NULL;
    size_t nk = 0;
    enum err e;
    if ((e = v2_image_input(req, req->json, &in)) || (e = image_load(req, &in, &img)))
        goto out;
    uint64_t phash = 0;
    vec = malloc(EXTRACT_DIM * sizeof *vec);
    if (!vec) {
        e = req_fail(req, E_INTERNAL, "out of memory");
        goto out;
    }
    if ((e = image_embed(req, &img, vec, &phash)))
        goto out;
    /* The whole window is searched so total_num means the same on every
     * page: matches (after filters and min_score) among the best 1000. */
    struct search_opts o = {.filter = f,
                            .nprobe = (int)a->nprobe,
                            .max_scan = a->max_scan,
                            .k = SEARCH_MAX_K,
                            .use_phash = 1,
                            .phash = phash};
    struct shard_gaps gaps = {0};
    if (a->partial)
        o.gaps = &gaps;
    int rotated = 0;
    if ((e = search_image(req, inst, &img, vec, &o, &hits, &nh, &rotated)))
        goto out;
    while (nk < nh && (!a->has_min_score || hits[nk].score >= a->min_score))
        nk++;
    rows = malloc((nk + 1) * sizeof *rows);
    keep = malloc((nk + 1) * sizeof *keep);
    if (!rows || !keep) {
        e = req_fail(req, E_INTERNAL, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < nk; i++)
        rows[i] = hits[i].row;
    /* Without collapsing only the page's rows are read: the rest of the
     * window counts as present (the index was current when it answered),
     * so a big window costs no per-hit reads. Collapsing needs every row's
     * tag. */
    size_t want = a->collapse_key ? nk : (size_t)a->offset + (size_t)a->limit, scanned;
    if (items_meta_prefix(req->srv->db, inst->id, rows, nk, want, a->collapse_key, &meta,
                          &scanned) != DB_OK) {
        e = req_fail(req, E_STORE_FAILED, "item read");
        goto out;
    }
    size_t total;
    if (a->collapse_key) {
        total = collapse(meta, nk, keep);
    } else {
        total = nk;
        for (size_t i = 0; i < scanned; i++)
            total -= (size_t) !(keep[i] = meta[i].item_id != NULL);
        for (size_t i = scanned; i < nk; i++)
            keep[i] = 0; /* past the page: never shown */
    }
    json_t *items = json_array();
    size_t seen = 0, returned = 0;
    for (size_t i = 0; i < nk && returned < (size_t)a->limit; i++) {
        if (!keep[i] || seen++ < (size_t)a->offset)
            continue;
        json_array_append_new(items, json_pack("{s:s, s:f, s:O}", "id", meta[i].item_id, "score",
                                               hits[i].score, "source", meta[i].source));
        returned++;
    }
    char box[64];
    if (in.has_box)
        snprintf(box, sizeof box, "%d,%d,%d,%d", in.x1, in.y1, in.x2, in.y2);
    else
        snprintf(box, sizeof box, "0,0,%d,%d", img.orig_width, img.orig_height);
    req->reply = json_pack("{s:s, s:{s:o, s:{s:I, s:I, s:I}, s:{s:s}}}", "result", "success",
                           "data", "items", items, "search_info", "total_num", (json_int_t)total,
                           "return_num", (json_int_t)returned, "search_time",
                           (json_int_t)elapsed_ms(t0), "image_info", "box", box);
    if (a->partial && req->reply) {
        /* Ours (docs/compatibility.md): said only to a caller who asked. */
        json_t *info = json_object_get(json_object_get(req->reply, "data"), "search_info");
        json_t *missing = json_array();
        for (int s = 0; s < SHARDS_MAX; s++)
            if (gaps.missing[s])
                json_array_append_new(missing, json_integer(s));
        json_object_set_new(info, "partial", json_boolean(gaps.any));
        json_object_set_new(info, "missing_shards", missing);
    }
out:
    items_meta_free(meta, meta ? nk : 0);
    free(keep);
    free(rows);
    free(hits);
    free(vec);
    image_free(&img);
    return e;
}

static enum err keyword_search(struct request *req, const struct instance *inst,
                               const struct search_args *a, const struct item_filter *f,
                               struct timespec *t0)
{
    json_t *keywords = NULL;
    int has_cursor = 0;
    double cscore = 0;
    const char *cid = NULL;
    struct item_meta *hits = NULL;
    size_t n = 0;
    long long total = 0;
    enum err e;
    if ((e = params_keywords(req, req->json, 1, 10, JREQ, &keywords)) ||
        (e = params_cursor(req, req->json, &has_cursor, &cscore, &cid)))
        return e;
    if (has_cursor && a->offset != 0) /* "with full recall offset must be 0" */
        return req_fail(req, E_BAD_PARAM, "offset");
    if (items_keyword_search(req->srv->db, inst->id, keywords, f, has_cursor, cscore, cid,
                             (int)a->offset, (int)a->limit, &hits, &n, &total) != DB_OK) {
        items_meta_free(hits, n);
        return req_fail(req, E_STORE_FAILED, "keyword search");
    }
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, json_pack("{s:s, s:f, s:O}", "id", hits[i].item_id, "score",
                                               hits[i].score, "source", hits[i].source));
    json_t *info = json_pack("{s:I, s:I, s:I}", "total_num", (json_int_t)total, "return_num",
                             (json_int_t)n, "search_time", (json_int_t)elapsed_ms(t0));
    if (n)
        json_object_set_new(
            info, "last_item",
            json_pack("{s:f, s:s}", "score", hits[n - 1].score, "id", hits[n - 1].item_id));
    req->reply = json_pack("{s:s, s:{s:o, s:o}}", "result", "success", "data", "items", items,
                           "search_info", info);
    items_meta_free(hits, n);
    return E_OK;
}

enum err h_v2_search(struct request *req)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct instance inst;
    enum err e = req_instance(req, req->params[1], &inst);
    if (e)
        return e;
    unsigned type = 0;
    struct search_args a = {.limit = 10, .offset = 0, .nprobe = 100, .max_scan = 10000};
    struct item_filter f;
    json_t *opt = NULL;
    const char *text = NULL;
    if ((e = params_search_type(req, req->json, &type)) ||
        (e = jget_int(req, req->json, "limit", JOPT, 1, 1000, &a.limit)) ||
        (e = jget_int(req, req->json, "offset", JOPT, 0, 1000, &a.offset)) ||
        (e = jget_number(req, req->json, "min_score", JOPT, 0, 1, &a.min_score)) ||
        (e = params_filter(req, &inst, req->json, &f)) ||
        (e = jget_string(req, req->json, "text", JOPT, 1, 512, &text)) ||
        (e = jget_object(req, req->json, "optional_params", JOPT, &opt)))
        goto out;
    json_t *partial = json_object_get(req->json, "partial");
    if (partial && !json_is_null(partial) && !json_is_boolean(partial)) {
        e = req_fail(req, E_BAD_PARAM, "partial");
        goto out;
    }
    a.partial = json_is_true(partial);
    a.has_min_score = json_object_get(req->json, "min_score") &&
                      !json_is_null(json_object_get(req->json, "min_score"));
    if (a.offset + a.limit > 1000) {
        e = req_fail(req, E_BAD_PARAM, "offset");
        goto out;
    }
    if (opt && ((e = jget_string(req, opt, "collapse_key", JOPT, 1, 64, &a.collapse_key)) ||
                (e = jget_int(req, opt, "nprobe", JOPT, 1, 1 << 20, &a.nprobe)) ||
                (e = jget_int(req, opt, "max_scan_num", JOPT, 1, 1LL << 40, &a.max_scan))))
        goto out;
    if (a.collapse_key && !instance_has_tag_key(&inst, a.collapse_key)) {
        e = req_fail(req, E_BAD_PARAM, "collapse_key");
        goto out;
    }
    if (!(inst.search_types & type)) {
        e = req_fail(req, E_MMS_SEARCH_TYPE_DISABLED, search_type_name(type));
        goto out;
    }
    if (type == ST_IMAGE)
        e = image_search(req, &inst, &a, &f, &t0);
    else if (type == ST_KEYWORD)
        e = keyword_search(req, &inst, &a, &f, &t0);
    else
        e = req_fail(req, E_MMS_SEARCH_TYPE_DISABLED, search_type_name(type));
out:
    instance_free(&inst);
    return e;
}
