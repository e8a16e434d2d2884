/* cmd_data.c: imgsearch add|search|check, through the cloud's v2 API
 * (data/add, search, data/check), so they behave exactly as SDK calls. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "storage/base64.h"

#define MAX_FILE (12u << 20)

static char *v2_path(const struct client *cl, const char *inst, const char *op)
{
    char *p = client_escape(cl->project), *i = client_escape(inst), *out = NULL;
    if (p && i && asprintf(&out, "/v2/%s/mms/%s/%s", p, i, op) < 0)
        out = NULL;
    free(p);
    free(i);
    return out;
}

static int is_url(const char *s)
{
    return !strncmp(s, "http://", 7) || !strncmp(s, "https://", 8) || !strncmp(s, "obs://", 6);
}

/* Sets image_url or image_base64 in body from a FILE or URL argument. */
static int set_image(json_t *body, const char *arg)
{
    if (is_url(arg)) {
        json_object_set_new(body, "image_url", json_string(arg));
        return 0;
    }
    FILE *f = fopen(arg, "rb");
    if (!f) {
        perror(arg);
        return -1;
    }
    uint8_t *buf = malloc(MAX_FILE);
    size_t n = buf ? fread(buf, 1, MAX_FILE, f) : 0;
    fclose(f);
    char *b64 = buf ? base64_encode(buf, n) : NULL;
    free(buf);
    if (!b64)
        return -1;
    json_object_set_new(body, "image_base64", json_string(b64));
    free(b64);
    return 0;
}

/* The default item id: the file's or URL's last path segment. */
static const char *base_name(const char *s)
{
    const char *slash = strrchr(s, '/');
    return slash && slash[1] ? slash + 1 : s;
}

static int usage_err(const char *help)
{
    fputs(help, stderr);
    return CLI_USAGE;
}

int cmd_add(const struct client *cl, struct args *a)
{
    static const char *const help =
        "usage: imgsearch add INSTANCE FILE|URL [--id ITEM_ID] [--desc TEXT] [--force]\n"
        "                 [--tags-json '{\"k\":\"v\"}'] [--keywords a,b]\n"
        "The item id defaults to the file's name.\n";
    if (arg_help(a, help))
        return CLI_OK;
    const char *id = arg_take(a, "--id"), *desc = arg_take(a, "--desc");
    const char *tags = arg_take(a, "--tags-json"), *kw = arg_take(a, "--keywords");
    int force = arg_flag(a, "--force");
    if (arg_unknown(a) || a->n != 2)
        return usage_err(help);
    json_t *body = json_pack("{s:s, s:b}", "item_id", id ? id : base_name(a->v[1]), "force", force);
    if (desc)
        json_object_set_new(body, "desc", json_string(desc));
    if (tags) {
        json_t *t = json_loads(tags, 0, NULL);
        if (!json_is_object(t)) {
            json_decref(t);
            json_decref(body);
            return usage_err(help);
        }
        json_object_set_new(body, "custom_tags", t);
    }
    if (kw) {
        json_t *arr = json_array();
        char *copy = strdup(kw), *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
            json_array_append_new(arr, json_string(t));
        free(copy);
        json_object_set_new(body, "keywords", arr);
    }
    int rc = CLI_API;
    char *path = v2_path(cl, a->v[0], "data/add");
    if (set_image(body, a->v[1]) == 0 && (rc = client_api(cl, "POST", path, body, NULL)) == 0)
        printf("added %s\n", json_string_value(json_object_get(body, "item_id")));
    free(path);
    json_decref(body);
    return rc;
}

int cmd_search(const struct client *cl, struct args *a)
{
    static const char *const help =
        "usage: imgsearch search INSTANCE FILE|URL [--limit N] [--min-score S] [--json]\n"
        "Prints one line per result: ID<TAB>SCORE.\n";
    if (arg_help(a, help))
        return CLI_OK;
    const char *limit = arg_take(a, "--limit"), *min = arg_take(a, "--min-score");
    int as_json = arg_flag(a, "--json");
    if (arg_unknown(a) || a->n != 2)
        return usage_err(help);
    json_t *body =
        json_pack("{s:s, s:i}", "search_type", "IMAGE", "limit", limit ? atoi(limit) : 10);
    if (min)
        json_object_set_new(body, "min_score", json_real(atof(min)));
    int rc = CLI_API;
    json_t *r = NULL;
    char *path = v2_path(cl, a->v[0], "search");
    if (set_image(body, a->v[1]) == 0 && (rc = client_api(cl, "POST", path, body, &r)) == 0) {
        if (as_json) {
            json_dumpf(r, stdout, JSON_INDENT(2));
            putchar('\n');
        } else {
            size_t i;
            json_t *it;
            json_array_foreach(json_object_get(json_object_get(r, "data"), "items"), i, it)
            {
                printf("%s\t%.4f\n", json_string_value(json_object_get(it, "id")),
                       json_number_value(json_object_get(it, "score")));
            }
        }
    }
    json_decref(r);
    free(path);
    json_decref(body);
    return rc;
}

int cmd_check(const struct client *cl, struct args *a)
{
    static const char *const help =
        "usage: imgsearch check INSTANCE ITEM_ID\n"
        "Prints the item's metadata and exits 0 when it exists; exits 1 when not.\n";
    if (arg_help(a, help))
        return CLI_OK;
    if (arg_unknown(a) || a->n != 2)
        return usage_err(help);
    json_t *body = json_pack("{s:s}", "item_id", a->v[1]), *r = NULL;
    char *path = v2_path(cl, a->v[0], "data/check");
    int rc = client_api(cl, "POST", path, body, &r);
    if (rc == 0) {
        json_t *d = json_object_get(r, "data");
        if (json_is_true(json_object_get(d, "existed"))) {
            printf("%s exists\n", a->v[1]);
            json_dumpf(json_object_get(d, "item_info"), stdout, JSON_INDENT(2));
            putchar('\n');
        } else {
            printf("%s not found\n", a->v[1]);
            rc = CLI_API;
        }
    }
    json_decref(r);
    free(path);
    json_decref(body);
    return rc;
}
