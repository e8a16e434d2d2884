/* h_instances.c: instance create/query/delete. The v1 API (camelCase
 * answers, v1 name rules, `tags` = allowed tag keys) and our admin API
 * (the console's features: v2 tag keys and search types) share one table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "index/projection.h"
#include "server/compactor.h"
#include "server/handlers.h"
#include "server/json_util.h"
#include "server/registry.h"
#include "server/server.h"

#define V1_MODEL_LEVEL 30000000LL

enum err req_instance(struct request *req, const char *name, struct instance *out)
{
    enum db_status s = instances_get(req->srv->db, req->project_id, name, out);
    if (s == DB_NOT_FOUND)
        return req_fail(req, E_NO_INSTANCE, name);
    if (s != DB_OK)
        return req_fail(req, E_STORE_FAILED, "instance lookup");
    return E_OK;
}

/* v1: lowercase letters, digits, '-', '_'; starts with a letter; <= 16. */
static int v1_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 16 || s[0] < 'a' || s[0] > 'z')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
              s[i] == '_'))
            return 0;
    return 1;
}

/* Admin (v2 service names): letters, digits, '-', '_'; starts with a
 * letter or digit; <= 64, so every name is also a clean path segment. */
static int admin_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '-' && c != '_')))
            return 0;
    }
    return 1;
}

/* A tag key list: strings of 1..64 characters, no duplicates. */
static enum err key_list(struct request *req, json_t *arr, const char *field, int no_upper,
                         char ***out, size_t *n)
{
    *out = calloc(json_array_size(arr) + 1, sizeof **out);
    *n = 0;
    if (!*out)
        return req_fail(req, E_INTERNAL, "out of memory");
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        const char *k = json_string_value(v);
        if (!k || utf8_len(k) < 1 || utf8_len(k) > 64)
            return req_fail(req, E_BAD_PARAM, field);
        for (const char *c = k; no_upper && *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                return req_fail(req, E_BAD_PARAM, field);
        for (size_t j = 0; j < *n; j++)
            if (!strcmp((*out)[j], k))
                return req_fail(req, E_BAD_PARAM, field);
        (*out)[(*n)++] = (char *)k; /* borrowed from the request JSON */
    }
    return E_OK;
}

static json_t *str_array(char **items, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(items[i]));
    return a;
}

static json_t *v1_instance_json(const struct instance *inst)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:o, s:s}", "instanceName", inst->name,
                     "domain", inst->model, "desc", inst->description, "registerDate",
                     (json_int_t)inst->created_ms, "expiredDate", (json_int_t)-1, "level",
                     (json_int_t)inst->level, "tags", str_array(inst->tag_keys, inst->n_tag_keys),
                     "status", inst->status);
}

static json_t *admin_instance_json(const struct instance *inst)
{
    json_t *types = json_array();
    for (unsigned b = 1; b <= ST_CATEGORY; b <<= 1)
        if (inst->search_types & b)
            json_array_append_new(types, json_string(search_type_name(b)));
    char iso[32];
    time_t t = (time_t)(inst->created_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *j = json_pack(
        "{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:s, s:I, s:s, s:I, s:b, s:b, s:s}", "name",
        inst->name, "project_id", inst->project_id, "description", inst->description, "model",
        inst->model, "custom_tags", str_array(inst->tag_keys, inst->n_tag_keys), "custom_num_tags",
        str_array(inst->num_tag_keys, inst->n_num_tag_keys), "search_types", types, "created_at",
        iso, "created_ms", (json_int_t)inst->created_ms, "status", inst->status, "item_count",
        (json_int_t)inst->item_count, "regions", inst->regions, "views", inst->views, "descriptor",
        inst->projection ? "compact" : "float");
    /* Only where there is a choice: one shard is what every answer meant so far. */
    if (j && inst->shards > 1)
        json_object_set_new(j, "shards", json_integer(inst->shards));
    return j;
}

/* Stores `inst` and reloads it so the answer shows what was stored. */
static enum err create_and_reload(struct request *req, struct instance *inst,
                                  struct instance *stored)
{
    /* Compact descriptors are decided at creation, for good: the instance
     * keeps the space of the projection loaded now (compact.h). */
    const struct projection *pr = req->srv->projection;
    char digest[sizeof pr->digest] = "";
    if (pr)
        memcpy(digest, pr->digest, sizeof digest);
    inst->projection = pr ? digest : NULL;
    /* Shards are decided at creation too; only a shared database has them. */
    inst->shards =
        req->srv->cfg.storage.backend == STORAGE_POSTGRES ? (int)req->srv->cfg.cluster.shards : 1;
    enum db_status s = instances_create(req->srv->db, inst);
    inst->projection = NULL; /* borrowed */
    if (s == DB_EXISTS)
        return req_fail(req, E_INSTANCE_EXISTS, inst->name);
    if (s != DB_OK)
        return req_fail(req, E_STORE_FAILED, "instance create");
    return req_instance(req, inst->name, stored);
}

enum err h_v1_instance_create(struct request *req)
{
    const char *name = NULL, *model = NULL, *desc = "";
    long long level = V1_MODEL_LEVEL;
    json_t *tags = NULL;
    struct instance inst = {0}, stored = {0};
    enum err e;
    if ((e = jget_string(req, req->json, "name", JREQ, 1, 64, &name)) ||
        (e = jget_string(req, req->json, "model", JREQ, 1, 64, &model)) ||
        (e = jget_string(req, req->json, "description", JOPT, 0, 512, &desc)) ||
        (e = jget_int(req, req->json, "level", JOPT, 1, 1LL << 40, &level)) ||
        (e = jget_array(req, req->json, "tags", JOPT, 0, 10, &tags)))
        return e;
    if (!v1_name_ok(name))
        return req_fail(req, E_BAD_INSTANCE_NAME, "name");
    if (strcmp(model, "common-search") && strcmp(model, "image-recommend") &&
        strcmp(model, "image-copyright"))
        return req_fail(req, E_BAD_PARAM, "model");
    if (level != V1_MODEL_LEVEL) /* "only the default is supported" */
        return req_fail(req, E_BAD_PARAM, "level");
    inst.project_id = (char *)req->project_id;
    inst.name = (char *)name;
    inst.description = (char *)desc;
    inst.model = (char *)model;
    inst.level = level;
    inst.search_types = ST_IMAGE | ST_KEYWORD;
    /* Infringement detection must find an original from a part of it. */
    inst.regions = !strcmp(model, "image-copyright");
    inst.views = req->srv->cfg.index.views;
    if (tags && (e = key_list(req, tags, "tags", 1, &inst.tag_keys, &inst.n_tag_keys)))
        goto out;
    if ((e = create_and_reload(req, &inst, &stored)) == E_OK)
        req->reply = v1_instance_json(&stored);
out:
    free(inst.tag_keys);
    instance_free(&stored);
    return e;
}

enum err h_v1_instance_get(struct request *req)
{
    struct instance inst;
    enum err e = req_instance(req, req->params[1], &inst);
    if (e)
        return e;
    req->reply = v1_instance_json(&inst);
    instance_free(&inst);
    return E_OK;
}

static enum err delete_instance(struct request *req, const char *name)
{
    int64_t id = 0;
    struct instance inst;
    int shards = 1;
    if (instances_get(req->srv->db, req->project_id, name, &inst) == DB_OK) {
        shards = inst.shards;
        instance_free(&inst);
    }
    enum db_status s = instances_delete(req->srv->db, req->project_id, name, &id);
    if (s == DB_NOT_FOUND)
        return req_fail(req, E_NO_INSTANCE, name);
    if (s != DB_OK)
        return req_fail(req, E_STORE_FAILED, "instance delete");
    registry_drop(req->srv->registry, id);
    registry_delete_stored(req->srv->registry, id, shards);
    req->reply = json_pack("{s:s}", "result", "success");
    return E_OK;
}

enum err h_v1_instance_delete(struct request *req)
{
    return delete_instance(req, req->params[1]);
}

enum err h_admin_instance_create(struct request *req)
{
    const char *name = NULL, *desc = "";
    json_t *tags = NULL, *num_tags = NULL, *types = NULL;
    struct instance inst = {0}, stored = {0};
    enum err e;
    inst.views = req->srv->cfg.index.views;
    if ((e = jget_bool(req, req->json, "regions", JOPT, &inst.regions)) ||
        (e = jget_bool(req, req->json, "views", JOPT, &inst.views)) ||
        (e = jget_string(req, req->json, "name", JREQ, 1, 64, &name)) ||
        (e = jget_string(req, req->json, "description", JOPT, 0, 100000, &desc)) ||
        (e = jget_array(req, req->json, "custom_tags", JOPT, 0, 100, &tags)) ||
        (e = jget_array(req, req->json, "custom_num_tags", JOPT, 0, 100, &num_tags)) ||
        (e = jget_array(req, req->json, "search_types", JOPT, 1, 4, &types)))
        return e;
    if (!admin_name_ok(name))
        return req_fail(req, E_BAD_INSTANCE_NAME, "name");
    if (utf8_len(desc) > 512)
        return req_fail(req, E_MMS_1003, NULL);
    inst.project_id = (char *)req->project_id;
    inst.name = (char *)name;
    inst.description = (char *)desc;
    inst.model = "common-search";
    inst.level = V1_MODEL_LEVEL;
    inst.search_types = ST_IMAGE | ST_KEYWORD;
    if (types) {
        inst.search_types = 0;
        size_t i;
        json_t *v;
        json_array_foreach(types, i, v)
        {
            unsigned bit = json_is_string(v) ? search_type_parse(json_string_value(v)) : 0;
            if (!bit)
                return req_fail(req, E_BAD_PARAM, "search_types");
            /* Honest refusal: we have no text-image model or product classifier. */
            if (bit == ST_TEXT || bit == ST_CATEGORY)
                return req_fail(req, E_MMS_SEARCH_TYPE_UNSUPPORTED, search_type_name(bit));
            inst.search_types |= bit;
        }
    }
    if ((tags && (e = key_list(req, tags, "custom_tags", 0, &inst.tag_keys, &inst.n_tag_keys))) ||
        (num_tags && (e = key_list(req, num_tags, "custom_num_tags", 0, &inst.num_tag_keys,
                                   &inst.n_num_tag_keys))))
        goto out;
    if ((e = create_and_reload(req, &inst, &stored)) == E_OK) {
        stored.item_count = 0; /* just created */
        req->reply = admin_instance_json(&stored);
        req->status = 201;
    }
out:
    free(inst.tag_keys);
    free(inst.num_tag_keys);
    instance_free(&stored);
    return e;
}

enum err h_admin_instance_list(struct request *req)
{
    struct instance *list;
    size_t n;
    if (instances_list(req->srv->db, req->project_id, &list, &n) != DB_OK)
        return req_fail(req, E_STORE_FAILED, "instance list");
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, admin_instance_json(&list[i]));
    instances_free(list, n);
    req->reply = json_pack("{s:o, s:I}", "instances", arr, "count", (json_int_t)n);
    return E_OK;
}

enum err h_admin_instance_get(struct request *req)
{
    struct instance inst;
    enum err e = req_instance(req, req->params[1], &inst);
    if (e)
        return e;
    if (instances_count_items(req->srv->db, &inst) != DB_OK)
        e = req_fail(req, E_STORE_FAILED, "item count");
    else
        req->reply = admin_instance_json(&inst);
    instance_free(&inst);
    return e;
}

enum err h_admin_instance_delete(struct request *req)
{
    return delete_instance(req, req->params[1]);
}

/* Ours: makes a float instance compact in a space fitted on its own vectors
 * (server/compactor.h). Synchronous: the answer says what was done, and
 * how long the database writer was held (switch_ms, max_batch_ms). */
enum err h_admin_instance_compact(struct request *req)
{
    struct instance inst;
    enum err e = req_instance(req, req->params[1], &inst);
    if (e)
        return e;
    struct compact_result res;
    char why[300];
    int rc = compact_instance(req->srv, inst.id, &res, why, sizeof why);
    if (rc == -2)
        e = req_fail(req, E_BAD_PARAM, why);
    else if (rc != 0)
        e = req_fail(req, E_STORE_FAILED, why);
    else
        req->reply = json_pack("{s:s, s:s, s:I, s:I, s:f, s:I, s:f, s:f, s:b}", "name", inst.name,
                               "projection", res.digest, "vectors", (json_int_t)res.vectors,
                               "trained_on", (json_int_t)res.trained_on, "seconds", res.seconds,
                               "batches", (json_int_t)res.batches, "switch_ms", res.switch_ms,
                               "max_batch_ms", res.max_hold_ms, "pending", res.pending);
    instance_free(&inst);
    return e;
}
