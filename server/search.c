/* search.c: the vector search shared by v2 search and v1 image search. */
#include <stdlib.h>
#include <string.h>
#include "index/extract.h"
#include "index/views.h"
#include "index/vindex.h"
#include "server/compact.h"
#include "server/ingest.h"
#include "server/registry.h"
#include "server/search.h"
#include "server/server.h"
#include "server/shards.h"
#include "storage/vectors.h"

double search_score(float ip)
{
    double s = ip;
    return s < 0 ? 0 : s > 1 ? 1 : s;
}

static int cmp_hit(const void *a, const void *b)
{
    const struct hit *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return x->row < y->row ? -1 : x->row > y->row;
}

static int cmp_row_best(const void *a, const void *b)
{
    const struct hit *x = a, *y = b;
    if (x->row != y->row)
        return x->row < y->row ? -1 : 1;
    return x->score < y->score ? 1 : x->score > y->score ? -1 : 0;
}

/* Keeps one hit per row, its best score. O(n log n): an item may come back
 * through several views, and k runs to thousands. */
static void fold_rows(struct hit *h, size_t *n)
{
    if (*n < 2)
        return;
    qsort(h, *n, sizeof *h, cmp_row_best);
    size_t m = 1;
    for (size_t i = 1; i < *n; i++)
        if (h[i].row != h[m - 1].row)
            h[m++] = h[i];
    *n = m;
}

static int in_sorted(const int64_t *a, size_t n, int64_t v)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (a[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && a[lo] == v;
}

/* Exact duplicates by hash are always found, even when an ANN index would
 * miss them: score them exactly from their stored vectors. */
static void add_phash_hits(struct request *req, const struct instance *inst, const float *query,
                           const struct projection *pr, const struct search_opts *o,
                           const int64_t *allowed, size_t n_allowed, struct hit *hits, size_t *n,
                           size_t cap)
{
    int dim = compact_dim(pr);
    int64_t *rows = NULL;
    size_t nr = 0;
    if (items_by_phash(req->srv->db, inst->id, o->phash, &rows, &nr) != DB_OK) {
        free(rows);
        return;
    }
    for (size_t i = 0; i < nr && *n < cap; i++) {
        int seen = 0;
        for (size_t j = 0; j < *n && !seen; j++)
            seen = hits[j].row == rows[i];
        if (seen || (allowed && !in_sorted(allowed, n_allowed, rows[i])))
            continue;
        float *v = NULL;
        if (items_vector_row(req->srv->db, rows[i], dim, pr, &v) != DB_OK)
            continue;
        float ip = 0;
        for (int d = 0; d < dim; d++)
            ip += v[d] * query[d];
        free(v);
        hits[(*n)++] = (struct hit){rows[i], search_score(ip)};
    }
    free(rows);
}

enum err search_vector(struct request *req, const struct instance *inst, const float *query,
                       const struct search_opts *o, struct hit **hits, size_t *n)
{
    struct server *srv = req->srv;
    int64_t *allowed = NULL, *ids = NULL;
    size_t n_allowed = 0;
    float *scores = NULL, *projected = NULL;
    *hits = NULL;
    *n = 0;
    const struct projection *pr;
    enum err e = compact_space(req, inst, &pr);
    if (e)
        return e;
    if (pr && !o->in_space) {
        if (!(projected = malloc((size_t)compact_dim(pr) * sizeof *projected)))
            return req_fail(req, E_INTERNAL, "out of memory");
        compact_project(pr, query, projected, NULL);
        query = projected;
    }
    /* Several shards: their owners are probed below (server/shards.h). */
    int sharded = inst->shards > 1;
    struct instance_rt *rt = sharded ? NULL : registry_get(srv->registry, inst->id);
    if (!sharded && !rt) {
        free(projected);
        return req_fail(req, E_INDEX_FAILED, "index unavailable");
    }
    if (rt && pr && rt->dim != compact_dim(pr)) {
        /* Read as compact before the compactor dropped this float entry. */
        registry_wait_writer(rt);
        registry_put(srv->registry, rt);
        if (!(rt = registry_get(srv->registry, inst->id))) {
            free(projected);
            return req_fail(req, E_INDEX_FAILED, "index unavailable");
        }
    }
    const struct projection *now =
        sharded && !pr && !o->in_space ? compact_now(srv, inst->id) : NULL;
    if (now) {
        /* Made compact since the instance was read: the shards' owners
         * search the new space; so does the query now. */
        if (!(projected = malloc((size_t)compact_dim(now) * sizeof *projected)))
            return req_fail(req, E_INTERNAL, "out of memory");
        pr = now;
        compact_project(pr, query, projected, NULL);
        query = projected;
    }
    if (rt && rt->dim != compact_dim(pr) && !pr && !o->in_space && rt->pr &&
        compact_dim(rt->pr) == rt->dim && compact_switched(srv, inst->id, rt->pr)) {
        /* Made compact since the instance was read (server/compactor.h):
         * the index is already in its new space; so is the query now. */
        if (!(projected = malloc((size_t)rt->dim * sizeof *projected))) {
            registry_put(srv->registry, rt);
            return req_fail(req, E_INTERNAL, "out of memory");
        }
        pr = rt->pr;
        compact_project(pr, query, projected, NULL);
        query = projected;
    }
    if (rt && rt->dim != compact_dim(pr)) { /* a deleted instance's index, its id reused */
        registry_put(srv->registry, rt);
        free(projected);
        return req_fail(req, E_INDEX_FAILED, "index of another descriptor space");
    }
    /* Scores in a compact space run lower: its own view penalty. */
    double view_penalty = pr ? srv->cfg.search.compact_view_penalty : VIEW_PENALTY;
    if (o->filter && (o->filter->tags || o->filter->num_tags)) {
        if (items_filter_rows(srv->db, inst->id, o->filter, &allowed, &n_allowed) != DB_OK) {
            e = req_fail(req, E_STORE_FAILED, "filter");
            goto out;
        }
    }
    /* Instances with regions or views hold several vectors per item: ask
     * for that many more, and let the filter name every id of an item this
     * query may meet (the blocks stay sorted: k = 0 ids first, then k = 1,
     * ...). A grey query meets grey views only, other queries never do. */
    int kinds[VEC_KINDS];
    int per_item = instance_view_kinds(inst, kinds);
    unsigned meet = 0;
    for (int i = 0; i < per_item; i++)
        if ((kinds[i] == VEC_K_GREY) == !!o->grey)
            meet |= 1u << kinds[i];
    if (allowed && per_item > 1) {
        int64_t *all = malloc((n_allowed ? n_allowed : 1) * (size_t)per_item * sizeof *all);
        if (!all) {
            e = req_fail(req, E_INTERNAL, "out of memory");
            goto out;
        }
        size_t na = 0;
        for (int kk = 0; kk < per_item; kk++)
            if (meet & (1u << kinds[kk]))
                for (size_t i = 0; i < n_allowed; i++)
                    all[na++] = vec_id(allowed[i], kinds[kk]);
        free(allowed);
        allowed = all;
        n_allowed = na;
    }
    int k = o->k * per_item;
    size_t count = rt ? vindex_count(rt->vi) : (size_t)k; /* each shard caps its own */
    if ((size_t)k > count)
        k = (int)count;
    if (allowed && (size_t)k > n_allowed)
        k = (int)n_allowed;
    size_t cap = (size_t)k + 64;
    *hits = calloc(cap, sizeof **hits);
    ids = malloc(((size_t)k + 1) * sizeof *ids);
    scores = malloc(((size_t)k + 1) * sizeof *scores);
    if (!*hits || !ids || !scores) {
        e = req_fail(req, E_INTERNAL, "out of memory");
        goto out;
    }
    int found = 0;
    if (k > 0 && sharded) {
        struct shard_query q = {.query = query,
                                .dim = compact_dim(pr),
                                .k = k,
                                .nprobe = o->nprobe,
                                .max_scan = o->max_scan,
                                .allowed = allowed,
                                .n_allowed = n_allowed};
        if ((e = shards_search(req, inst, &q, ids, scores, &found, o->gaps)))
            goto out;
    } else if (k > 0) {
        struct vindex_search_params p = {.nprobe = o->nprobe,
                                         .max_scan = o->max_scan,
                                         .allowed = allowed,
                                         .n_allowed = n_allowed};
        if (vindex_search(rt->vi, query, k, &p, ids, scores, &found) != 0) {
            e = req_fail(req, E_INDEX_FAILED, vindex_last_error());
            goto out;
        }
    }
    /* A view counts with a small penalty so the whole image wins ties; each
     * row keeps its best view. */
    for (int i = 0; i < found; i++) {
        if (!(meet & (1u << vec_k(ids[i]))))
            continue;
        double sc = search_score(scores[i]) - (vec_k(ids[i]) ? view_penalty : 0);
        (*hits)[(*n)++] = (struct hit){vec_row(ids[i]), sc < 0 ? 0 : sc};
    }
    if (per_item > 1)
        fold_rows(*hits, n);
    if (o->use_phash && !o->grey && !(allowed && n_allowed == 0))
        add_phash_hits(req, inst, query, pr, o, allowed, n_allowed, *hits, n, cap);
    qsort(*hits, *n, sizeof **hits, cmp_hit);
    if (*n > (size_t)o->k)
        *n = (size_t)o->k;
out:
    if (e != E_OK) {
        free(*hits);
        *hits = NULL;
        *n = 0;
    }
    free(allowed);
    free(ids);
    free(scores);
    free(projected);
    registry_put(srv->registry, rt);
    return e;
}

/* Folds `add`, less `penalty`, into `acc` (best score per row), growing acc. */
static int merge_hits(struct hit **acc, size_t *n, size_t *cap, const struct hit *add, size_t n_add,
                      double penalty)
{
    if (*n + n_add > *cap) {
        size_t c = *n + n_add + 64;
        struct hit *g = realloc(*acc, c * sizeof *g);
        if (!g)
            return -1;
        *acc = g;
        *cap = c;
    }
    for (size_t i = 0; i < n_add; i++) {
        double sc = add[i].score - penalty;
        (*acc)[(*n)++] = (struct hit){add[i].row, sc < 0 ? 0 : sc};
    }
    fold_rows(*acc, n);
    return 0;
}

static double best_score(const struct hit *h, size_t n)
{
    double b = -1;
    for (size_t i = 0; i < n; i++)
        if (h[i].score > b)
            b = h[i].score;
    return b;
}

/* Embeds `view` (freed here), searches it and folds its hits into *hits. */
static enum err search_view(struct request *req, const struct instance *inst, struct image *view,
                            const struct search_opts *o, double penalty, float *vec,
                            struct hit **hits, size_t *n, size_t *cap)
{
    struct hit *vh = NULL;
    size_t vn = 0;
    enum err e = image_embed(req, view, vec, NULL);
    image_free(view);
    if (e == E_OK)
        e = search_vector(req, inst, vec, o, &vh, &vn);
    if (e == E_OK && merge_hits(hits, n, cap, vh, vn, penalty) != 0)
        e = req_fail(req, E_INTERNAL, "out of memory");
    free(vh);
    return e;
}

/* When a match counts as weak, and what its retries cost, in the
 * instance's space: compact scores run lower ([search] compact_*). */
struct retry_limits {
    double views_below, view_penalty, rotation_below, rotation_penalty;
};

static struct retry_limits retry_limits(const struct search_config *sc, int compact)
{
    if (compact)
        return (struct retry_limits){sc->compact_views_below, sc->compact_view_penalty,
                                     sc->compact_rotation_below, sc->compact_rotation_penalty};
    return (struct retry_limits){sc->views_below, QUERY_VIEW_PENALTY, sc->rotation_below,
                                 sc->rotation_penalty};
}

/* A weak match may be a copy with a caption, logo or border (the centre
 * window leaves those out) or with its colours changed (the grey view). */
static enum err search_query_views(struct request *req, const struct instance *inst,
                                   const struct image *img, const struct search_opts *o,
                                   const struct retry_limits *lim, float *vec, struct hit **hits,
                                   size_t *n, size_t *cap)
{
    double below = lim->views_below;
    struct search_opts vo = *o;
    vo.use_phash = 0;
    int w = img->orig_width, h = img->orig_height;
    int cw = w * QUERY_WINDOW_TENTHS / 10, ch = h * QUERY_WINDOW_TENTHS / 10;
    struct image view;
    if (image_crop(img, (w - cw) / 2, (h - ch) / 2, (w - cw) / 2 + cw, (h - ch) / 2 + ch, &view) ==
        0) {
        enum err e = search_view(req, inst, &view, &vo, lim->view_penalty, vec, hits, n, cap);
        if (e)
            return e;
    }
    if (best_score(*hits, *n) >= below || image_grey_stretch(img, &view) != 0)
        return E_OK;
    vo.grey = 1;
    return search_view(req, inst, &view, &vo, lim->view_penalty, vec, hits, n, cap);
}

enum err search_image(struct request *req, const struct instance *inst, const struct image *img,
                      const float *upright, const struct search_opts *o, struct hit **hits,
                      size_t *n, int *rotated)
{
    const struct search_config *sc = &req->srv->cfg.search;
    *rotated = 0;
    enum err e = search_vector(req, inst, upright, o, hits, n);
    if (e || !img)
        return e;
    struct retry_limits lim = retry_limits(sc, inst->projection != NULL);
    int views = sc->query_views && inst->views && best_score(*hits, *n) < lim.views_below;
    if (!views && (!sc->rotations || best_score(*hits, *n) >= lim.rotation_below))
        return E_OK;
    float *vec = malloc(EXTRACT_DIM * sizeof *vec);
    size_t cap = *n;
    if (!vec)
        return E_OK; /* the plain answer stands */
    if (views)
        e = search_query_views(req, inst, img, o, &lim, vec, hits, n, &cap);
    /* A weak upright match may be a rotated copy: try the other three
     * orientations (cost: three more extractions, only for such queries). */
    if (e == E_OK && sc->rotations && best_score(*hits, *n) < lim.rotation_below) {
        struct search_opts ro = *o;
        ro.use_phash = 0;
        for (int q = 1; q <= 3 && e == E_OK; q++) {
            struct image rimg;
            if (image_rotate(img, q, &rimg) != 0)
                break;
            e = search_view(req, inst, &rimg, &ro, lim.rotation_penalty, vec, hits, n, &cap);
        }
        *rotated = 1;
    }
    free(vec);
    if (e != E_OK) {
        free(*hits);
        *hits = NULL;
        *n = 0;
        return e;
    }
    qsort(*hits, *n, sizeof **hits, cmp_hit);
    if (*n > (size_t)o->k)
        *n = (size_t)o->k;
    return E_OK;
}
