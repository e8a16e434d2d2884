/* cmd_instance.c: imgsearch instance create|list|show|delete, through the
 * admin instance API (/admin/v1/{project}/instances). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"

static const char *const help =
    "usage: imgsearch instance create NAME [--desc TEXT] [--tags k1,k2] [--num-tags n1,n2]\n"
    "                                      [--search-types IMAGE,KEYWORD]\n"
    "                                      [--no-views] [--regions]\n"
    "         --no-views: one vector per item (4x less memory and add time, weaker on\n"
    "                     captions, thumbnails and colour changes); --regions: also the\n"
    "                     corner windows, for strong crops\n"
    "       imgsearch instance list\n"
    "       imgsearch instance show NAME\n"
    "       imgsearch instance delete NAME\n";

static json_t *csv_array(const char *s)
{
    json_t *a = json_array();
    char *copy = strdup(s ? s : ""), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (*t)
            json_array_append_new(a, json_string(t));
    free(copy);
    return a;
}

static char *inst_path(const struct client *cl, const char *name)
{
    char *p = client_escape(cl->project), *n = name ? client_escape(name) : NULL;
    char *out = NULL;
    if (p && (!name || n) &&
        asprintf(&out, "/admin/v1/%s/instances%s%s", p, name ? "/" : "", name ? n : "") < 0)
        out = NULL;
    free(p);
    free(n);
    return out;
}

static int create(const struct client *cl, struct args *a)
{
    const char *desc = arg_take(a, "--desc"), *tags = arg_take(a, "--tags");
    const char *num = arg_take(a, "--num-tags"), *types = arg_take(a, "--search-types");
    int no_views = arg_flag(a, "--no-views"), regions = arg_flag(a, "--regions");
    if (arg_unknown(a) || a->n != 1) {
        fputs(help, stderr);
        return CLI_USAGE;
    }
    json_t *body = json_pack("{s:s}", "name", a->v[0]);
    if (desc)
        json_object_set_new(body, "description", json_string(desc));
    if (tags)
        json_object_set_new(body, "custom_tags", csv_array(tags));
    if (num)
        json_object_set_new(body, "custom_num_tags", csv_array(num));
    if (types)
        json_object_set_new(body, "search_types", csv_array(types));
    if (no_views)
        json_object_set_new(body, "views", json_false());
    if (regions)
        json_object_set_new(body, "regions", json_true());
    char *path = inst_path(cl, NULL);
    json_t *r = NULL;
    int rc = client_api(cl, "POST", path, body, &r);
    if (rc == 0)
        printf("created %s\n", json_string_value(json_object_get(r, "name")));
    json_decref(r);
    json_decref(body);
    free(path);
    return rc;
}

static int list(const struct client *cl)
{
    char *path = inst_path(cl, NULL);
    json_t *r = NULL;
    int rc = client_api(cl, "GET", path, NULL, &r);
    free(path);
    if (rc)
        return rc;
    size_t i;
    json_t *v;
    printf("%-32s %10s  %s\n", "NAME", "ITEMS", "CREATED");
    json_array_foreach(json_object_get(r, "instances"), i, v)
    {
        printf("%-32s %10lld  %s\n", json_string_value(json_object_get(v, "name")),
               (long long)json_integer_value(json_object_get(v, "item_count")),
               json_string_value(json_object_get(v, "created_at")));
    }
    json_decref(r);
    return 0;
}

static int show_or_delete(const struct client *cl, struct args *a, int del)
{
    if (arg_unknown(a) || a->n != 1) {
        fputs(help, stderr);
        return CLI_USAGE;
    }
    char *path = inst_path(cl, a->v[0]);
    json_t *r = NULL;
    int rc = client_api(cl, del ? "DELETE" : "GET", path, NULL, &r);
    free(path);
    if (rc == 0 && del)
        printf("deleted %s\n", a->v[0]);
    else if (rc == 0)
        json_dumpf(r, stdout, JSON_INDENT(2)), putchar('\n');
    json_decref(r);
    return rc;
}

int cmd_instance(const struct client *cl, struct args *a)
{
    const char *sub = NULL;
    int rc = arg_subcommand(a, help, &sub);
    if (rc >= 0)
        return rc;
    if (!strcmp(sub, "create"))
        return create(cl, a);
    if (!strcmp(sub, "list"))
        return arg_unknown(a) ? CLI_USAGE : list(cl);
    if (!strcmp(sub, "show"))
        return show_or_delete(cl, a, 0);
    if (!strcmp(sub, "delete"))
        return show_or_delete(cl, a, 1);
    fputs(help, stderr);
    return CLI_USAGE;
}
