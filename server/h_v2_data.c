/* h_v2_data.c: v2 data/add, data/check, data/update, data/delete (API spec
 * §4.1, §4.3-4.5). Metadata lives in SQLite; add also writes the vector to
 * the instance's index before it answers. */
#include <stdlib.h>
#include <string.h>
#include "server/handlers.h"
#include "server/ingest.h"
#include "server/json_util.h"
#include "server/params.h"
#include "server/server.h"

#define V2_LIMITS                                                                                  \
    {                                                                                              \
        65, 4095, EXTRACT_SIDE                                                                     \
    }
#define CHECK_LIMIT_MAX 100
#define DELETE_BATCH 100

/* The instance of a v2 path: params[1] is {service_name}. */
static enum err v2_instance(struct request *req, struct instance *inst)
{
    return req_instance(req, req->params[1], inst);
}

/* image_base64 / image_url and optional_params.box of add and search. */
enum err v2_image_input(struct request *req, json_t *body, struct image_input *in)
{
    enum err e;
    json_t *opt = NULL;
    const char *box = NULL;
    memset(in, 0, sizeof *in);
    in->base64_field = "image_base64";
    in->url_field = "image_url";
    in->box_field = "box";
    in->limits = (struct decode_limits)V2_LIMITS;
    in->max_bytes = V2_MAX_IMAGE_BYTES;
    in->min_box_side = 15;
    if ((e = jget_string(req, body, "image_base64", JOPT, 1, 12u << 20, &in->base64)) ||
        (e = jget_string(req, body, "image_url", JOPT, 1, 4096, &in->url)) ||
        (e = jget_object(req, body, "optional_params", JOPT, &opt)))
        return e;
    if (!in->base64 && !in->url)
        return req_fail(req, E_MISSING_PARAM, "image_base64");
    if (opt) {
        int b;
        long long cat;
        /* Detection and classification are product-search features we do
         * not have; the flags are accepted and change nothing. */
        if ((e = jget_string(req, opt, "box", JOPT, 7, 64, &box)) ||
            (e = jget_bool(req, opt, "do_det", JOPT, &b)) ||
            (e = jget_bool(req, opt, "do_cls", JOPT, &b)) ||
            (e = jget_int(req, opt, "category", JOPT, 0, 1LL << 31, &cat)))
            return e;
        if (box) {
            if (parse_box(box, &in->x1, &in->y1, &in->x2, &in->y2) != 0)
                return req_fail(req, E_BAD_PARAM, "box");
            in->has_box = 1;
        }
    }
    return E_OK;
}

enum err h_v2_add(struct request *req)
{
    struct instance inst;
    enum err e = v2_instance(req, &inst);
    if (e)
        return e;
    const char *item_id = NULL, *desc = NULL;
    int force = 0;
    json_t *tags, *num, *keywords = NULL;
    struct image_input in;
    struct image img = {0};
    float *vec = NULL;
    if ((e = jget_string(req, req->json, "item_id", JREQ, 1, 256, &item_id)) ||
        (e = jget_bool(req, req->json, "force", JOPT, &force)) ||
        (e = jget_string(req, req->json, "desc", JOPT, 1, 2048, &desc)) ||
        (e = params_item_tags(req, &inst, req->json, &tags, &num)) ||
        (e = params_keywords(req, req->json, 1, 100, JOPT, &keywords)) ||
        (e = v2_image_input(req, req->json, &in)))
        goto out;
    if ((e = image_load(req, &in, &img)))
        goto out;
    vec = malloc(EXTRACT_DIM * sizeof *vec);
    uint64_t phash = 0;
    if (!vec) {
        e = req_fail(req, E_INTERNAL, "out of memory");
        goto out;
    }
    if ((e = image_embed(req, &img, vec, &phash)))
        goto out;
    char box[64];
    if (in.has_box)
        snprintf(box, sizeof box, "%d,%d,%d,%d", in.x1, in.y1, in.x2, in.y2);
    else
        snprintf(box, sizeof box, "0,0,%d,%d", img.orig_width, img.orig_height);
    struct item_rec rec = {.item_id = item_id,
                           .desc = desc,
                           .custom_tags = tags,
                           .num_tags = num,
                           .keywords = keywords,
                           .vector = vec,
                           .dim = EXTRACT_DIM,
                           .phash = phash,
                           .width = img.orig_width,
                           .height = img.orig_height,
                           .box = in.has_box ? box : NULL};
    if ((e = item_store(req, &inst, &rec, &img, force)))
        goto out;
    req->reply = json_pack("{s:s, s:{s:{s:[{s:s}]}}}", "result", "success", "data", "image_info",
                           "objects", "box", box);
out:
    free(vec);
    image_free(&img);
    instance_free(&inst);
    return e;
}

static json_t *cursor_json(const char *id, double score)
{
    return json_pack("{s:f, s:s}", "score", score, "id", id);
}

enum err h_v2_check(struct request *req)
{
    struct instance inst;
    enum err e = v2_instance(req, &inst);
    if (e)
        return e;
    const char *item_id = NULL, *after = NULL;
    long long limit = 10;
    int has_cursor = 0;
    double cursor_score = 0;
    struct item_filter f;
    struct item_meta *list = NULL;
    size_t n = 0;
    if ((e = jget_string(req, req->json, "item_id", JOPT, 1, 256, &item_id)) ||
        (e = params_filter(req, &inst, req->json, &f)))
        goto out;
    if (item_id) {
        json_t *source = NULL;
        enum db_status s = items_get(req->srv->db, inst.id, item_id, NULL, &source);
        if (s == DB_ERROR) {
            e = req_fail(req, E_STORE_FAILED, "item read");
            goto out;
        }
        req->reply = s == DB_OK
                         ? json_pack("{s:s, s:{s:b, s:o}}", "result", "success", "data", "existed",
                                     1, "item_info", source)
                         : json_pack("{s:s, s:{s:b}}", "result", "success", "data", "existed", 0);
        goto out;
    }
    if (!f.tags && !f.num_tags) {
        e = req_fail(req, E_MISSING_PARAM, "item_id");
        goto out;
    }
    if ((e = jget_int(req, req->json, "limit", JOPT, 1, CHECK_LIMIT_MAX, &limit)) ||
        (e = params_cursor(req, req->json, &has_cursor, &cursor_score, &after)))
        goto out;
    long long total = 0;
    if (items_list(req->srv->db, inst.id, &f, has_cursor ? after : NULL, (int)limit, &list, &n,
                   &total) != DB_OK) {
        e = req_fail(req, E_STORE_FAILED, "item list");
        goto out;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, json_pack("{s:s, s:f, s:O}", "id", list[i].item_id, "score",
                                               1.0, "source", list[i].source));
    json_t *info =
        json_pack("{s:I, s:I}", "total_num", (json_int_t)total, "return_num", (json_int_t)n);
    if (n)
        json_object_set_new(info, "last_item", cursor_json(list[n - 1].item_id, 1.0));
    req->reply = json_pack("{s:s, s:{s:o, s:o}}", "result", "success", "data", "items", items,
                           "check_info", info);
out:
    items_meta_free(list, n);
    instance_free(&inst);
    return e;
}

enum err h_v2_update(struct request *req)
{
    struct instance inst;
    enum err e = v2_instance(req, &inst);
    if (e)
        return e;
    const char *item_id = NULL, *desc = NULL;
    json_t *tags, *num;
    if ((e = jget_string(req, req->json, "item_id", JREQ, 1, 256, &item_id)) ||
        (e = jget_string(req, req->json, "desc", JOPT, 1, 2048, &desc)) ||
        (e = params_item_tags(req, &inst, req->json, &tags, &num)))
        goto out;
    e = item_write_result(req, items_update(req->srv->db, inst.id, item_id, desc, tags, num, 0),
                          E_MMS_ITEM_NOT_FOUND, item_id);
out:
    instance_free(&inst);
    return e;
}

enum err h_v2_delete(struct request *req)
{
    struct instance inst;
    enum err e = v2_instance(req, &inst);
    if (e)
        return e;
    const char *item_id = NULL;
    int force = 0, found = 0;
    struct item_filter f;
    struct item_meta *list = NULL;
    size_t n = 0;
    if ((e = jget_string(req, req->json, "item_id", JOPT, 1, 256, &item_id)) ||
        (e = jget_bool(req, req->json, "force", JOPT, &force)) ||
        (e = params_filter(req, &inst, req->json, &f)))
        goto out;
    if (item_id) {
        if ((e = item_remove(req, &inst, item_id, &found)))
            goto out;
        if (!found && !force) {
            e = req_fail(req, E_MMS_ITEM_NOT_FOUND, item_id);
            goto out;
        }
        req->reply = json_pack("{s:s}", "result", "success");
        goto out;
    }
    if (!f.tags && !f.num_tags) {
        e = req_fail(req, E_MISSING_PARAM, "item_id");
        goto out;
    }
    long long total = 0;
    if (items_list(req->srv->db, inst.id, &f, NULL, DELETE_BATCH, &list, &n, &total) != DB_OK) {
        e = req_fail(req, E_STORE_FAILED, "item list");
        goto out;
    }
    json_t *items = json_array();
    size_t deleted = 0;
    for (size_t i = 0; i < n; i++) {
        if ((e = item_remove(req, &inst, list[i].item_id, &found))) {
            json_decref(items);
            goto out;
        }
        if (found) {
            json_array_append_new(items, json_pack("{s:s}", "id", list[i].item_id));
            deleted++;
        }
    }
    req->reply =
        json_pack("{s:s, s:{s:o, s:{s:I, s:I}}}", "result", "success", "data", "items", items,
                  "delete_info", "total_num", (json_int_t)total, "delete_num", (json_int_t)deleted);
out:
    items_meta_free(list, n);
    instance_free(&inst);
    return e;
}
