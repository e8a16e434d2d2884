/* search.c: the vector search shared by v2 search and v1 image search. */
#include <stdlib.h>
#include <string.h>
#include "index/extract.h"
#include "index/vindex.h"
#include "server/ingest.h"
#include "server/registry.h"
#include "server/search.h"
#include "server/server.h"
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
                           const struct search_opts *o, const int64_t *allowed, size_t n_allowed,
                           struct hit *hits, size_t *n, size_t cap)
{
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
        if (items_vector_row(req->srv->db, rows[i], EXTRACT_DIM, &v) != DB_OK)
            continue;
        float ip = 0;
        for (int d = 0; d < EXTRACT_DIM; d++)
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
    float *scores = NULL;
    enum err e = E_OK;
    *hits = NULL;
    *n = 0;
    struct instance_rt *rt = registry_get(srv->registry, inst->id);
    if (!rt)
        return req_fail(req, E_INDEX_FAILED, "index unavailable");
    if (o->filter && (o->filter->tags || o->filter->num_tags)) {
        if (items_filter_rows(srv->db, inst->id, o->filter, &allowed, &n_allowed) != DB_OK) {
            e = req_fail(req, E_STORE_FAILED, "filter");
            goto out;
        }
    }
    /* Regional instances hold up to 1 + VEC_REGIONS vectors per item: ask
     * for that many more, and let the filter name every id of an item (the
     * blocks stay sorted: k = 0 ids first, then k = 1, ...). */
    int per_item = inst->regions ? 1 + VEC_REGIONS : 1;
    if (allowed && per_item > 1) {
        int64_t *all = malloc(n_allowed * (size_t)per_item * sizeof *all);
        if (!all) {
            e = req_fail(req, E_INTERNAL, "out of memory");
            goto out;
        }
        for (int kk = 0; kk < per_item; kk++)
            for (size_t i = 0; i < n_allowed; i++)
                all[(size_t)kk * n_allowed + i] = vec_id(allowed[i], kk);
        free(allowed);
        allowed = all;
        n_allowed *= (size_t)per_item;
    }
    int k = o->k * per_item;
    size_t count = vindex_count(rt->vi);
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
    if (k > 0) {
        struct vindex_search_params p = {.nprobe = o->nprobe,
                                         .max_scan = o->max_scan,
                                         .allowed = allowed,
                                         .n_allowed = n_allowed};
        if (vindex_search(rt->vi, query, k, &p, ids, scores, &found) != 0) {
            e = req_fail(req, E_INDEX_FAILED, vindex_last_error());
            goto out;
        }
    }
    /* Best first: the first time a row appears is its best view; a regional
     * view counts with a small penalty so the whole image wins ties. */
    for (int i = 0; i < found; i++) {
        int64_t row = vec_row(ids[i]);
        double sc = search_score(scores[i]) - (vec_k(ids[i]) ? REGION_PENALTY : 0);
        size_t j;
        for (j = 0; per_item > 1 && j < *n && (*hits)[j].row != row; j++)
            ;
        if (per_item > 1 && j < *n) {
            if (sc > (*hits)[j].score)
                (*hits)[j].score = sc;
            continue;
        }
        (*hits)[(*n)++] = (struct hit){row, sc < 0 ? 0 : sc};
    }
    if (o->use_phash && !(allowed && n_allowed == 0))
        add_phash_hits(req, inst, query, o, allowed, n_allowed, *hits, n, cap);
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
    registry_put(srv->registry, rt);
    return e;
}

/* Folds `add` into `acc` (best score per row), growing acc. */
static int merge_hits(struct hit **acc, size_t *n, size_t *cap, const struct hit *add, size_t n_add,
                      double penalty)
{
    for (size_t i = 0; i < n_add; i++) {
        double sc = add[i].score - penalty;
        if (sc < 0)
            sc = 0;
        size_t j;
        for (j = 0; j < *n && (*acc)[j].row != add[i].row; j++)
            ;
        if (j < *n) {
            if (sc > (*acc)[j].score)
                (*acc)[j].score = sc;
            continue;
        }
        if (*n == *cap) {
            size_t c = *cap ? *cap * 2 : 64;
            struct hit *g = realloc(*acc, c * sizeof *g);
            if (!g)
                return -1;
            *acc = g;
            *cap = c;
        }
        (*acc)[(*n)++] = (struct hit){add[i].row, sc};
    }
    return 0;
}

enum err search_image(struct request *req, const struct instance *inst, const struct image *img,
                      const float *upright, const struct search_opts *o, struct hit **hits,
                      size_t *n, int *rotated)
{
    const struct search_config *sc = &req->srv->cfg.search;
    *rotated = 0;
    enum err e = search_vector(req, inst, upright, o, hits, n);
    if (e || !sc->rotations || !img || (*n > 0 && (*hits)[0].score >= sc->rotation_below))
        return e;
    /* A weak upright match may be a rotated copy: try the other three
     * orientations (cost: three more extractions, only for such queries). */
    float *vec = malloc(EXTRACT_DIM * sizeof *vec);
    size_t cap = *n;
    if (!vec)
        return E_OK; /* the upright answer stands */
    struct search_opts ro = *o;
    ro.use_phash = 0;
    for (int q = 1; q <= 3 && e == E_OK; q++) {
        struct image rimg;
        struct hit *rh = NULL;
        size_t rn = 0;
        if (image_rotate(img, q, &rimg) != 0)
            break;
        e = image_embed(req, &rimg, vec, NULL);
        image_free(&rimg);
        if (e == E_OK)
            e = search_vector(req, inst, vec, &ro, &rh, &rn);
        if (e == E_OK && merge_hits(hits, n, &cap, rh, rn, sc->rotation_penalty) != 0)
            e = req_fail(req, E_INTERNAL, "out of memory");
        free(rh);
    }
    free(vec);
    if (e != E_OK) {
        free(*hits);
        *hits = NULL;
        *n = 0;
        return e;
    }
    *rotated = 1;
    qsort(*hits, *n, sizeof **hits, cmp_hit);
    if (*n > (size_t)o->k)
        *n = (size_t)o->k;
    return E_OK;
}
