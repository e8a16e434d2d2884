/* router.c: template matching. Segments in braces match one non-empty path
 * segment; literal segments must be equal; the first route in table order
 * wins, so literal routes are listed before templated ones. */
#include <string.h>
#include "server/router.h"

/* Splits path into segments in scratch; returns the count or -1. */
static int split(const char *path, char *scratch, size_t len, char **segs, int max)
{
    size_t pl = strlen(path);
    if (pl + 1 > len || path[0] != '/')
        return -1;
    memcpy(scratch, path, pl + 1);
    /* One trailing slash is tolerated: /v2/.../search/ == /v2/.../search. */
    if (pl > 1 && scratch[pl - 1] == '/')
        scratch[pl - 1] = 0;
    int n = 0;
    char *p = scratch + 1;
    if (!*p)
        return 0;
    for (;;) {
        if (n == max)
            return -1;
        segs[n++] = p;
        char *slash = strchr(p, '/');
        if (!slash)
            break;
        *slash = 0;
        p = slash + 1;
    }
    return n;
}

static enum api_family family_of(const char *path)
{
    if (!strncmp(path, "/v2/", 4))
        return API_V2;
    if (!strncmp(path, "/v1/", 4))
        return API_V1;
    if (!strncmp(path, "/admin/", 7))
        return API_ADMIN;
    return API_OTHER;
}

/* 1 when the template matches the segments, filling params. */
static int match_tmpl(const char *tmpl, char **segs, int n, const char **params, int *n_params)
{
    char t[256];
    size_t tl = strlen(tmpl);
    if (tl >= sizeof t)
        return 0;
    memcpy(t, tmpl, tl + 1);
    int i = 0, np = 0;
    char *save = NULL;
    for (char *tok = strtok_r(t + 1, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
        if (!strcmp(tok, "*")) {
            *n_params = np;
            return 1; /* the rest, whatever it is (static files) */
        }
        if (i >= n)
            return 0;
        if (tok[0] == '{') {
            if (!segs[i][0] || np >= REQ_MAX_PARAMS)
                return 0;
            params[np++] = segs[i];
        } else if (strcmp(tok, segs[i]) != 0) {
            return 0;
        }
        i++;
    }
    if (i != n)
        return 0;
    *n_params = np;
    return 1;
}

enum route_match router_match(const struct route *table, size_t n, const char *method,
                              const char *path, char *scratch, size_t scratch_len,
                              const struct route **out, const char **params, int *n_params,
                              enum api_family *family)
{
    char *segs[32];
    *family = family_of(path);
    int ns = split(path, scratch, scratch_len, segs, 32);
    if (ns < 0)
        return ROUTE_NO_PATH;
    int path_seen = 0;
    for (size_t r = 0; r < n; r++) {
        const char *p[REQ_MAX_PARAMS] = {0};
        int np = 0;
        if (!match_tmpl(table[r].tmpl, segs, ns, p, &np))
            continue;
        if (strcmp(table[r].method, method) != 0) {
            path_seen = 1;
            continue;
        }
        memcpy(params, p, sizeof p);
        *n_params = np;
        *out = &table[r];
        *family = table[r].family;
        return ROUTE_FOUND;
    }
    return path_seen ? ROUTE_NO_METHOD : ROUTE_NO_PATH;
}
