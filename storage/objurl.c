/* objurl.c: recognises object-store URLs and checks keys. Keys are always
 * percent-decoded (in both the obs:// and the https host form) so that
 * "%2e%2e" cannot smuggle a ".." segment past the key check, and object URLs
 * we build (objurl_join) parse back to the same key. */
#include "storage/objurl.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KEY_MAX 1024

/* ASCII only, whatever the locale. */
static int is_alnum(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes s[0..n) into a new string; NULL with *bad set on a bad escape or
 * a NUL byte. */
static char *pct_decode(const char *s, size_t n, int *bad)
{
    char *out = malloc(n + 1);
    size_t i, o = 0;

    *bad = 0;
    if (!out)
        return NULL;
    for (i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                goto fail;
            c = hi * 16 + lo;
            i += 2;
        }
        if (c == 0)
            goto fail;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return out;
fail:
    free(out);
    *bad = 1;
    return NULL;
}

static char *concat3(const char *a, const char *b, size_t blen, const char *c)
{
    size_t la = strlen(a), lc = strlen(c);
    char *out = malloc(la + blen + lc + 1);

    if (!out)
        return NULL;
    memcpy(out, a, la);
    memcpy(out + la, b, blen);
    memcpy(out + la + blen, c, lc + 1);
    return out;
}

static enum objurl_status fill(struct objurl *out, char *bucket, const char *raw_key,
                               size_t key_len, char *base)
{
    int bad = 0;

    out->bucket = bucket;
    out->base = base;
    if (!bucket || !base)
        goto nomem;
    out->key = pct_decode(raw_key, key_len, &bad);
    if (!out->key) {
        if (!bad)
            goto nomem;
        objurl_free(out);
        return OBJURL_BAD;
    }
    return OBJURL_OK;
nomem:
    objurl_free(out);
    return OBJURL_NOMEM;
}

static enum objurl_status parse_obs_scheme(const char *url, struct objurl *out)
{
    const char *b = url + strlen("obs://");
    size_t blen = strcspn(b, "/");
    const char *rest = b + blen;
    size_t i;

    if (blen == 0)
        return OBJURL_BAD;
    for (i = 0; i < blen; i++)
        if ((unsigned char)b[i] < 0x21 || b[i] == 0x7f || strchr("?#@:%\\", b[i]))
            return OBJURL_BAD;
    if (*rest == '/')
        rest++;
    return fill(out, strndup(b, blen), rest, strlen(rest), concat3("obs://", b, blen, "/"));
}

static int ends_with_ci(const char *s, size_t n, const char *suffix, size_t *cut)
{
    size_t sl = strlen(suffix);

    if (n < sl || strncasecmp(s + n - sl, suffix, sl) != 0)
        return 0;
    *cut = n - sl;
    return 1;
}

/* "bucket.obs.region" (already stripped of .myhuaweicloud.com): 1 and the
 * bucket length when it has that shape. */
static int split_obs_host(const char *h, size_t n, size_t *bucket_len)
{
    size_t dot = n, i;

    while (dot > 0 && h[dot - 1] != '.')
        dot--;
    if (dot == 0 || dot == n) /* no region label */
        return 0;
    for (i = dot; i < n; i++)
        if (!is_alnum((unsigned char)h[i]) && h[i] != '-')
            return 0;
    if (!ends_with_ci(h, dot - 1, ".obs", bucket_len) || *bucket_len == 0)
        return 0;
    return 1;
}

static enum objurl_status parse_host_form(const char *url, size_t scheme_len, struct objurl *out)
{
    const char *auth = url + scheme_len;
    size_t alen = strcspn(auth, "/?#");
    const char *at = memrchr(auth, '@', alen);
    const char *host = at ? at + 1 : auth;
    size_t hlen = alen - (size_t)(host - auth);
    const char *colon = memchr(host, ':', hlen);
    size_t name_len = colon ? (size_t)(colon - host) : hlen, cut = 0, blen = 0, i;
    const char *path = auth + alen;
    char *bucket, *base, *p;

    if (name_len > 0 && host[name_len - 1] == '.')
        name_len--; /* a trailing root dot names the same host */
    if (!ends_with_ci(host, name_len, ".myhuaweicloud.com", &cut) &&
        !ends_with_ci(host, name_len, ".myhuaweicloud.cn", &cut))
        return OBJURL_NOT_OBS;
    if (!split_obs_host(host, cut, &blen))
        return OBJURL_NOT_OBS;
    /* The OBS form, but credentials or a port have no meaning for it. */
    if (at || colon)
        return OBJURL_BAD;
    for (i = 0; i < blen; i++)
        if (!is_alnum((unsigned char)host[i]) && host[i] != '-' && host[i] != '.')
            return OBJURL_BAD;

    bucket = strndup(host, blen);
    base = concat3("", url, scheme_len + hlen, "/");
    if (bucket)
        for (p = bucket; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    if (base)
        for (p = base; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    if (*path == '/')
        path++;
    else
        path = ""; /* "?query" or "#frag" right after the host */
    return fill(out, bucket, path, strcspn(path, "?#"), base);
}

enum objurl_status objurl_parse(const char *url, struct objurl *out)
{
    memset(out, 0, sizeof *out);
    if (!url)
        return OBJURL_NOT_OBS;
    if (strncasecmp(url, "obs://", 6) == 0)
        return parse_obs_scheme(url, out);
    if (strncasecmp(url, "https://", 8) == 0)
        return parse_host_form(url, 8, out);
    if (strncasecmp(url, "http://", 7) == 0)
        return parse_host_form(url, 7, out);
    return OBJURL_NOT_OBS;
}

void objurl_free(struct objurl *u)
{
    if (!u)
        return;
    free(u->bucket);
    free(u->key);
    free(u->base);
    memset(u, 0, sizeof *u);
}

static int segment_ok(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
        return 0;
    return 1;
}

static int chars_ok(const char *s, size_t n)
{
    size_t i;

    if (n > KEY_MAX)
        return 0;
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

int objurl_key_valid(const char *key)
{
    const char *p = key;

    if (!key || !*key || !chars_ok(key, strlen(key)))
        return 0;
    for (;;) {
        size_t n = strcspn(p, "/");
        if (!segment_ok(p, n))
            return 0;
        if (!p[n])
            return 1;
        p += n + 1;
    }
}

int objurl_prefix_valid(const char *prefix)
{
    const char *p = prefix;

    if (!prefix || !chars_ok(prefix, strlen(prefix)))
        return 0;
    for (;;) {
        size_t n = strcspn(p, "/");
        if (!p[n])
            return 1; /* the partial last segment may be anything */
        if (!segment_ok(p, n))
            return 0;
        p += n + 1;
    }
}

char *objurl_encode(const char *s, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s), o = 0, i;
    char *out = malloc(3 * n + 1);

    if (!out)
        return NULL;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~' ||
            (c == '/' && keep_slash)) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return out;
}

char *objurl_join(const char *base, const char *key)
{
    char *enc = objurl_encode(key, 1), *out;

    if (!enc)
        return NULL;
    out = concat3(base, enc, strlen(enc), "");
    free(enc);
    return out;
}
