/* test_router.c: server/router.c against a small table of our own (table
 * order decides literal vs template, params in template order, one trailing
 * slash, 404 vs 405, API family even without a match, empty segments, long
 * paths, "*" tails), then sanity rules on the real table in server/routes.c. */
#include <stdlib.h>
#include <string.h>
#include "server/router.h"
#include "tests/unit.h"

static enum err h_a(struct request *req)
{
    (void)req;
    return E_OK;
}

static enum err h_b(struct request *req)
{
    (void)req;
    return E_OK;
}

static const struct route table[] = {
    {"POST", "/v1/{project_id}/service", API_V1, h_a, R_AUTH | R_PROJECT, "create"},
    {"GET", "/v1/{project_id}/service/{instance_name}", API_V1, h_a, 0, "get"},
    {"DELETE", "/v1/{project_id}/service/{instance_name}", API_V1, h_b, 0, "delete"},
    {"POST", "/v1/{project_id}/{instance_name}/image", API_V1, h_b, 0, "image_add"},
    {"POST", "/v2/{project_id}/mms/{service_name}/data/add", API_V2, h_a, 0, "v2_add"},
    {"GET", "/admin/v1/{project_id}/instances", API_ADMIN, h_a, 0, "admin_list"},
    {"GET", "/healthz", API_OTHER, h_a, 0, "healthz"},
    {"GET", "/", API_OTHER, h_b, 0, "root"},
    {"GET", "/console/*", API_OTHER, h_b, 0, "console"},
};
static const size_t n_table = sizeof table / sizeof table[0];

/* One lookup; the scratch buffer stays alive until the next call. */
struct hit {
    enum route_match m;
    const struct route *r;
    const char *params[REQ_MAX_PARAMS];
    int n;
    enum api_family fam;
    char scratch[512];
};

static enum route_match look(struct hit *h, const char *method, const char *path)
{
    memset(h, 0, sizeof *h);
    h->fam = (enum api_family) - 1;
    h->m = router_match(table, n_table, method, path, h->scratch, sizeof h->scratch, &h->r,
                        h->params, &h->n, &h->fam);
    return h->m;
}

static void test_literal_listed_first_wins(void)
{
    struct hit h;
    /* "/v1/p/service" could be {instance_name}="service" + ... but the
     * literal route comes first and has no "/image" tail anyway; POST on
     * the literal path goes to "create". */
    CHECK_INT(look(&h, "POST", "/v1/p1/service"), ROUTE_FOUND);
    CHECK_STR(h.r->name, "create");
    CHECK_INT(h.n, 1);
    CHECK_STR(h.params[0], "p1");
    /* An instance literally named "service": the literal route listed
     * first takes GET/DELETE .../service/{x}, the template takes .../image. */
    CHECK_INT(look(&h, "POST", "/v1/p1/service/image"), ROUTE_FOUND);
    CHECK_STR(h.r->name, "image_add");
    CHECK_STR(h.params[1], "service");
    CHECK_INT(look(&h, "GET", "/v1/p1/service/image"), ROUTE_FOUND);
    CHECK_STR(h.r->name, "get");

    /* Order is what decides: a template listed before a literal shadows it. */
    static const struct route order[] = {
        {"GET", "/x/{a}", API_OTHER, h_a, 0, "tmpl"},
        {"GET", "/x/lit", API_OTHER, h_b, 0, "lit"},
    };
    const struct route *r = NULL;
    const char *p[REQ_MAX_PARAMS];
    int n = 0;
    enum api_family f;
    char scratch[64];
    CHECK_INT(router_match(order, 2, "GET", "/x/lit", scratch, sizeof scratch, &r, p, &n, &f),
              ROUTE_FOUND);
    CHECK_STR(r->name, "tmpl");
}

static void test_params_in_order(void)
{
    struct hit h;
    CHECK_INT(look(&h, "POST", "/v2/0123abc/mms/my-svc/data/add"), ROUTE_FOUND);
    CHECK_STR(h.r->name, "v2_add");
    CHECK_INT(h.n, 2);
    CHECK_STR(h.params[0], "0123abc");
    CHECK_STR(h.params[1], "my-svc");
    CHECK_INT(h.fam, API_V2);
    CHECK(h.r->fn == h_a);

    CHECK_INT(look(&h, "DELETE", "/v1/proj/service/inst_1"), ROUTE_FOUND);
    CHECK_STR(h.r->name, "delete");
    CHECK(h.r->fn == h_b);
    CHECK_INT(h.n, 2);
    CHECK_STR(h.params[0], "proj");
    CHECK_STR(h.params[1], "inst_1");
    /* Params point into scratch, not into the caller's path. */
    CHECK(h.params[0] >= h.scratch && h.params[0] < h.scratch + sizeof h.scratch);

    CHECK_INT(look(&h, "GET", "/healthz"), ROUTE_FOUND);
    CHECK_INT(h.n, 0);
}

static void test_trailing_slash(void)
{
    struct hit h;
    CHECK_INT(look(&h, "POST", "/v2/p/mms/s/data/add/"), ROUTE_FOUND);
    CHECK_STR(h.r->name, "v2_add");
    CHECK_STR(h.params[1], "s");
    CHECK_INT(look(&h, "GET", "/healthz/"), ROUTE_FOUND);
    /* Only one slash is forgiven. */
    CHECK_INT(look(&h, "GET", "/healthz//"), ROUTE_NO_PATH);
    /* The root itself. */
    CHECK_INT(look(&h, "GET", "/"), ROUTE_FOUND);
    CHECK_STR(h.r->name, "root");
}

static void test_method_mismatch(void)
{
    struct hit h;
    CHECK_INT(look(&h, "PUT", "/v1/p/service/x"), ROUTE_NO_METHOD);
    CHECK_INT(h.fam, API_V1);
    CHECK_INT(look(&h, "GET", "/v2/p/mms/s/data/add"), ROUTE_NO_METHOD);
    CHECK_INT(h.fam, API_V2);
    CHECK_INT(look(&h, "POST", "/healthz"), ROUTE_NO_METHOD);
    CHECK_INT(h.fam, API_OTHER);
    /* Methods are case-sensitive, as HTTP says. */
    CHECK_INT(look(&h, "get", "/healthz"), ROUTE_NO_METHOD);
}

static void test_unknown_path_and_family(void)
{
    struct hit h;
    CHECK_INT(look(&h, "POST", "/v2/p/mms/s/data/frobnicate"), ROUTE_NO_PATH);
    CHECK_INT(h.fam, API_V2);
    CHECK_INT(look(&h, "GET", "/v1/p/nothing/here/at/all"), ROUTE_NO_PATH);
    CHECK_INT(h.fam, API_V1);
    CHECK_INT(look(&h, "GET", "/admin/v9/x"), ROUTE_NO_PATH);
    CHECK_INT(h.fam, API_ADMIN);
    CHECK_INT(look(&h, "GET", "/nope"), ROUTE_NO_PATH);
    CHECK_INT(h.fam, API_OTHER);
    /* The prefix must be a whole segment. */
    CHECK_INT(look(&h, "GET", "/v2x/p"), ROUTE_NO_PATH);
    CHECK_INT(h.fam, API_OTHER);
    CHECK_INT(look(&h, "GET", "/v1"), ROUTE_NO_PATH);
    CHECK_INT(h.fam, API_OTHER);
    /* Not absolute. */
    CHECK_INT(look(&h, "GET", "healthz"), ROUTE_NO_PATH);
    CHECK_INT(look(&h, "GET", ""), ROUTE_NO_PATH);
    /* Too short / too long for the template. */
    CHECK_INT(look(&h, "POST", "/v2/p/mms/s/data"), ROUTE_NO_PATH);
    CHECK_INT(look(&h, "POST", "/v2/p/mms/s/data/add/more"), ROUTE_NO_PATH);
}

static void test_empty_segment_is_not_a_param(void)
{
    struct hit h;
    CHECK_INT(look(&h, "POST", "/v1//service"), ROUTE_NO_PATH);
    CHECK_INT(h.fam, API_V1);
    CHECK_INT(look(&h, "GET", "/v1/p/service//"), ROUTE_NO_PATH);
    CHECK_INT(look(&h, "POST", "/v2/p/mms//data/add"), ROUTE_NO_PATH);
    CHECK_INT(look(&h, "GET", "/v1/p/service/"), ROUTE_NO_METHOD); /* == POST .../service */
}

static void test_too_long_path(void)
{
    struct hit h;
    /* Longer than the scratch buffer. */
    char *p = malloc(2048);
    strcpy(p, "/v1/p/service/");
    memset(p + 14, 'a', 2000);
    p[2014] = 0;
    CHECK_INT(look(&h, "GET", p), ROUTE_NO_PATH);
    CHECK_INT(h.fam, API_V1);
    /* Fits the buffer but has more segments than the router splits (32). */
    strcpy(p, "/v1");
    for (int i = 0; i < 40; i++)
        strcat(p, "/s");
    CHECK_INT(look(&h, "GET", p), ROUTE_NO_PATH);
    CHECK_INT(h.fam, API_V1);
    free(p);
    /* Exactly filling the scratch buffer (len + NUL) still works. */
    char exact[16];
    const char *path = "/console/abcdef"; /* 15 chars + NUL = 16 */
    const struct route *r = NULL;
    const char *params[REQ_MAX_PARAMS];
    int n = 0;
    enum api_family f;
    CHECK_INT(router_match(table, n_table, "GET", path, exact, sizeof exact, &r, params, &n, &f),
              ROUTE_FOUND);
    CHECK_INT(
        router_match(table, n_table, "GET", path, exact, sizeof exact - 1, &r, params, &n, &f),
        ROUTE_NO_PATH);
}

static void test_star_tail(void)
{
    struct hit h;
    CHECK_INT(look(&h, "GET", "/console/index.html"), ROUTE_FOUND);
    CHECK_STR(h.r->name, "console");
    CHECK_INT(look(&h, "GET", "/console/js/app/main.js"), ROUTE_FOUND);
    CHECK_STR(h.r->name, "console");
    CHECK_INT(look(&h, "GET", "/console"), ROUTE_FOUND);
    CHECK_INT(look(&h, "POST", "/console/x"), ROUTE_NO_METHOD);
    CHECK_INT(look(&h, "GET", "/consolex/a"), ROUTE_NO_PATH);
}

/* --- the real table ------------------------------------------------------- */

/* /admin/v1/cluster is the one admin route of no project: the nodes
 * sharing a database belong to every project (it still needs auth). */
static int is_cloud(const char *tmpl)
{
    if (!strcmp(tmpl, "/admin/v1/cluster"))
        return 0;
    return !strncmp(tmpl, "/v1/", 4) || !strncmp(tmpl, "/v2/", 4) || !strncmp(tmpl, "/admin/", 7);
}

static void test_real_table_shape(void)
{
    CHECK(n_routes > 0);
    const struct route *cl = NULL;
    for (size_t i = 0; i < n_routes; i++)
        if (!strcmp(routes[i].tmpl, "/admin/v1/cluster"))
            cl = &routes[i];
    CHECK(cl && (cl->flags & R_AUTH) && cl->family == API_ADMIN);
    for (size_t i = 0; i < n_routes; i++) {
        const struct route *r = &routes[i];
        CHECK(r->method != NULL && r->tmpl != NULL && r->fn != NULL && r->name != NULL);
        if (!r->tmpl)
            continue;
        if (r->tmpl[0] != '/')
            fprintf(stderr, "  route %zu: template \"%s\"\n", i, r->tmpl);
        CHECK(r->tmpl[0] == '/');
        CHECK(strlen(r->tmpl) < 256); /* router.c copies templates into 256 bytes */
        if (is_cloud(r->tmpl)) {
            if ((r->flags & (R_AUTH | R_PROJECT)) != (R_AUTH | R_PROJECT))
                fprintf(stderr, "  route %s %s lacks R_AUTH|R_PROJECT\n", r->method, r->tmpl);
            CHECK((r->flags & R_AUTH) != 0);
            CHECK((r->flags & R_PROJECT) != 0);
            /* params[0] is {project_id}: it must be the first placeholder. */
            const char *brace = strchr(r->tmpl, '{');
            CHECK(brace && !strncmp(brace, "{project_id}", 12));
            /* The family the route declares is its prefix's. */
            enum api_family want = !strncmp(r->tmpl, "/v2/", 4)   ? API_V2
                                   : !strncmp(r->tmpl, "/v1/", 4) ? API_V1
                                                                  : API_ADMIN;
            CHECK_INT(r->family, want);
        }
        if (r->flags & R_PROJECT)
            CHECK(strstr(r->tmpl, "{project_id}") != NULL);
        /* A body is either parsed as JSON or kept raw, not both. */
        CHECK((r->flags & (R_JSON | R_RAW)) != (R_JSON | R_RAW));
        for (size_t j = i + 1; j < n_routes; j++) {
            int dup = !strcmp(r->method, routes[j].method) && !strcmp(r->tmpl, routes[j].tmpl);
            if (dup)
                fprintf(stderr, "  duplicate route %s %s\n", r->method, r->tmpl);
            CHECK(!dup);
            /* Metric labels are unique too. */
            CHECK(strcmp(r->name, routes[j].name) != 0);
        }
    }
}

/* Every route is reachable: a path built from its template (placeholders
 * filled in) matches that very route, not an earlier one. */
static void test_real_table_reachable(void)
{
    for (size_t i = 0; i < n_routes; i++) {
        char path[512] = "", scratch[512];
        const char *t = routes[i].tmpl;
        size_t o = 0;
        int nph = 0;
        while (*t && o < sizeof path - 16) {
            if (*t == '{') {
                const char *close = strchr(t, '}');
                o += (size_t)snprintf(path + o, sizeof path - o, "val%d", nph++);
                t = close ? close + 1 : t + strlen(t);
            } else if (*t == '*') {
                o += (size_t)snprintf(path + o, sizeof path - o, "file.txt");
                t++;
            } else {
                path[o++] = *t++;
            }
        }
        path[o] = 0;
        const struct route *r = NULL;
        const char *params[REQ_MAX_PARAMS] = {0};
        int n = -1;
        enum api_family f;
        enum route_match m = router_match(routes, n_routes, routes[i].method, path, scratch,
                                          sizeof scratch, &r, params, &n, &f);
        CHECK_INT(m, ROUTE_FOUND);
        if (m != ROUTE_FOUND)
            continue;
        if (r != &routes[i])
            fprintf(stderr, "  %s %s reached %s\n", routes[i].method, path, r->name);
        CHECK(r == &routes[i]);
        if (!strchr(routes[i].tmpl, '*')) {
            CHECK_INT(n, nph);
            for (int k = 0; k < n && k < REQ_MAX_PARAMS; k++) {
                char want[16];
                snprintf(want, sizeof want, "val%d", k);
                CHECK_STR(params[k], want);
            }
        }
        CHECK_INT(f, routes[i].family);
    }
}

/* The instance API of the real table, as clients call it. */
static void test_real_table_paths(void)
{
    char scratch[512];
    const struct route *r = NULL;
    const char *p[REQ_MAX_PARAMS];
    int n = 0;
    enum api_family f;
    CHECK_INT(router_match(routes, n_routes, "POST", "/v1/proj/service", scratch, sizeof scratch,
                           &r, p, &n, &f),
              ROUTE_FOUND);
    CHECK_STR(r->name, "v1_instance_create");
    CHECK_STR(p[0], "proj");
    CHECK_INT(router_match(routes, n_routes, "GET", "/v1/proj/service/inst", scratch,
                           sizeof scratch, &r, p, &n, &f),
              ROUTE_FOUND);
    CHECK_STR(r->name, "v1_instance_get");
    CHECK_STR(p[1], "inst");
    CHECK_INT(router_match(routes, n_routes, "PATCH", "/v1/proj/service/inst", scratch,
                           sizeof scratch, &r, p, &n, &f),
              ROUTE_NO_METHOD);
    CHECK_INT(
        router_match(routes, n_routes, "GET", "/healthz", scratch, sizeof scratch, &r, p, &n, &f),
        ROUTE_FOUND);
    CHECK_INT(router_match(routes, n_routes, "POST", "/v2/p/mms/s/no-such-op", scratch,
                           sizeof scratch, &r, p, &n, &f),
              ROUTE_NO_PATH);
    CHECK_INT(f, API_V2);
}

int main(void)
{
    RUN(test_literal_listed_first_wins);
    RUN(test_params_in_order);
    RUN(test_trailing_slash);
    RUN(test_method_mismatch);
    RUN(test_unknown_path_and_family);
    RUN(test_empty_segment_is_not_a_param);
    RUN(test_too_long_path);
    RUN(test_star_tail);
    RUN(test_real_table_shape);
    RUN(test_real_table_reachable);
    RUN(test_real_table_paths);
    return unit_report();
}
