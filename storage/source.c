/* source.c: resolves an image_url / v1 path to bytes. Object-store URLs
 * (objurl.c) go to the configured bucket's back end (objstore_local.c or
 * objstore_s3.c); other http(s) URLs to fetch.c; anything else is refused.
 * An OBS-form URL naming an unconfigured bucket is SRC_OBS_BAD_URL: it is
 * never fetched from the real cloud. The source keeps its own copy of the
 * configuration it needs, so it does not depend on the config's lifetime. */
#include "storage/detail.h"
#include "storage/source.h"
#include "storage/fetch.h"
#include "storage/objstore.h"
#include "storage/objurl.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct source {
    struct bucket_config *buckets;
    size_t n_buckets;
    struct fetch_config fetch;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int global_rc;

static void global_init_once(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

int source_global_init(void)
{
    pthread_once(&global_once, global_init_once);
    return global_rc;
}

static char *dup_or(const char *s, const char *dflt)
{
    return strdup(s && *s ? s : dflt ? dflt : "");
}

static int bucket_copy(const struct bucket_config *in, struct bucket_config *b, char *errbuf,
                       size_t errlen)
{
    memset(b, 0, sizeof *b);
    if (!in->name || !*in->name) {
        snprintf(errbuf, errlen, "bucket without a name");
        return -1;
    }
    if (in->kind == BUCKET_LOCAL && (!in->root || !*in->root)) {
        snprintf(errbuf, errlen, "bucket %s: local bucket needs a root directory", in->name);
        return -1;
    }
    if (in->kind == BUCKET_S3 && (!in->endpoint || !*in->endpoint)) {
        snprintf(errbuf, errlen, "bucket %s: s3 bucket needs an endpoint", in->name);
        return -1;
    }
    if (in->kind != BUCKET_LOCAL && in->kind != BUCKET_S3) {
        snprintf(errbuf, errlen, "bucket %s: unknown kind", in->name);
        return -1;
    }
    b->kind = in->kind;
    b->name = strdup(in->name);
    b->root = dup_or(in->root, "");
    b->endpoint = dup_or(in->endpoint, "");
    b->remote = dup_or(in->remote, in->name);
    b->region = dup_or(in->region, "us-east-1");
    b->access_key = dup_or(in->access_key, "");
    b->secret_key = dup_or(in->secret_key, "");
    if (!b->name || !b->root || !b->endpoint || !b->remote || !b->region || !b->access_key ||
        !b->secret_key) {
        bucket_config_free(b);
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static struct cidr *cidrs_copy(const struct cidr *in, size_t n)
{
    struct cidr *c = malloc((n ? n : 1) * sizeof *c);

    if (c && n)
        memcpy(c, in, n * sizeof *c);
    return c;
}

int source_create(const struct config *cfg, struct source **out, char *errbuf, size_t errlen)
{
    struct source *src = calloc(1, sizeof *src);
    size_t i, j;

    *out = NULL;
    if (!src)
        goto nomem;
    src->buckets = calloc(cfg->n_buckets ? cfg->n_buckets : 1, sizeof *src->buckets);
    if (!src->buckets)
        goto nomem;
    for (i = 0; i < cfg->n_buckets; i++) {
        for (j = 0; j < i; j++) {
            if (cfg->buckets[j].name && cfg->buckets[i].name &&
                strcasecmp(cfg->buckets[j].name, cfg->buckets[i].name) == 0) {
                snprintf(errbuf, errlen, "bucket %s configured twice", cfg->buckets[i].name);
                goto fail;
            }
        }
        if (bucket_copy(&cfg->buckets[i], &src->buckets[i], errbuf, errlen) != 0)
            goto fail;
        src->n_buckets++;
    }
    src->fetch = cfg->fetch;
    src->fetch.allow = cidrs_copy(cfg->fetch.allow, cfg->fetch.n_allow);
    if (!cfg->fetch.deny_configured && cfg->fetch.n_deny == 0) {
        /* No deny= in the config: the built-in list, so the policy fails
         * closed whoever forgot to fill it in. */
        if (fetch_default_deny(&src->fetch.deny, &src->fetch.n_deny) != 0)
            goto nomem;
    } else {
        src->fetch.deny = cidrs_copy(cfg->fetch.deny, cfg->fetch.n_deny);
    }
    if (!src->fetch.allow || !src->fetch.deny)
        goto nomem;
    *out = src;
    return 0;
nomem:
    snprintf(errbuf, errlen, "out of memory");
fail:
    source_free(src);
    return -1;
}

void source_free(struct source *src)
{
    size_t i;

    if (!src)
        return;
    for (i = 0; i < src->n_buckets; i++)
        bucket_config_free(&src->buckets[i]);
    free(src->buckets);
    free(src->fetch.allow);
    free(src->fetch.deny);
    free(src);
}

static const struct bucket_config *find_bucket(const struct source *src, const char *name)
{
    size_t i;

    for (i = 0; i < src->n_buckets; i++)
        if (strcasecmp(src->buckets[i].name, name) == 0)
            return &src->buckets[i];
    return NULL;
}

int source_is_object_url(const struct source *src, const char *url)
{
    struct objurl u;
    enum objurl_status st = objurl_parse(url, &u);

    (void)src;
    objurl_free(&u);
    return st != OBJURL_NOT_OBS;
}

/* Parses an object URL and finds its bucket; SRC_OK or the failure. */
static enum source_status resolve(const struct source *src, const char *url, struct objurl *u,
                                  const struct bucket_config **b, char *detail, size_t detail_len)
{
    switch (objurl_parse(url, u)) {
    case OBJURL_OK:
        break;
    case OBJURL_NOMEM:
        return SRC_NOMEM;
    case OBJURL_NOT_OBS:
        source_detail(detail, detail_len, "not an object-store URL");
        return SRC_OBS_BAD_URL;
    case OBJURL_BAD:
    default:
        source_detail(detail, detail_len, "malformed object-store URL");
        return SRC_OBS_BAD_URL;
    }
    *b = find_bucket(src, u->bucket);
    if (!*b) {
        source_detail(detail, detail_len, "bucket %s is not configured", u->bucket);
        objurl_free(u);
        return SRC_OBS_BAD_URL;
    }
    return SRC_OK;
}

static int is_http_scheme(const char *url)
{
    return strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0;
}

enum source_status source_get(const struct source *src, const char *url, size_t max_bytes,
                              struct bytes *out, char *detail, size_t detail_len)
{
    const struct bucket_config *b = NULL;
    enum source_status st;
    struct objurl u;

    out->data = NULL;
    out->len = 0;
    if (!url || !*url) {
        source_detail(detail, detail_len, "empty URL");
        return SRC_URL_NOT_ALLOWED;
    }
    if (!source_is_object_url(src, url)) {
        if (!is_http_scheme(url)) {
            source_detail(detail, detail_len, "only http, https and obs URLs are supported");
            return SRC_URL_NOT_ALLOWED;
        }
        return fetch_url(&src->fetch, url, max_bytes, out, detail, detail_len);
    }
    st = resolve(src, url, &u, &b, detail, detail_len);
    if (st != SRC_OK)
        return st;
    if (!objurl_key_valid(u.key)) {
        source_detail(detail, detail_len, "invalid object key");
        st = SRC_OBS_BAD_URL;
    } else if (b->kind == BUCKET_S3) {
        st = objstore_s3_get(b, u.key, max_bytes, out, detail, detail_len);
    } else {
        st = objstore_local_get(b->root, u.key, max_bytes, out, detail, detail_len);
    }
    objurl_free(&u);
    return st;
}

enum source_status source_put(const struct source *src, const char *url, const uint8_t *data,
                              size_t len)
{
    const struct bucket_config *b = NULL;
    enum source_status st;
    struct objurl u;

    st = resolve(src, url, &u, &b, NULL, 0);
    if (st != SRC_OK)
        return st;
    if (!objurl_key_valid(u.key))
        st = SRC_OBS_BAD_URL;
    else if (b->kind == BUCKET_S3)
        st = objstore_s3_put(b, u.key, data, len, NULL, 0);
    else
        st = objstore_local_put(b->root, u.key, data, len, NULL, 0);
    objurl_free(&u);
    return st;
}

struct list_ctx {
    const char *base;
    const char *after; /* NULL or the last key already seen */
    source_list_fn fn;
    void *arg;
    int nomem;
};

/* Back-end keys become object URLs in the same form as the prefix URL. */
static int list_one(void *arg, const char *key, size_t size)
{
    struct list_ctx *ctx = arg;
    char *url;
    int rc;

    /* Both back ends list in byte order and skip what comes before
     * start_after themselves; a server ignoring it must not repeat keys. */
    if (ctx->after && strcmp(key, ctx->after) <= 0)
        return 0;
    url = objurl_join(ctx->base, key);
    if (!url) {
        ctx->nomem = 1;
        return 1;
    }
    rc = ctx->fn(ctx->arg, url, key, size);
    free(url);
    return rc;
}

enum source_status source_list(const struct source *src, const char *prefix_url, source_list_fn fn,
                               void *arg)
{
    return source_list_after(src, prefix_url, NULL, fn, arg, NULL, 0);
}

enum source_status source_list_after(const struct source *src, const char *prefix_url,
                                     const char *start_after, source_list_fn fn, void *arg,
                                     char *detail, size_t detail_len)
{
    const struct bucket_config *b = NULL;
    struct list_ctx ctx = {.after = start_after, .fn = fn, .arg = arg};
    enum source_status st;
    struct objurl u;

    st = resolve(src, prefix_url, &u, &b, detail, detail_len);
    if (st != SRC_OK)
        return st;
    ctx.base = u.base;
    if (!objurl_prefix_valid(u.key))
        st = SRC_OBS_BAD_URL;
    else if (b->kind == BUCKET_S3)
        st = objstore_s3_list(b, u.key, start_after, list_one, &ctx, detail, detail_len);
    else
        st = objstore_local_list(b->root, u.key, start_after, list_one, &ctx, detail, detail_len);
    if (st == SRC_OK && ctx.nomem)
        st = SRC_NOMEM;
    objurl_free(&u);
    return st;
}

void bytes_free(struct bytes *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = 0;
}
