/* config.c: builds the immutable `struct config` from defaults, an INI file
 * (libinih) and command-line overrides. Every unknown key or bad value stops
 * start-up with "file:line: [section] key: reason". */
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "config/config.h"
#include "storage/shard.h"

struct parse_ctx {
    struct config *cfg;
    char err[512]; /* first error, without the file:line prefix */
};

static char *xstrdup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d) {
        fprintf(stderr, "out of memory\n");
        abort();
    }
    return d;
}

static void set_str(char **dst, const char *v)
{
    free(*dst);
    *dst = xstrdup(v);
}

void config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->listen_host = xstrdup("127.0.0.1");
    cfg->listen_port = 8080;
    cfg->data_dir = xstrdup("./data");
    cfg->objects_dir = xstrdup("./objects");
    cfg->model_path =
        xstrdup(getenv("IMGSEARCH_MODEL") ? getenv("IMGSEARCH_MODEL") : "./models/mnv2_140.bin");
    cfg->console_dir = xstrdup("./console");
    cfg->threads = 0;
    cfg->max_body_bytes = 12u * 1024 * 1024;
    cfg->request_timeout_s = 60;
    cfg->max_connections = 256;
    cfg->max_connections_per_ip = 64;
    cfg->image_nice = IMAGE_NICE_IDLE; /* the CNN yields to every cheap call */
    cfg->auth_mode = AUTH_NONE;
    cfg->auth_max_skew_s = 900;
    cfg->fetch.connect_timeout_ms = 5000;
    cfg->fetch.timeout_ms = 20000;
    cfg->fetch.max_redirects = 3;
    cfg->index.exact_max = 100000;
    cfg->index.ann_factory = xstrdup("IVF1024,SQ8");
    cfg->index.compact_ann_factory = xstrdup("IVF4096,PQ64");
    cfg->index.compact_rerank = 128;
    cfg->index.compact_exact_max = 25000;
    cfg->index.compact_list_max = 1024;
    cfg->index.compact_after = 1000; /* docs/benchmarks.md: the fit wants >= 8 vectors a dim */
    cfg->index.compact_batch = 256;
    cfg->index.nprobe = 0;
    cfg->index.snapshot_changes = 10000;
    cfg->index.snapshot_seconds = 300;
    cfg->import_workers = 1;
    cfg->cluster.node_timeout_ms = 5000;
    cfg->cluster.shards = 1;
    cfg->cluster.shard_timeout_ms = 2000;
    cfg->search.rotations = 1;
    cfg->search.query_views = 1;
    cfg->search.views_below = 0.9;
    cfg->index.views = 1;
    cfg->index.int8 = 1;
    cfg->search.rotation_below = 0.9;
    cfg->search.rotation_penalty = 0.1;
    cfg->search.compact_views_below = 0.78;
    cfg->search.compact_view_penalty = 0.041;
    cfg->search.compact_rotation_below = 0.78;
    cfg->search.compact_rotation_penalty = 0.21;
}

static void free_cidrs(struct cidr **list, size_t *n)
{
    free(*list);
    *list = NULL;
    *n = 0;
}

void bucket_config_free(struct bucket_config *b)
{
    free(b->name);
    free(b->root);
    free(b->endpoint);
    free(b->remote);
    free(b->region);
    free(b->access_key);
    free(b->secret_key);
}

void config_free(struct config *cfg)
{
    free(cfg->listen_host);
    free(cfg->data_dir);
    free(cfg->objects_dir);
    free(cfg->model_path);
    free(cfg->console_dir);
    for (size_t i = 0; i < cfg->n_credentials; i++) {
        free(cfg->credentials[i].name);
        free(cfg->credentials[i].access_key);
        free(cfg->credentials[i].secret_key);
        free(cfg->credentials[i].project_id);
    }
    free(cfg->credentials);
    for (size_t i = 0; i < cfg->n_tokens; i++) {
        free(cfg->tokens[i].name);
        free(cfg->tokens[i].token);
        free(cfg->tokens[i].project_id);
    }
    free(cfg->tokens);
    for (size_t i = 0; i < cfg->n_buckets; i++)
        bucket_config_free(&cfg->buckets[i]);
    free(cfg->buckets);
    free_cidrs(&cfg->fetch.allow, &cfg->fetch.n_allow);
    free_cidrs(&cfg->fetch.deny, &cfg->fetch.n_deny);
    free(cfg->storage.dsn);
    free(cfg->cluster.node_url);
    free(cfg->cluster.snapshot_bucket);
    free(cfg->cluster.snapshot_prefix);
    free(cfg->cluster.secret);
    free(cfg->index.ann_factory);
    free(cfg->index.compact_ann_factory);
    free(cfg->index.projection);
    free(cfg->path);
    memset(cfg, 0, sizeof *cfg);
}

/* --- value parsers: 0 on success, -1 with ctx->err set --------------------- */

static int parse_long(struct parse_ctx *ctx, const char *v, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < min || x > max) {
        snprintf(ctx->err, sizeof ctx->err, "expected an integer in [%ld, %ld], got \"%s\"", min,
                 max, v);
        return -1;
    }
    *out = x;
    return 0;
}

/* Sizes accept a K/M/G suffix (binary multiples). */
static int parse_size(struct parse_ctx *ctx, const char *v, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    unsigned long long mult = 1;
    if (end != v && *end && !end[1]) {
        switch (*end) {
        case 'k':
        case 'K':
            mult = 1024ull;
            end++;
            break;
        case 'm':
        case 'M':
            mult = 1024ull * 1024;
            end++;
            break;
        case 'g':
        case 'G':
            mult = 1024ull * 1024 * 1024;
            end++;
            break;
        }
    }
    if (errno || end == v || *end || v[0] == '-' || x == 0 || x > (1ull << 40) / mult) {
        snprintf(ctx->err, sizeof ctx->err, "expected a size like 12M, got \"%s\"", v);
        return -1;
    }
    *out = (size_t)(x * mult);
    return 0;
}

int config_parse_listen(const char *v, char **host, int *port)
{
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v)
        return -1;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || p < 0 || p > 65535)
        return -1;
    size_t hl = (size_t)(colon - v);
    if (v[0] == '[' && hl >= 2 && v[hl - 1] == ']') { /* [::1]:8080 */
        v++;
        hl -= 2;
    }
    char *h = strndup(v, hl);
    if (!h)
        return -1;
    free(*host);
    *host = h;
    *port = (int)p;
    return 0;
}

/* A comma- or space-separated CIDR list, appended to *list. */
static int parse_cidr_list(struct parse_ctx *ctx, const char *v, struct cidr **list, size_t *n)
{
    char *copy = xstrdup(v), *save = NULL;
    int rc = 0;
    for (char *tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
        struct cidr c;
        if (cidr_parse(tok, &c) != 0) {
            snprintf(ctx->err, sizeof ctx->err, "bad address range \"%s\"", tok);
            rc = -1;
            break;
        }
        struct cidr *grown = realloc(*list, (*n + 1) * sizeof **list);
        if (!grown) {
            rc = -1;
            break;
        }
        *list = grown;
        (*list)[(*n)++] = c;
    }
    free(copy);
    return rc;
}

/* --- sections -------------------------------------------------------------- */

/* Finds or appends the named entry of a [kind:NAME] section array. */
#define FIND_OR_ADD(arr, count, nm)                                                                \
    ({                                                                                             \
        __typeof__(&(arr)[0]) found_ = NULL;                                                       \
        for (size_t i_ = 0; i_ < (count); i_++)                                                    \
            if (strcmp((arr)[i_].name, (nm)) == 0)                                                 \
                found_ = &(arr)[i_];                                                               \
        if (!found_) {                                                                             \
            __typeof__(&(arr)[0]) g_ = realloc((arr), ((count) + 1) * sizeof *(arr));              \
            if (g_) {                                                                              \
                (arr) = g_;                                                                        \
                found_ = &(arr)[(count)++];                                                        \
                memset(found_, 0, sizeof *found_);                                                 \
                found_->name = xstrdup(nm);                                                        \
            }                                                                                      \
        }                                                                                          \
        found_;                                                                                    \
    })

static int valid_name(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!(('a' <= *s && *s <= 'z') || ('A' <= *s && *s <= 'Z') || ('0' <= *s && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return 0;
    return 1;
}

/* A snapshot key prefix: name segments ([A-Za-z0-9._-], not "." or "..")
 * joined by '/', with or without a final '/'. */
static int valid_key_prefix(const char *s)
{
    char seg[256];
    while (*s) {
        size_t n = strcspn(s, "/");
        if (n == 0 || n >= sizeof seg)
            return 0;
        memcpy(seg, s, n);
        seg[n] = '\0';
        if (!valid_name(seg) || !strcmp(seg, ".") || !strcmp(seg, ".."))
            return 0;
        s += n;
        if (*s == '/')
            s++;
    }
    return 1;
}

/* An empty path would silently mean the file-system root ("/imgsearch.db",
 * "/index", a bucket at "/"): refused (found by fuzz_config). */
static int set_path(struct parse_ctx *ctx, char **dst, const char *v)
{
    if (!*v) {
        snprintf(ctx->err, sizeof ctx->err, "expected a path, got an empty value");
        return -1;
    }
    set_str(dst, v);
    return 0;
}

static int server_key(struct parse_ctx *ctx, const char *k, const char *v)
{
    struct config *cfg = ctx->cfg;
    long x;
    if (!strcmp(k, "listen")) {
        if (config_parse_listen(v, &cfg->listen_host, &cfg->listen_port) != 0) {
            snprintf(ctx->err, sizeof ctx->err, "expected HOST:PORT, got \"%s\"", v);
            return -1;
        }
        return 0;
    }
    if (!strcmp(k, "data_dir"))
        return set_path(ctx, &cfg->data_dir, v);
    if (!strcmp(k, "objects_dir"))
        return set_path(ctx, &cfg->objects_dir, v);
    if (!strcmp(k, "model"))
        return set_path(ctx, &cfg->model_path, v);
    if (!strcmp(k, "console_dir"))
        return set_path(ctx, &cfg->console_dir, v);
    if (!strcmp(k, "threads")) {
        if (parse_long(ctx, v, 0, 256, &x))
            return -1;
        cfg->threads = (int)x;
        return 0;
    }
    if (!strcmp(k, "max_body_bytes"))
        return parse_size(ctx, v, &cfg->max_body_bytes);
    if (!strcmp(k, "request_timeout")) {
        if (parse_long(ctx, v, 1, 3600, &x))
            return -1;
        cfg->request_timeout_s = x;
        return 0;
    }
    if (!strcmp(k, "max_connections")) {
        if (parse_long(ctx, v, 1, 100000, &x))
            return -1;
        cfg->max_connections = (int)x;
        return 0;
    }
    if (!strcmp(k, "image_workers")) {
        if (parse_long(ctx, v, 0, 256, &x))
            return -1;
        cfg->image_workers = (int)x;
        return 0;
    }
    if (!strcmp(k, "image_queue")) {
        if (parse_long(ctx, v, 0, 100000, &x))
            return -1;
        cfg->image_queue = (int)x;
        return 0;
    }
    if (!strcmp(k, "image_nice")) {
        if (!strcasecmp(v, "idle")) {
            cfg->image_nice = IMAGE_NICE_IDLE;
            return 0;
        }
        if (parse_long(ctx, v, 0, 19, &x)) {
            snprintf(ctx->err, sizeof ctx->err,
                     "expected idle or an integer in [0, 19], got \"%s\"", v);
            return -1;
        }
        cfg->image_nice = (int)x;
        return 0;
    }
    if (!strcmp(k, "max_connections_per_ip")) {
        if (parse_long(ctx, v, 1, 100000, &x))
            return -1;
        cfg->max_connections_per_ip = (int)x;
        return 0;
    }
    snprintf(ctx->err, sizeof ctx->err, "unknown key");
    return -1;
}

static int auth_key(struct parse_ctx *ctx, const char *k, const char *v)
{
    struct config *cfg = ctx->cfg;
    if (!strcmp(k, "mode")) {
        static const char *names[] = {"none", "token", "aksk", "any"};
        for (int i = 0; i < 4; i++)
            if (!strcasecmp(v, names[i])) {
                cfg->auth_mode = (enum auth_mode)i;
                return 0;
            }
        snprintf(ctx->err, sizeof ctx->err, "expected none, token, aksk or any, got \"%s\"", v);
        return -1;
    }
    if (!strcmp(k, "max_skew_seconds"))
        return parse_long(ctx, v, 1, 20L * 366 * 24 * 3600, &cfg->auth_max_skew_s);
    snprintf(ctx->err, sizeof ctx->err, "unknown key");
    return -1;
}

static int credential_key(struct parse_ctx *ctx, const char *name, const char *k, const char *v)
{
    struct config *cfg = ctx->cfg;
    struct credential_config *c = FIND_OR_ADD(cfg->credentials, cfg->n_credentials, name);
    if (!c)
        return -1;
    if (!strcmp(k, "access_key"))
        return set_str(&c->access_key, v), 0;
    if (!strcmp(k, "secret_key"))
        return set_str(&c->secret_key, v), 0;
    if (!strcmp(k, "project_id"))
        return set_str(&c->project_id, v), 0;
    snprintf(ctx->err, sizeof ctx->err, "unknown key");
    return -1;
}

static int token_key(struct parse_ctx *ctx, const char *name, const char *k, const char *v)
{
    struct config *cfg = ctx->cfg;
    struct token_config *t = FIND_OR_ADD(cfg->tokens, cfg->n_tokens, name);
    if (!t)
        return -1;
    if (!strcmp(k, "token"))
        return set_str(&t->token, v), 0;
    if (!strcmp(k, "project_id"))
        return set_str(&t->project_id, v), 0;
    snprintf(ctx->err, sizeof ctx->err, "unknown key");
    return -1;
}

static int bucket_key(struct parse_ctx *ctx, const char *name, const char *k, const char *v)
{
    struct config *cfg = ctx->cfg;
    struct bucket_config *b = FIND_OR_ADD(cfg->buckets, cfg->n_buckets, name);
    if (!b)
        return -1;
    if (!strcmp(k, "type")) {
        if (!strcmp(v, "local"))
            b->kind = BUCKET_LOCAL;
        else if (!strcmp(v, "s3") || !strcmp(v, "obs"))
            b->kind = BUCKET_S3;
        else {
            snprintf(ctx->err, sizeof ctx->err, "expected local or s3, got \"%s\"", v);
            return -1;
        }
        return 0;
    }
    char **slot = !strcmp(k, "root")            ? &b->root
                  : !strcmp(k, "endpoint")      ? &b->endpoint
                  : !strcmp(k, "remote_bucket") ? &b->remote
                  : !strcmp(k, "region")        ? &b->region
                  : !strcmp(k, "access_key")    ? &b->access_key
                  : !strcmp(k, "secret_key")    ? &b->secret_key
                                                : NULL;
    if (!slot) {
        snprintf(ctx->err, sizeof ctx->err, "unknown key");
        return -1;
    }
    set_str(slot, v);
    return 0;
}

static int fetch_key(struct parse_ctx *ctx, const char *k, const char *v)
{
    struct fetch_config *f = &ctx->cfg->fetch;
    if (!strcmp(k, "connect_timeout_ms"))
        return parse_long(ctx, v, 1, 600000, &f->connect_timeout_ms);
    if (!strcmp(k, "timeout_ms"))
        return parse_long(ctx, v, 1, 3600000, &f->timeout_ms);
    if (!strcmp(k, "max_redirects"))
        return parse_long(ctx, v, 0, 20, &f->max_redirects);
    if (!strcmp(k, "max_concurrent")) {
        long x;
        if (parse_long(ctx, v, 0, 4096, &x))
            return -1;
        f->max_concurrent = (int)x;
        return 0;
    }
    if (!strcmp(k, "allow"))
        return parse_cidr_list(ctx, v, &f->allow, &f->n_allow);
    if (!strcmp(k, "deny")) {
        f->deny_configured = 1;
        return parse_cidr_list(ctx, v, &f->deny, &f->n_deny);
    }
    snprintf(ctx->err, sizeof ctx->err, "unknown key");
    return -1;
}

static int parse_bool(struct parse_ctx *ctx, const char *v, int *out);

static int index_key(struct parse_ctx *ctx, const char *k, const char *v)
{
    struct index_config *ix = &ctx->cfg->index;
    if (!strcmp(k, "exact_max"))
        return parse_long(ctx, v, 1, 1L << 40, &ix->exact_max);
    if (!strcmp(k, "ann_factory"))
        return set_str(&ix->ann_factory, v), 0;
    if (!strcmp(k, "compact_ann_factory"))
        return set_str(&ix->compact_ann_factory, v), 0;
    if (!strcmp(k, "compact_exact_max"))
        return parse_long(ctx, v, 1, 1L << 40, &ix->compact_exact_max);
    if (!strcmp(k, "compact_list_max"))
        return parse_long(ctx, v, 0, 1L << 30, &ix->compact_list_max);
    if (!strcmp(k, "compact_rerank"))
        return parse_long(ctx, v, 0, 1 << 16, &ix->compact_rerank);
    if (!strcmp(k, "nprobe"))
        return parse_long(ctx, v, 0, 1 << 20, &ix->nprobe);
    if (!strcmp(k, "views"))
        return parse_bool(ctx, v, &ix->views);
    if (!strcmp(k, "int8"))
        return parse_bool(ctx, v, &ix->int8);
    if (!strcmp(k, "snapshot_changes"))
        return parse_long(ctx, v, 0, 1L << 40, &ix->snapshot_changes);
    if (!strcmp(k, "snapshot_seconds"))
        return parse_long(ctx, v, 0, 1L << 30, &ix->snapshot_seconds);
    if (!strcmp(k, "compact_after"))
        return parse_long(ctx, v, 0, 1L << 40, &ix->compact_after);
    if (!strcmp(k, "compact_batch"))
        return parse_long(ctx, v, 1, 1 << 20, &ix->compact_batch);
    if (!strcmp(k, "compact_pause_ms"))
        return parse_long(ctx, v, 0, 60000, &ix->compact_pause_ms);
    if (!strcmp(k, "projection")) {
        if (!*v) { /* empty: off */
            free(ix->projection);
            ix->projection = NULL;
            return 0;
        }
        return set_path(ctx, &ix->projection, v);
    }
    snprintf(ctx->err, sizeof ctx->err, "unknown key");
    return -1;
}

static int parse_bool(struct parse_ctx *ctx, const char *v, int *out)
{
    if (!strcasecmp(v, "on") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcmp(v, "1"))
        *out = 1;
    else if (!strcasecmp(v, "off") || !strcasecmp(v, "false") || !strcasecmp(v, "no") ||
             !strcmp(v, "0"))
        *out = 0;
    else {
        snprintf(ctx->err, sizeof ctx->err, "expected on or off, got \"%s\"", v);
        return -1;
    }
    return 0;
}

static int parse_fraction(struct parse_ctx *ctx, const char *v, double *out)
{
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end || !(d >= 0 && d <= 1)) {
        snprintf(ctx->err, sizeof ctx->err, "expected a number in [0, 1], got \"%s\"", v);
        return -1;
    }
    *out = d;
    return 0;
}

static int search_key(struct parse_ctx *ctx, const char *k, const char *v)
{
    struct search_config *sc = &ctx->cfg->search;
    if (!strcmp(k, "rotations"))
        return parse_bool(ctx, v, &sc->rotations);
    if (!strcmp(k, "query_views"))
        return parse_bool(ctx, v, &sc->query_views);
    if (!strcmp(k, "views_below"))
        return parse_fraction(ctx, v, &sc->views_below);
    if (!strcmp(k, "rotation_below"))
        return parse_fraction(ctx, v, &sc->rotation_below);
    if (!strcmp(k, "rotation_penalty"))
        return parse_fraction(ctx, v, &sc->rotation_penalty);
    if (!strcmp(k, "compact_views_below"))
        return parse_fraction(ctx, v, &sc->compact_views_below);
    if (!strcmp(k, "compact_view_penalty"))
        return parse_fraction(ctx, v, &sc->compact_view_penalty);
    if (!strcmp(k, "compact_rotation_below"))
        return parse_fraction(ctx, v, &sc->compact_rotation_below);
    if (!strcmp(k, "compact_rotation_penalty"))
        return parse_fraction(ctx, v, &sc->compact_rotation_penalty);
    snprintf(ctx->err, sizeof ctx->err, "unknown key");
    return -1;
}

static int import_key(struct parse_ctx *ctx, const char *k, const char *v)
{
    long x;
    if (!strcmp(k, "workers")) {
        if (parse_long(ctx, v, 1, 64, &x))
            return -1;
        ctx->cfg->import_workers = (int)x;
        return 0;
    }
    snprintf(ctx->err, sizeof ctx->err, "unknown key");
    return -1;
}

static int storage_key(struct parse_ctx *ctx, const char *k, const char *v)
{
    struct storage_config *sc = &ctx->cfg->storage;
    if (!strcmp(k, "backend")) {
        if (!strcasecmp(v, "sqlite"))
            sc->backend = STORAGE_SQLITE;
        else if (!strcasecmp(v, "postgres") || !strcasecmp(v, "postgresql"))
            sc->backend = STORAGE_POSTGRES;
        else {
            snprintf(ctx->err, sizeof ctx->err, "expected sqlite or postgres, got \"%s\"", v);
            return -1;
        }
        return 0;
    }
    if (!strcmp(k, "dsn")) {
        set_str(&sc->dsn, v);
        return sc->dsn ? 0 : -1;
    }
    snprintf(ctx->err, sizeof ctx->err, "unknown key");
    return -1;
}

static int cluster_key(struct parse_ctx *ctx, const char *k, const char *v)
{
    struct cluster_config *cc = &ctx->cfg->cluster;
    if (!strcmp(k, "node_url")) {
        if (*v && strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0) {
            snprintf(ctx->err, sizeof ctx->err, "expected an http:// or https:// URL");
            return -1;
        }
        free(cc->node_url);
        cc->node_url = NULL;
        if (*v)
            set_str(&cc->node_url, v);
        return !*v || cc->node_url ? 0 : -1;
    }
    if (!strcmp(k, "node_timeout_ms"))
        return parse_long(ctx, v, 500, 3600000, &cc->node_timeout_ms);
    int bucket = !strcmp(k, "snapshot_bucket");
    if (bucket || !strcmp(k, "snapshot_prefix")) {
        char **dst = bucket ? &cc->snapshot_bucket : &cc->snapshot_prefix;
        if (*v && !(bucket ? valid_name(v) : valid_key_prefix(v))) {
            snprintf(ctx->err, sizeof ctx->err,
                     bucket ? "expected a bucket name" : "expected key segments like \"prod/\"");
            return -1;
        }
        free(*dst);
        *dst = NULL;
        if (*v)
            set_str(dst, v);
        return !*v || *dst ? 0 : -1;
    }
    if (!strcmp(k, "shards"))
        return parse_long(ctx, v, 1, SHARDS_MAX, &cc->shards);
    if (!strcmp(k, "shard_timeout_ms"))
        return parse_long(ctx, v, 50, 600000, &cc->shard_timeout_ms);
    if (!strcmp(k, "secret")) {
        free(cc->secret);
        cc->secret = NULL;
        if (*v)
            set_str(&cc->secret, v);
        return !*v || cc->secret ? 0 : -1;
    }
    snprintf(ctx->err, sizeof ctx->err, "unknown key");
    return -1;
}

/* inih calls this for every key; returning 0 makes ini_parse report the line. */
static int on_key(void *user, const char *section, const char *key, const char *value)
{
    struct parse_ctx *ctx = user;
    if (ctx->err[0])
        return 1; /* keep the first error only */
    int rc = -1;
    const char *colon = strchr(section, ':');
    if (!colon) {
        if (!strcmp(section, "server"))
            rc = server_key(ctx, key, value);
        else if (!strcmp(section, "auth"))
            rc = auth_key(ctx, key, value);
        else if (!strcmp(section, "fetch"))
            rc = fetch_key(ctx, key, value);
        else if (!strcmp(section, "index"))
            rc = index_key(ctx, key, value);
        else if (!strcmp(section, "import"))
            rc = import_key(ctx, key, value);
        else if (!strcmp(section, "search"))
            rc = search_key(ctx, key, value);
        else if (!strcmp(section, "storage"))
            rc = storage_key(ctx, key, value);
        else if (!strcmp(section, "cluster"))
            rc = cluster_key(ctx, key, value);
        else
            snprintf(ctx->err, sizeof ctx->err, "unknown section");
    } else {
        const char *name = colon + 1;
        size_t kl = (size_t)(colon - section);
        if (!valid_name(name))
            snprintf(ctx->err, sizeof ctx->err, "bad section name \"%s\"", name);
        else if (kl == 10 && !strncmp(section, "credential", kl))
            rc = credential_key(ctx, name, key, value);
        else if (kl == 5 && !strncmp(section, "token", kl))
            rc = token_key(ctx, name, key, value);
        else if (kl == 6 && !strncmp(section, "bucket", kl))
            rc = bucket_key(ctx, name, key, value);
        else
            snprintf(ctx->err, sizeof ctx->err, "unknown section");
    }
    if (rc == 0)
        return 1;
    if (!ctx->err[0])
        snprintf(ctx->err, sizeof ctx->err, "out of memory");
    /* Prefix the section and key now; the line comes from ini_parse. */
    char tmp[sizeof ctx->err];
    snprintf(tmp, sizeof tmp, "%s", ctx->err);
    snprintf(ctx->err, sizeof ctx->err, "[%.100s] %.100s: %.300s", section, key, tmp);
    return 0;
}

/* Whole-config checks that no single key can make. */
static int validate(struct config *cfg, char *errbuf, size_t errlen)
{
    const char *file = cfg->path ? cfg->path : "(defaults)";
    for (size_t i = 0; i < cfg->n_credentials; i++) {
        struct credential_config *c = &cfg->credentials[i];
        if (!c->access_key || !*c->access_key || !c->secret_key || !*c->secret_key) {
            snprintf(errbuf, errlen, "%s: [credential:%s] needs access_key and secret_key", file,
                     c->name);
            return -1;
        }
    }
    for (size_t i = 0; i < cfg->n_tokens; i++)
        if (!cfg->tokens[i].token || strlen(cfg->tokens[i].token) < 8) {
            snprintf(errbuf, errlen, "%s: [token:%s] needs a token of at least 8 characters", file,
                     cfg->tokens[i].name);
            return -1;
        }
    for (size_t i = 0; i < cfg->n_buckets; i++) {
        struct bucket_config *b = &cfg->buckets[i];
        if (b->kind == BUCKET_LOCAL && (!b->root || !*b->root)) {
            snprintf(errbuf, errlen, "%s: [bucket:%s] type local needs root", file, b->name);
            return -1;
        }
        if (b->kind == BUCKET_S3 && (!b->endpoint || !b->access_key || !b->secret_key)) {
            snprintf(errbuf, errlen,
                     "%s: [bucket:%s] type s3 needs endpoint, access_key and secret_key", file,
                     b->name);
            return -1;
        }
    }
    const char *sb = cfg->cluster.snapshot_bucket;
    int found = !sb || (cfg->n_buckets == 0 && !strcmp(sb, "local"));
    for (size_t i = 0; i < cfg->n_buckets && !found; i++)
        found = !strcmp(cfg->buckets[i].name, sb);
    if (!found) {
        snprintf(errbuf, errlen, "%s: [cluster] snapshot_bucket = %s names no [bucket:%s]", file,
                 sb, sb);
        return -1;
    }
    if (cfg->storage.backend == STORAGE_POSTGRES && (!cfg->storage.dsn || !*cfg->storage.dsn)) {
        snprintf(errbuf, errlen, "%s: [storage] backend = postgres needs dsn", file);
        return -1;
    }
    /* Shards answer each other's searches over /internal/v1 (docs/cluster.md):
     * never unauthenticated. */
    if (cfg->storage.backend == STORAGE_POSTGRES && cfg->cluster.shards > 1 &&
        (!cfg->cluster.secret || strlen(cfg->cluster.secret) < 16)) {
        snprintf(errbuf, errlen,
                 "%s: [cluster] shards > 1 needs a secret of at least 16 characters", file);
        return -1;
    }
    if ((cfg->auth_mode == AUTH_TOKEN && cfg->n_tokens == 0) ||
        (cfg->auth_mode == AUTH_AKSK && cfg->n_credentials == 0) ||
        (cfg->auth_mode == AUTH_ANY && cfg->n_tokens + cfg->n_credentials == 0)) {
        snprintf(errbuf, errlen,
                 "%s: [auth] mode needs at least one [token:NAME] or "
                 "[credential:NAME] section to match it",
                 file);
        return -1;
    }
    return 0;
}

/* The default local bucket exists only when no bucket is configured. */
static int finish(struct config *cfg)
{
    if (cfg->n_buckets == 0) {
        cfg->buckets = calloc(1, sizeof *cfg->buckets);
        if (!cfg->buckets)
            return -1;
        cfg->n_buckets = 1;
        cfg->buckets[0].name = xstrdup("local");
        cfg->buckets[0].kind = BUCKET_LOCAL;
        cfg->buckets[0].root = xstrdup(cfg->objects_dir);
    }
    for (size_t i = 0; i < cfg->n_buckets; i++) {
        struct bucket_config *b = &cfg->buckets[i];
        if (b->kind == BUCKET_S3) {
            if (!b->remote)
                b->remote = xstrdup(b->name);
            if (!b->region)
                b->region = xstrdup("us-east-1");
        }
    }
    return 0;
}

static int read_file(const char *path, struct config *cfg, char *errbuf, size_t errlen)
{
    struct parse_ctx ctx = {.cfg = cfg};
    set_str(&cfg->path, path);
    int line = ini_parse(path, on_key, &ctx);
    if (line == -1) {
        snprintf(errbuf, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (line == -2) {
        snprintf(errbuf, errlen, "%s: out of memory", path);
        return -1;
    }
    if (line > 0) {
        if (ctx.err[0])
            snprintf(errbuf, errlen, "%s:%d: %s", path, line, ctx.err);
        else
            snprintf(errbuf, errlen, "%s:%d: syntax error", path, line);
        return -1;
    }
    return 0;
}

int config_load_file(const char *path, struct config *cfg, char *errbuf, size_t errlen)
{
    config_defaults(cfg);
    if (path && read_file(path, cfg, errbuf, errlen) != 0)
        return -1;
    if (validate(cfg, errbuf, errlen) != 0 || finish(cfg) != 0)
        return -1;
    return 0;
}

void config_usage(FILE *out)
{
    fputs("Usage: imgsearchd [--config FILE] [--listen HOST:PORT] [--data-dir DIR] [--help]\n"
          "\n"
          "Self-hosted image search speaking the Huawei Cloud Image Search REST API.\n"
          "Command-line options override the file. Keys of the INI file:\n"
          "\n"
          "[server]\n"
          "  listen = HOST:PORT       address to serve on (default 127.0.0.1:8080)\n"
          "  data_dir = DIR           SQLite database (backend sqlite) and index files\n"
          "                           (default ./data)\n"
          "  objects_dir = DIR        root of the default local bucket \"local\" (./objects)\n"
          "  threads = N              HTTP threads, 0 = 4 per core (default 0); calls\n"
          "                           that touch storage run on as many store\n"
          "                           workers (at least 8 per core)\n"
          "  max_body_bytes = SIZE    larger bodies get 413 APIG.0201 (default 12M)\n"
          "  request_timeout = SEC    idle connection timeout (default 60)\n"
          "  max_connections = N      concurrent connections (default 256)\n"
          "  max_connections_per_ip = N  from one client address (default 64)\n"
          "  image_workers = N        threads running image calls (add, search),\n"
          "                           0 = 2 per core (default 0)\n"
          "  image_queue = N          image calls waiting for a worker; past that\n"
          "                           429 ModelArts.4401 at once (0 = 4 per core)\n"
          "  image_nice = idle|N      priority of the threads that decode and run\n"
          "                           the CNN: idle (SCHED_IDLE, any other thread\n"
          "                           preempts them) or a nice value 0-19 added to\n"
          "                           the process's (default idle)\n"
          "  model = FILE             extractor weights (default ./models/mnv2_140.bin)\n"
          "  console_dir = DIR        web console files (default ./console)\n"
          "[auth]\n"
          "  mode = none|token|aksk|any   (default none: every request is accepted)\n"
          "  max_skew_seconds = N     allowed X-Sdk-Date clock skew (default 900)\n"
          "[credential:NAME]          one per AK/SK pair (SDK-HMAC-SHA256)\n"
          "  access_key, secret_key, project_id (optional: the only project it may use)\n"
          "[token:NAME]               one per static X-Auth-Token\n"
          "  token, project_id (optional)\n"
          "[bucket:NAME]              object-store bucket for obs://NAME/key and\n"
          "                           https://NAME.obs.REGION.myhuaweicloud.com/key\n"
          "  type = local|s3, root (local), endpoint, remote_bucket, region,\n"
          "  access_key, secret_key (s3). Without any bucket, \"local\" = objects_dir.\n"
          "[fetch]                    image_url downloads\n"
          "  connect_timeout_ms (5000), timeout_ms (20000), max_redirects (3)\n"
          "  max_concurrent = N       downloads at once for requests; a request\n"
          "                           waiting over 1 s gets 429 ModelArts.4401\n"
          "                           (0 = half the HTTP threads, the default)\n"
          "  allow = CIDR, ...        always allowed ranges\n"
          "  deny = CIDR, ...         refused ranges (default: loopback, private, link-local)\n"
          "[index]\n"
          "  exact_max = N            exact search up to N items per instance (100000;\n"
          "                           counts items, whatever their vectors)\n"
          "  ann_factory = STRING     FAISS index beyond that (IVF1024,SQ8)\n"
          "  compact_ann_factory = S  the same for compact instances (IVF4096,PQ64)\n"
          "  compact_exact_max = N    compact instances switch to it past the smaller\n"
          "                           of N and exact_max items (25000)\n"
          "  compact_rerank = N       their top N candidates re-scored with the int8\n"
          "                           codes in the database (128; 0: off)\n"
          "  compact_list_max = N     re-partition their IVF index into 4x the lists\n"
          "                           when the lists average more than N vectors\n"
          "                           (1024; 0: never)\n"
          "  nprobe = N               default IVF probes (0: the request's default, 100)\n"
          "  views = on|off           new instances also index a centre window, a\n"
          "                           low-resolution and a grey view of each item (on)\n"
          "  int8 = on|off            run the CNN's 1x1 convolutions in int8 on CPUs\n"
          "                           with AVX-512 VNNI (on; float elsewhere or off)\n"
          "  snapshot_changes = N     snapshot an index in the background after N changes\n"
          "                           (10000; 0: only at shutdown)\n"
          "  snapshot_seconds = N     ... or once a change is N seconds old (300; 0: never)\n"
          "  projection = PATH        compact descriptors (make projection): instances\n"
          "                           created from now on store 256-d int8 codes (empty: off)\n"
          "  compact_after = N        a float instance of N items or more is made compact\n"
          "                           in a space fitted on its own vectors, at start and\n"
          "                           as it grows; one-way (0: never; default 1000)\n"
          "  compact_batch = N        rows per transaction of that conversion (256)\n"
          "  compact_pause_ms = N     pause between those transactions (0)\n"
          "[search]\n"
          "  query_views = on|off     also search the centre window and the grey view\n"
          "                           of a query whose best score is low (default on)\n"
          "  views_below = X          \"low\" for that: below this score (default 0.9)\n"
          "  rotations = on|off       also search 90/180/270-degree views of a query\n"
          "                           whose best upright score is low (default on)\n"
          "  rotation_below = X       \"low\": below this score (default 0.9)\n"
          "  rotation_penalty = X     subtracted from rotated views' scores (0.1)\n"
          "  compact_views_below, compact_view_penalty, compact_rotation_below,\n"
          "  compact_rotation_penalty  the same for compact instances, whose scores run\n"
          "                           lower (0.78, 0.041 for every view, 0.78, 0.21)\n"
          "[import]\n"
          "  workers = N              import worker threads (default 1)\n"
          "[storage]\n"
          "  backend = sqlite|postgres  where the metadata lives (default sqlite: a\n"
          "                           file in data_dir; postgres: a database several\n"
          "                           nodes can share; index snapshots stay in data_dir,\n"
          "                           and in [cluster] snapshot_bucket when set)\n"
          "  dsn = CONNINFO           postgres: libpq conninfo or URI, e.g. host=127.0.0.1\n"
          "                           port=5432 dbname=imgsearch user=imgsearch\n"
          "[cluster]                  several nodes on one postgres database\n"
          "  node_url = URL           how the other nodes reach this one (listed by\n"
          "                           /admin/v1/cluster); empty: not advertised\n"
          "  node_timeout_ms = N      a node silent this long is dead (default 5000)\n"
          "  snapshot_bucket = NAME   also keep index snapshots in [bucket:NAME] (S3 or\n"
          "                           local), so a node with an empty data_dir loads\n"
          "                           them instead of rebuilding (empty: off, default)\n"
          "  snapshot_prefix = P/     key prefix there (default none): objects are\n"
          "                           P/snapshots/<instance>/<shard>.snap\n"
          "  shards = N               instances created from now on are split into N\n"
          "                           shards by item id, each owned by one node\n"
          "                           (default 1: every node holds whole indexes)\n"
          "  secret = TEXT            authenticates the nodes' shard searches to each\n"
          "                           other (/internal/v1); needed when shards > 1\n"
          "  shard_timeout_ms = N     a shard silent this long fails the search with\n"
          "                           503 (default 2000)\n",
          out);
}

int config_load(int argc, char **argv, struct config *cfg, char *errbuf, size_t errlen)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"listen", required_argument, NULL, 'l'},
                                         {"data-dir", required_argument, NULL, 'd'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *file = NULL, *listen = NULL, *data_dir = NULL;
    int c;
    /* Early returns (--help, bad options) leave it zeroed, so the caller can
     * config_free it whatever the result. */
    memset(cfg, 0, sizeof *cfg);
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "c:l:d:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            file = optarg;
            break;
        case 'l':
            listen = optarg;
            break;
        case 'd':
            data_dir = optarg;
            break;
        case 'h':
            config_usage(stdout);
            return 1;
        default:
            snprintf(errbuf, errlen, "unknown or incomplete option \"%s\" (see --help)",
                     argv[optind - 1]);
            return -1;
        }
    }
    if (optind < argc) {
        snprintf(errbuf, errlen, "unexpected argument \"%s\" (see --help)", argv[optind]);
        return -1;
    }
    config_defaults(cfg);
    if (file && read_file(file, cfg, errbuf, errlen) != 0)
        return -1;
    if (listen && config_parse_listen(listen, &cfg->listen_host, &cfg->listen_port) != 0) {
        snprintf(errbuf, errlen, "--listen: expected HOST:PORT, got \"%s\"", listen);
        return -1;
    }
    if (data_dir && !*data_dir) {
        snprintf(errbuf, errlen, "--data-dir: expected a directory, got an empty value");
        return -1;
    }
    if (data_dir)
        set_str(&cfg->data_dir, data_dir);
    if (validate(cfg, errbuf, errlen) != 0 || finish(cfg) != 0)
        return -1;
    return 0;
}
