/* h_v1_images.c: the legacy v1 picture API (API spec §5.4-5.8). A
 * picture's `path` is its id; tags are the instance's tag keys. */
#include <stdlib.h>
#include <string.h>
#include "server/compact.h"
#include "server/handlers.h"
#include "server/ingest.h"
#include "server/json_util.h"
#include "server/search.h"
#include "server/server.h"

#define V1_LIMITS                                                                                  \
    {                                                                                              \
        100, 2048, EXTRACT_SIDE                                                                    \
    }

/* v1 tags: {key: "value"}, at most 10 keys, each configured on the instance. */
static enum err v1_tags(struct request *req, const struct instance *inst, int required,
                        json_t **tags)
{
    *tags = NULL;
    enum err e = jget_object(req, req->json, "tags", required, tags);
    if (e || !*tags)
        return e;
    if (json_object_size(*tags) > 10)
        return req_fail(req, E_BAD_PARAM, "tags");
    const char *key;
    json_t *v;
    json_object_foreach(*tags, key, v)
    {
        if (!instance_has_tag_key(inst, key) || !json_is_string(v) ||
            utf8_len(json_string_value(v)) > 64 ||
            strlen(json_string_value(v)) != json_string_length(v))
            return req_fail(req, E_BAD_PARAM, "tags");
    }
    return E_OK;
}

static enum err v1_instance(struct request *req, struct instance *inst)
{
    return req_instance(req, req->params[1], inst);
}

enum err h_v1_image_add(struct request *req)
{
    struct instance inst;
    enum err e = v1_instance(req, &inst);
    if (e)
        return e;
    const char *file = NULL, *path = NULL;
    json_t *tags;
    struct image img = {0};
    float *vec = NULL;
    if ((e = jget_string(req, req->json, "path", JREQ, 1, 4096, &path)) ||
        (e = jget_string(req, req->json, "file", JOPT, 0, 12u << 20, &file)) ||
        (e = v1_tags(req, &inst, JOPT, &tags)))
        goto out;
    struct image_input in = {.base64 = file && *file ? file : NULL,
                             .url = path,
                             .base64_field = "file",
                             .url_field = "path",
                             .limits = V1_LIMITS,
                             .max_bytes = V1_MAX_IMAGE_BYTES};
    uint64_t phash = 0;
    if ((e = image_load(req, &in, &img)))
        goto out;
    if (!(vec = malloc(EXTRACT_DIM * sizeof *vec))) {
        e = req_fail(req, E_INTERNAL, "out of memory");
        goto out;
    }
    if ((e = image_embed(req, &img, vec, &phash)))
        goto out;
    struct item_rec rec = {.item_id = path,
                           .custom_tags = tags,
                           .vector = vec,
                           .dim = EXTRACT_DIM,
                           .phash = phash,
                           .width = img.orig_width,
                           .height = img.orig_height};
    /* v1 has no `force`: adding a path again replaces the picture. */
    if ((e = item_store(req, &inst, &rec, &img, 1)) == E_OK)
        req->reply = json_pack("{s:s}", "result", "success");
out:
    free(vec);
    image_free(&img);
    instance_free(&inst);
    return e;
}

enum err h_v1_image_check(struct request *req)
{
    struct instance inst;
    enum err e = v1_instance(req, &inst);
    if (e)
        return e;
    const char *path = NULL;
    if ((e = jget_string(req, req->json, "path", JREQ, 1, 4096, &path)) == E_OK) {
        enum db_status s = items_get(req->srv->db, inst.id, path, NULL, NULL);
        if (s == DB_ERROR)
            e = req_fail(req, E_STORE_FAILED, "item read");
        else
            req->reply = json_pack("{s:s}", "exist", s == DB_OK ? "true" : "false");
    }
    instance_free(&inst);
    return e;
}

enum err h_v1_image_modify(struct request *req)
{
    struct instance inst;
    enum err e = v1_instance(req, &inst);
    if (e)
        return e;
    const char *path = NULL;
    json_t *tags;
    if ((e = jget_string(req, req->json, "path", JREQ, 1, 4096, &path)) ||
        (e = v1_tags(req, &inst, JREQ, &tags)))
        goto out;
    e = item_write_result(req, items_update(req->srv->db, inst.id, path, NULL, tags, NULL, 1),
                          E_IS_0016, path);
out:
    instance_free(&inst);
    return e;
}

enum err h_v1_image_delete(struct request *req)
{
    struct instance inst;
    enum err e = v1_instance(req, &inst);
    if (e)
        return e;
    const char *path = NULL;
    int found = 0;
    if ((e = jget_string(req, req->json, "path", JREQ, 1, 4096, &path)) ||
        (e = item_remove(req, &inst, path, &found)))
        goto out;
    if (!found)
        e = req_fail(req, E_IS_0016, path);
    else
        req->reply = json_pack("{s:s}", "result", "success");
out:
    instance_free(&inst);
    return e;
}

/* The v1 box {x, y, width, height} as corners. */
static enum err v1_box(struct request *req, struct image_input *in)
{
    json_t *box = NULL;
    long long x = 0, y = 0, w = 0, h = 0;
    enum err e;
    if ((e = jget_object(req, req->json, "box", JREQ, &box)) ||
        (e = jget_int(req, box, "x", JREQ, 0, 1 << 20, &x)) ||
        (e = jget_int(req, box, "y", JREQ, 0, 1 << 20, &y)) ||
        (e = jget_int(req, box, "width", JREQ, 1, 1 << 20, &w)) ||
        (e = jget_int(req, box, "height", JREQ, 1, 1 << 20, &h)))
        return req_fail(req, E_BAD_PARAM, "box");
    in->has_box = 1;
    in->x1 = (int)x;
    in->y1 = (int)y;
    in->x2 = (int)(x + w);
    in->y2 = (int)(y + h);
    in->min_box_side = 1;
    in->box_field = "box";
    return E_OK;
}

enum err h_v1_image_search(struct request *req)
{
    struct instance inst;
    enum err e = v1_instance(req, &inst);
    if (e)
        return e;
    const char *file = NULL, *path = NULL;
    long long limit = 10, offset = 0;
    int is_crop = 0;
    json_t *tags, *filter_tags = NULL;
    struct image img = {0};
    float *vec = NULL;
    struct hit *hits = NULL;
    size_t nh = 0;
    struct item_meta *meta = NULL;
    int64_t *rows = NULL;
    uint64_t phash = 0;
    int use_phash = 0, in_space = 0;
    if ((e = jget_string(req, req->json, "file", JOPT, 0, 12u << 20, &file)) ||
        (e = jget_string(req, req->json, "path", JOPT, 1, 4096, &path)) ||
        (e = jget_int(req, req->json, "limit", JOPT, 1, 100, &limit)) ||
        (e = jget_int(req, req->json, "offset", JOPT, 0, 1000, &offset)) ||
        (e = jget_bool(req, req->json, "is_crop", JOPT, &is_crop)) ||
        (e = v1_tags(req, &inst, JOPT, &tags)))
        goto out;
    if (file && !*file)
        file = NULL;
    if (!file && !path) {
        e = req_fail(req, E_MISSING_PARAM, "file");
        goto out;
    }
    if (file) {
        struct image_input in = {.base64 = file,
                                 .base64_field = "file",
                                 .limits = V1_LIMITS,
                                 .max_bytes = V1_MAX_IMAGE_BYTES};
        if (is_crop && (e = v1_box(req, &in)))
            goto out;
        if (!(vec = malloc(EXTRACT_DIM * sizeof *vec))) {
            e = req_fail(req, E_INTERNAL, "out of memory");
            goto out;
        }
        if ((e = image_load(req, &in, &img)) || (e = image_embed(req, &img, vec, &phash)))
            goto out;
        use_phash = 1;
    } else {
        /* A picture already in the library searches with its stored vector,
         * already in the instance's space. */
        const struct projection *pr;
        if ((e = compact_space(req, &inst, &pr)))
            goto out;
        enum db_status s = items_vector(req->srv->db, inst.id, path, compact_dim(pr), pr, &vec);
        if (s != DB_OK) {
            e = req_fail(req, s == DB_NOT_FOUND ? E_IS_0016 : E_STORE_FAILED, "path");
            goto out;
        }
        in_space = 1;
    }
    /* tags {k: v} filter = custom_tags {k: [v]}, AND across keys. */
    if (tags) {
        filter_tags = json_object();
        const char *key;
        json_t *v;
        json_object_foreach(tags, key, v)
            json_object_set_new(filter_tags, key, json_pack("[O]", v));
    }
    struct item_filter f = {.tags = filter_tags, .num_tags = NULL};
    struct search_opts o = {.filter = &f,
                            .k = SEARCH_MAX_K,
                            .use_phash = use_phash,
                            .phash = phash,
                            .nprobe = 100,
                            .max_scan = 10000,
                            .in_space = in_space};
    int rotated = 0;
    if ((e = search_image(req, &inst, file ? &img : NULL, vec, &o, &hits, &nh, &rotated)))
        goto out;
    rows = malloc((nh + 1) * sizeof *rows);
    if (!rows) {
        e = req_fail(req, E_INTERNAL, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < nh; i++)
        rows[i] = hits[i].row;
    /* Only the page's rows are read (as in v2 search): the rest of the
     * window counts as present. */
    size_t scanned;
    if (items_meta_prefix(req->srv->db, inst.id, rows, nh, (size_t)offset + (size_t)limit, NULL,
                          &meta, &scanned) != DB_OK) {
        e = req_fail(req, E_STORE_FAILED, "item read");
        goto out;
    }
    json_t *result = json_array();
    size_t count = nh - scanned, returned = 0;
    for (size_t i = 0; i < scanned; i++) {
        if (!meta[i].item_id)
            continue;
        if (count++ < (size_t)offset || returned >= (size_t)limit)
            continue;
        json_t *t = json_object_get(meta[i].source, "custom_tags");
        json_array_append_new(result,
                              json_pack("{s:s, s:f, s:o}", "path", meta[i].item_id, "sim",
                                        hits[i].score, "tags", t ? json_incref(t) : json_object()));
        returned++;
    }
    req->reply = json_pack("{s:I, s:o}", "count", (json_int_t)count, "result", result);
out:
    items_meta_free(meta, meta ? nh : 0);
    free(rows);
    free(hits);
    free(vec);
    json_decref(filter_tags);
    image_free(&img);
    instance_free(&inst);
    return e;
}
