/* params.c: shared request-object validation for the v2 API. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "server/json_util.h"
#include "server/params.h"

static int str_ok(json_t *v, size_t min, size_t max)
{
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
        return 0;
    size_t n = utf8_len(json_string_value(v));
    return n >= min && n <= max;
}

enum err params_item_tags(struct request *req, const struct instance *inst, json_t *body,
                          json_t **tags, json_t **num)
{
    enum err e;
    const char *key;
    json_t *v;
    *tags = *num = NULL;
    if ((e = jget_object(req, body, "custom_tags", JOPT, tags)) ||
        (e = jget_object(req, body, "custom_num_tags", JOPT, num)))
        return e;
    if (*tags) {
        json_object_foreach(*tags, key, v)
        {
            if (!instance_has_tag_key(inst, key) || !str_ok(v, 1, 64))
                return req_fail(req, E_BAD_PARAM, "custom_tags");
        }
    }
    if (*num) {
        json_object_foreach(*num, key, v)
        {
            if (!instance_has_num_tag_key(inst, key) || !json_is_number(v) ||
                !isfinite(json_number_value(v)))
                return req_fail(req, E_BAD_PARAM, "custom_num_tags");
        }
    }
    return E_OK;
}

enum err params_filter(struct request *req, const struct instance *inst, json_t *body,
                       struct item_filter *f)
{
    enum err e;
    const char *key;
    json_t *v;
    f->tags = f->num_tags = NULL;
    if ((e = jget_object(req, body, "custom_tags", JOPT, &f->tags)) ||
        (e = jget_object(req, body, "custom_num_tags", JOPT, &f->num_tags)))
        return e;
    if (f->tags) {
        json_object_foreach(f->tags, key, v)
        {
            if (!instance_has_tag_key(inst, key) || !json_is_array(v) || json_array_size(v) < 1 ||
                json_array_size(v) > 32)
                return req_fail(req, E_BAD_PARAM, "custom_tags");
            size_t i;
            json_t *s;
            json_array_foreach(v, i, s) if (!str_ok(s, 1, 64)) return req_fail(req, E_BAD_PARAM,
                                                                               "custom_tags");
        }
    }
    if (f->num_tags) {
        json_object_foreach(f->num_tags, key, v)
        {
            if (!instance_has_num_tag_key(inst, key) || !json_is_object(v))
                return req_fail(req, E_BAD_PARAM, "custom_num_tags");
            json_t *from = json_object_get(v, "from"), *to = json_object_get(v, "to");
            if ((from && !json_is_null(from) && !json_is_number(from)) ||
                (to && !json_is_null(to) && !json_is_number(to)))
                return req_fail(req, E_BAD_PARAM, "custom_num_tags");
            if (json_is_number(from) && json_is_number(to) &&
                json_number_value(from) > json_number_value(to))
                return req_fail(req, E_BAD_PARAM, "custom_num_tags");
        }
    }
    /* An empty map filters nothing: it must not turn a conditional delete
     * into "delete everything". */
    if (f->tags && json_object_size(f->tags) == 0)
        f->tags = NULL;
    if (f->num_tags && json_object_size(f->num_tags) == 0)
        f->num_tags = NULL;
    return E_OK;
}

enum err params_keywords(struct request *req, json_t *body, size_t min_n, size_t max_n,
                         int required, json_t **out)
{
    *out = NULL;
    enum err e = jget_array(req, body, "keywords", required, min_n, max_n, out);
    if (e || !*out)
        return e;
    size_t i;
    json_t *v;
    json_array_foreach(*out, i, v) if (!str_ok(v, 1, 64)) return req_fail(req, E_BAD_PARAM,
                                                                          "keywords");
    return E_OK;
}

enum err params_cursor(struct request *req, json_t *body, int *present, double *score,
                       const char **id)
{
    json_t *li = NULL;
    enum err e = jget_object(req, body, "last_item", JOPT, &li);
    *present = 0;
    if (e || !li)
        return e;
    *score = 0;
    *id = NULL;
    if ((e = jget_number(req, li, "score", JOPT, -1e300, 1e300, score)) ||
        (e = jget_string(req, li, "id", JREQ, 1, 256, id)))
        return req_fail(req, E_BAD_PARAM, "last_item");
    *present = 1;
    return E_OK;
}

enum err params_search_type(struct request *req, json_t *body, unsigned *type)
{
    json_t *v = json_object_get(body, "search_type");
    if (!v || json_is_null(v))
        return req_fail(req, E_MISSING_PARAM, "search_type");
    if (json_is_string(v))
        *type = search_type_parse(json_string_value(v));
    else if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= 3)
        *type = 1u << json_integer_value(v);
    else
        *type = 0;
    return *type ? E_OK : req_fail(req, E_BAD_PARAM, "search_type");
}

int parse_box(const char *s, int *x1, int *y1, int *x2, int *y2)
{
    int n = 0;
    if (sscanf(s, "%d,%d,%d,%d%n", x1, y1, x2, y2, &n) != 4 || s[n] != 0)
        return -1;
    for (const char *c = s; *c; c++)
        if (*c == ' ')
            return -1; /* "no spaces" */
    return 0;
}
