/* test_source_live.c: drives source_get/put/list against live servers that
 * tests/e2e/test_sources_live.py starts (s3rver, a fixture HTTP server).
 * Without SOURCE_LIVE_URLS it has nothing to check and reports 0/0.
 *
 * Environment (all set by the pytest side):
 *   SOURCE_LIVE_BUCKETS  "name|endpoint|remote|access_key|secret_key;..." (S3)
 *                        or "name|local|ROOT" for a local bucket
 *   SOURCE_LIVE_FETCH    "connect_ms,timeout_ms,max_redirects" (default 2000,2000,3)
 *   SOURCE_LIVE_ALLOW    "cidr,cidr" allow list (default: none); the deny list
 *                        is always the built-in default
 *   SOURCE_LIVE_URLS     one case per line: OP URL EXPECTED [ARG...]
 *     get  URL STATUS [max=BYTES] [ms<=N] [len=N]
 *     put  URL STATUS data=TEXT | size=N
 *     list URL STATUS [keys=k1,k2,...]    (exact keys, in order; %XX-escaped)
 *   STATUS is OK, URL_NOT_ALLOWED, URL_FAILED, OBS_BAD_URL, OBS_FAILED,
 *   OBS_TOO_BIG or OBS_MISSING. Each case prints "ok - ..." or
 *   "not ok - ..." with the detail and elapsed time. */
#include "config/config.h"
#include "storage/fetch.h"
#include "storage/source.h"
#include "tests/unit.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const status_names[] = {
    "OK",         "URL_NOT_ALLOWED", "URL_FAILED",  "OBS_BAD_URL",
    "OBS_FAILED", "OBS_TOO_BIG",     "OBS_MISSING", "NOMEM",
};

static int status_parse(const char *s)
{
    size_t i;

    for (i = 0; i < sizeof status_names / sizeof status_names[0]; i++)
        if (strcmp(s, status_names[i]) == 0)
            return (int)i;
    return -1;
}

static const char *status_name(int st)
{
    return st >= 0 && st < (int)(sizeof status_names / sizeof status_names[0]) ? status_names[st]
                                                                               : "?";
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Splits `s` in place at `sep`; returns the number of fields (<= max). */
static int split(char *s, char sep, char **out, int max)
{
    int n = 0;

    while (n < max) {
        out[n++] = s;
        s = strchr(s, sep);
        if (!s)
            break;
        *s++ = '\0';
    }
    return n;
}

static int parse_buckets(char *spec, struct bucket_config *b, size_t max, size_t *n)
{
    char *items[16];
    int ni = spec && *spec ? split(spec, ';', items, 16) : 0, i;

    *n = 0;
    for (i = 0; i < ni && *n < max; i++) {
        char *f[5];
        int nf = split(items[i], '|', f, 5);
        struct bucket_config *c = &b[*n];
        memset(c, 0, sizeof *c);
        c->name = f[0];
        if (nf == 3 && strcmp(f[1], "local") == 0) {
            c->kind = BUCKET_LOCAL;
            c->root = f[2];
        } else if (nf == 5) {
            c->kind = BUCKET_S3;
            c->endpoint = f[1];
            c->remote = f[2];
            c->access_key = f[3];
            c->secret_key = f[4];
        } else {
            fprintf(stderr, "bad SOURCE_LIVE_BUCKETS entry %d\n", i);
            return -1;
        }
        (*n)++;
    }
    return 0;
}

static int parse_allow(char *spec, struct cidr *c, size_t max, size_t *n)
{
    char *items[16];
    int ni = spec && *spec ? split(spec, ',', items, 16) : 0, i;

    *n = 0;
    for (i = 0; i < ni && *n < max; i++) {
        if (cidr_parse(items[i], &c[*n]) != 0) {
            fprintf(stderr, "bad CIDR %s\n", items[i]);
            return -1;
        }
        (*n)++;
    }
    return 0;
}

/* %XX escapes decoded in place (for keys with spaces or commas). */
static void unescape(char *s)
{
    char *o = s;

    for (; *s; s++) {
        unsigned v;
        if (*s == '%' && sscanf(s + 1, "%2x", &v) == 1 && s[1] && s[2]) {
            *o++ = (char)v;
            s += 2;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
}

struct keys {
    char buf[65536];
    size_t len;
};

static int collect(void *arg, const char *object_url, const char *key, size_t size)
{
    struct keys *k = arg;
    int n;

    (void)object_url;
    (void)size;
    n = snprintf(k->buf + k->len, sizeof k->buf - k->len, "%s%s", k->len ? "," : "", key);
    if (n > 0 && (size_t)n < sizeof k->buf - k->len)
        k->len += (size_t)n;
    return 0;
}

/* Runs one case line; 1 when it passed. */
static int run_case(struct source *src, char *line)
{
    char *tok[8], detail[4200] = "", *op, *url, *want_s;
    char *expect_keys = NULL;
    const char *data = NULL;
    long long max = 10 << 20, max_ms = -1, want_len = -1, size = -1;
    int nt = 0, want, st = -1, ok;
    char *save = NULL, *t;
    double t0;
    struct keys keys = {.len = 0};

    for (t = strtok_r(line, " \t", &save); t && nt < 8; t = strtok_r(NULL, " \t", &save))
        tok[nt++] = t;
    if (nt < 3) {
        fprintf(stderr, "not ok - malformed case\n");
        return 0;
    }
    op = tok[0];
    url = tok[1];
    want_s = tok[2];
    want = status_parse(want_s);
    for (int i = 3; i < nt; i++) {
        if (!strncmp(tok[i], "max=", 4))
            max = atoll(tok[i] + 4);
        else if (!strncmp(tok[i], "ms<=", 4))
            max_ms = atoll(tok[i] + 4);
        else if (!strncmp(tok[i], "len=", 4))
            want_len = atoll(tok[i] + 4);
        else if (!strncmp(tok[i], "keys=", 5))
            unescape(expect_keys = tok[i] + 5);
        else if (!strncmp(tok[i], "data=", 5))
            data = tok[i] + 5;
        else if (!strncmp(tok[i], "size=", 5))
            size = atoll(tok[i] + 5);
    }

    t0 = now_ms();
    if (!strcmp(op, "get")) {
        struct bytes b = {0};
        st = source_get(src, url, (size_t)max, &b, detail, sizeof detail);
        if (st == SRC_OK && want_len >= 0 && (long long)b.len != want_len)
            snprintf(detail, sizeof detail, "got %zu bytes, want %lld", b.len, want_len), st = -2;
        if (st != SRC_OK && b.data)
            snprintf(detail, sizeof detail, "data returned on failure"), st = -2;
        bytes_free(&b);
    } else if (!strcmp(op, "put")) {
        uint8_t *buf = NULL;
        size_t len = 0;
        if (size >= 0) {
            len = (size_t)size;
            buf = malloc(len ? len : 1);
            if (buf)
                for (size_t i = 0; i < len; i++)
                    buf[i] = (uint8_t)(i * 7);
        } else if (data) {
            len = strlen(data);
            buf = (uint8_t *)strdup(data);
        }
        st = buf ? (int)source_put(src, url, buf, len) : SRC_NOMEM;
        free(buf);
    } else if (!strcmp(op, "list")) {
        st = source_list(src, url, collect, &keys);
        if (st == SRC_OK && expect_keys && strcmp(keys.buf, expect_keys) != 0)
            snprintf(detail, sizeof detail, "keys [%.2000s], want [%.2000s]", keys.buf,
                     expect_keys),
                st = -2;
    }
    double ms = now_ms() - t0;

    ok = st == want && want >= 0 && (max_ms < 0 || ms <= (double)max_ms);
    fprintf(stderr, "%s - %s %s -> %s (want %s) %.0f ms%s%s\n", ok ? "ok" : "not ok", op, url,
            st == -2 ? "CHECK" : status_name(st), want_s, ms, detail[0] ? ": " : "", detail);
    if (st == want && max_ms >= 0 && ms > (double)max_ms)
        fprintf(stderr, "    too slow: %.0f ms > %lld ms\n", ms, max_ms);
    return ok;
}

int main(void)
{
    const char *urls_env = getenv("SOURCE_LIVE_URLS");
    char *buckets_spec = NULL, *allow_spec = NULL, *fetch_spec = NULL, *urls = NULL;
    struct bucket_config buckets[16];
    struct cidr allow[16];
    struct config cfg;
    struct source *src = NULL;
    char err[256] = "", *line, *save = NULL;

    if (!urls_env || !*urls_env)
        return unit_report(); /* offline: the live cases come from pytest */
    if (source_global_init() != 0)
        return 1;
    memset(&cfg, 0, sizeof cfg);
    buckets_spec = strdup(getenv("SOURCE_LIVE_BUCKETS") ? getenv("SOURCE_LIVE_BUCKETS") : "");
    allow_spec = strdup(getenv("SOURCE_LIVE_ALLOW") ? getenv("SOURCE_LIVE_ALLOW") : "");
    fetch_spec = strdup(getenv("SOURCE_LIVE_FETCH") ? getenv("SOURCE_LIVE_FETCH") : "");
    urls = strdup(urls_env);
    if (!buckets_spec || !allow_spec || !fetch_spec || !urls)
        goto fail;
    if (parse_buckets(buckets_spec, buckets, 16, &cfg.n_buckets) != 0 ||
        parse_allow(allow_spec, allow, 16, &cfg.fetch.n_allow) != 0)
        goto fail;
    cfg.buckets = buckets;
    cfg.fetch.allow = allow;
    cfg.fetch.connect_timeout_ms = 2000;
    cfg.fetch.timeout_ms = 2000;
    cfg.fetch.max_redirects = 3;
    if (*fetch_spec)
        sscanf(fetch_spec, "%ld,%ld,%ld", &cfg.fetch.connect_timeout_ms, &cfg.fetch.timeout_ms,
               &cfg.fetch.max_redirects);
    if (fetch_default_deny(&cfg.fetch.deny, &cfg.fetch.n_deny) != 0)
        goto fail;
    if (source_create(&cfg, &src, err, sizeof err) != 0) {
        fprintf(stderr, "source_create: %s\n", err);
        goto fail;
    }
    for (line = strtok_r(urls, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!*line || *line == '#')
            continue;
        unit_cur_failed = !run_case(src, line);
        if (unit_cur_failed)
            unit_failed++;
        else
            unit_passed++;
    }
    source_free(src);
    free(cfg.fetch.deny);
    free(buckets_spec);
    free(allow_spec);
    free(fetch_spec);
    free(urls);
    return unit_report();
fail:
    free(cfg.fetch.deny);
    free(buckets_spec);
    free(allow_spec);
    free(fetch_spec);
    free(urls);
    unit_failed++;
    return unit_report();
}
