/* objstore_s3.c: an S3-compatible server as an object store: path-style
 * URLs <endpoint>/<remote bucket>/<key>, signed by libcurl's SigV4 with an
 * explicit x-amz-content-sha256. Keys are percent-encoded per segment, and
 * the ListObjectsV2 query is built already sorted and encoded, so the path
 * and query curl signs are exactly the canonical ones the server rebuilds. */
#include "storage/detail.h"
#include "storage/objstore.h"
#include "storage/curlbuf.h"
#include "storage/objurl.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONNECT_TIMEOUT_MS 5000L
#define TIMEOUT_MS 120000L
#define LIST_PAGE_MAX (16u << 20)
#define LIST_PAGES_MAX 1000000
/* Streamed transfers (snapshots) have no total timeout: they fail when
 * slower than this many bytes a second for 30 s. */
#define STREAM_MIN_SPEED (64L * 1024)

static int sha256_hex(const uint8_t *data, size_t len, char hex[65])
{
    unsigned char md[32];
    unsigned int md_len = 0, i;

    if (EVP_Digest(data ? (const void *)data : "", len, md, &md_len, EVP_sha256(), NULL) != 1 ||
        md_len != 32)
        return -1;
    for (i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return 0;
}

/* <endpoint>/<remote>[/<key>][?query]; malloc'd. */
static char *s3_url(const struct bucket_config *b, const char *key, const char *query)
{
    size_t el = strlen(b->endpoint);
    char *bucket = objurl_encode(b->remote, 0), *k = key ? objurl_encode(key, 1) : NULL, *url;
    size_t n;

    while (el > 0 && b->endpoint[el - 1] == '/')
        el--;
    if (!bucket || (key && !k)) {
        url = NULL;
        goto done;
    }
    n = el + strlen(bucket) + (k ? strlen(k) : 0) + (query ? strlen(query) : 0) + 4;
    url = malloc(n);
    if (url)
        snprintf(url, n, "%.*s/%s%s%s%s%s", (int)el, b->endpoint, bucket, k ? "/" : "", k ? k : "",
                 query ? "?" : "", query ? query : "");
done:
    free(bucket);
    free(k);
    return url;
}

/* Error code from an S3 error body, e.g. "NoSuchKey"; "" if none. */
static void error_code(const struct curlbuf *buf, char *code, size_t code_len)
{
    const char *s = buf->data ? memmem(buf->data, buf->len, "<Code>", 6) : NULL, *e;

    code[0] = '\0';
    if (!s)
        return;
    s += 6;
    e = memmem(s, buf->len - (size_t)(s - (const char *)buf->data), "</Code>", 7);
    if (e && (size_t)(e - s) < code_len) {
        memcpy(code, s, (size_t)(e - s));
        code[e - s] = '\0';
    }
}

/* A request body: `len` bytes in memory (`data`), or streamed from `read`
 * with its SHA-256 (hex) computed by the caller beforehand. */
struct s3_body {
    const uint8_t *data;
    size_t len;
    objstore_read_fn read;
    void *read_arg;
    const char *sha256;
    int failed; /* read reported an error */
};

static size_t on_read(char *buf, size_t size, size_t nitems, void *arg)
{
    struct s3_body *body = arg;
    size_t n = body->read(body->read_arg, (uint8_t *)buf, size * nitems);
    if (n == (size_t)-1) {
        body->failed = 1;
        return CURL_READFUNC_ABORT;
    }
    return n;
}

/* One signed request; the response lands in `buf` (2xx body capped at
 * buf->max). SRC_OK only for a 2xx status. `stream`: a large transfer,
 * bounded by a minimum speed rather than a total time. `range` (or NULL):
 * "first-last" bytes only; it travels unsigned, as S3 allows. */
static enum source_status s3_request(const struct bucket_config *b, const char *method,
                                     const char *url, struct s3_body *body, int stream,
                                     const char *range, struct curlbuf *buf, char *detail,
                                     size_t detail_len)
{
    enum source_status st = SRC_OBS_FAILED;
    char errbuf[CURL_ERROR_SIZE] = "", sigv4[160], hash[65], hdr[100], code[64];
    struct curl_slist *headers = NULL, *h;
    CURLcode rc;
    CURL *c = curl_easy_init();

    if (!c)
        return SRC_NOMEM;
    if (body && body->read)
        snprintf(hash, sizeof hash, "%s", body->sha256);
    else if (sha256_hex(body ? body->data : NULL, body ? body->len : 0, hash) != 0)
        goto fail;
    snprintf(sigv4, sizeof sigv4, "aws:amz:%s:s3", b->region);
    snprintf(hdr, sizeof hdr, "x-amz-content-sha256: %s", hash);
    h = curl_slist_append(headers, hdr);
    if (h)
        headers = h;
    if (h && body) {
        h = curl_slist_append(headers, "Content-Type: application/octet-stream");
        if (h)
            headers = h;
        h = h ? curl_slist_append(headers, "Expect:") : NULL;
        if (h)
            headers = h;
    }
    if (!h) {
        st = SRC_NOMEM;
        goto fail;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, stream ? 0L : TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, stream ? STREAM_MIN_SPEED : 512L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 30L);
    curl_easy_setopt(c, CURLOPT_AWS_SIGV4, sigv4);
    curl_easy_setopt(c, CURLOPT_USERNAME, b->access_key ? b->access_key : "");
    curl_easy_setopt(c, CURLOPT_PASSWORD, b->secret_key ? b->secret_key : "");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "imgsearch/1.0");
    if (body && body->read) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)body->len);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, body);
    } else if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body->len ? (const char *)body->data : "");
    }
    if (range)
        curl_easy_setopt(c, CURLOPT_RANGE, range);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curlbuf_attach(buf, c);

    rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        if (buf->nomem)
            st = SRC_NOMEM;
        else if (buf->too_big)
            st = SRC_OBS_TOO_BIG;
        source_detail(detail, detail_len, "%s %s: %s", method, url,
                      buf->too_big           ? "object too big"
                      : buf->sink_failed     ? "cannot write the local copy"
                      : body && body->failed ? "cannot read the local file"
                      : errbuf[0]            ? errbuf
                                             : curl_easy_strerror(rc));
        goto fail;
    }
    if (buf->status >= 200 && buf->status < 300) {
        st = SRC_OK;
        goto done;
    }
    error_code(buf, code, sizeof code);
    /* A missing bucket is a misconfiguration, not a missing object. */
    if (buf->status == 404 && strcmp(code, "NoSuchBucket") != 0)
        st = SRC_OBS_MISSING;
    source_detail(detail, detail_len, "%s %s: HTTP %ld %s", method, url, buf->status, code);
fail:
done:
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    return st;
}

enum source_status objstore_s3_get(const struct bucket_config *b, const char *key, size_t max_bytes,
                                   struct bytes *out, char *detail, size_t detail_len)
{
    struct curlbuf buf;
    enum source_status st;
    char *url;

    out->data = NULL;
    out->len = 0;
    if (!objurl_key_valid(key))
        return SRC_OBS_BAD_URL;
    url = s3_url(b, key, NULL);
    if (!url)
        return SRC_NOMEM;
    curlbuf_init(&buf, max_bytes);
    st = s3_request(b, "GET", url, NULL, 0, NULL, &buf, detail, detail_len);
    if (st == SRC_OK)
        curlbuf_take(&buf, out);
    curlbuf_release(&buf);
    free(url);
    return st;
}

enum source_status objstore_s3_put(const struct bucket_config *b, const char *key,
                                   const uint8_t *data, size_t len, char *detail, size_t detail_len)
{
    struct curlbuf buf;
    enum source_status st;
    char *url;

    if (!objurl_key_valid(key))
        return SRC_OBS_BAD_URL;
    url = s3_url(b, key, NULL);
    if (!url)
        return SRC_NOMEM;
    curlbuf_init(&buf, 64 * 1024);
    struct s3_body body = {.data = data ? data : (const uint8_t *)"", .len = len};
    st = s3_request(b, "PUT", url, &body, 0, NULL, &buf, detail, detail_len);
    /* A PUT has no "missing object"; a 404 means the bucket is gone. */
    if (st == SRC_OBS_MISSING || st == SRC_OBS_TOO_BIG)
        st = SRC_OBS_FAILED;
    curlbuf_release(&buf);
    free(url);
    return st;
}

enum source_status objstore_s3_get_file(const struct bucket_config *b, const char *key,
                                        uint64_t max_bytes, FILE *out, char *detail,
                                        size_t detail_len)
{
    struct curlbuf buf;
    enum source_status st;
    char *url;

    if (!objurl_key_valid(key))
        return SRC_OBS_BAD_URL;
    url = s3_url(b, key, NULL);
    if (!url)
        return SRC_NOMEM;
    curlbuf_init(&buf, max_bytes > SIZE_MAX ? SIZE_MAX : (size_t)max_bytes);
    buf.sink = out;
    st = s3_request(b, "GET", url, NULL, 1, NULL, &buf, detail, detail_len);
    if (st == SRC_OK && fflush(out) != 0) {
        st = SRC_OBS_FAILED;
        source_detail(detail, detail_len, "%s: cannot write the local copy", key);
    }
    curlbuf_release(&buf);
    free(url);
    return st;
}

enum source_status objstore_s3_get_head(const struct bucket_config *b, const char *key,
                                        uint8_t *head, size_t len, size_t *got, char *detail,
                                        size_t detail_len)
{
    struct curlbuf buf;
    enum source_status st;
    char *url, range[48];

    *got = 0;
    if (!objurl_key_valid(key) || len == 0)
        return SRC_OBS_BAD_URL;
    url = s3_url(b, key, NULL);
    if (!url)
        return SRC_NOMEM;
    snprintf(range, sizeof range, "0-%zu", len - 1);
    /* A server that ignores Range sends it all: capped, that is "too big",
     * which a caller reading a header cannot use either. */
    curlbuf_init(&buf, len);
    st = s3_request(b, "GET", url, NULL, 0, range, &buf, detail, detail_len);
    if (st == SRC_OK) {
        *got = buf.len;
        if (buf.len)
            memcpy(head, buf.data, buf.len);
    }
    curlbuf_release(&buf);
    free(url);
    return st;
}

enum source_status objstore_s3_put_stream(const struct bucket_config *b, const char *key,
                                          uint64_t len, const char sha256[65], objstore_read_fn fn,
                                          void *arg, char *detail, size_t detail_len)
{
    struct curlbuf buf;
    enum source_status st;
    char *url;

    if (!objurl_key_valid(key))
        return SRC_OBS_BAD_URL;
    url = s3_url(b, key, NULL);
    if (!url)
        return SRC_NOMEM;
    curlbuf_init(&buf, 64 * 1024);
    struct s3_body body = {.len = (size_t)len, .read = fn, .read_arg = arg, .sha256 = sha256};
    st = s3_request(b, "PUT", url, &body, 1, NULL, &buf, detail, detail_len);
    if (st == SRC_OBS_MISSING || st == SRC_OBS_TOO_BIG)
        st = SRC_OBS_FAILED;
    curlbuf_release(&buf);
    free(url);
    return st;
}

enum source_status objstore_s3_delete(const struct bucket_config *b, const char *key, char *detail,
                                      size_t detail_len)
{
    struct curlbuf buf;
    enum source_status st;
    char *url;

    if (!objurl_key_valid(key))
        return SRC_OBS_BAD_URL;
    url = s3_url(b, key, NULL);
    if (!url)
        return SRC_NOMEM;
    curlbuf_init(&buf, 64 * 1024);
    st = s3_request(b, "DELETE", url, NULL, 0, NULL, &buf, detail, detail_len);
    curlbuf_release(&buf);
    free(url);
    return st;
}

/* Appends the UTF-8 form of code point `cp`; 0 on success. */
static int put_utf8(char *out, size_t *o, unsigned long cp)
{
    if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return -1;
    if (cp < 0x80) {
        out[(*o)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*o)++] = (char)(0xc0 | (cp >> 6));
        out[(*o)++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out[(*o)++] = (char)(0xe0 | (cp >> 12));
        out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*o)++] = (char)(0x80 | (cp & 0x3f));
    } else {
        out[(*o)++] = (char)(0xf0 | (cp >> 18));
        out[(*o)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
        out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*o)++] = (char)(0x80 | (cp & 0x3f));
    }
    return 0;
}

/* XML text with its five named entities and numeric references decoded
 * into a malloc'd string; NULL when malformed (or out of memory). */
static char *xml_text(const char *s, size_t n)
{
    static const struct {
        const char *name;
        char c;
    } named[] = {{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}};
    char *out = malloc(n + 1); /* decoding never grows the text */
    size_t i = 0, o = 0, k;

    if (!out)
        return NULL;
    while (i < n) {
        if (s[i] != '&') {
            if (s[i] == '<' || s[i] == '\0')
                goto fail;
            out[o++] = s[i++];
            continue;
        }
        i++;
        for (k = 0; k < sizeof named / sizeof named[0]; k++) {
            size_t l = strlen(named[k].name);
            if (n - i >= l && memcmp(s + i, named[k].name, l) == 0) {
                out[o++] = named[k].c;
                i += l;
                break;
            }
        }
        if (k < sizeof named / sizeof named[0])
            continue;
        if (i < n && s[i] == '#') {
            unsigned long cp = 0;
            int hex = i + 1 < n && s[i + 1] == 'x', digits = 0;
            for (i += hex ? 2 : 1; i < n && s[i] != ';' && digits < 8; i++, digits++) {
                char ch = s[i];
                int v = ch >= '0' && ch <= '9'          ? ch - '0'
                        : hex && ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                        : hex && ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                                        : -1;
                if (v < 0)
                    goto fail;
                cp = cp * (hex ? 16 : 10) + (unsigned long)v;
            }
            if (digits == 0 || i >= n || s[i] != ';' || put_utf8(out, &o, cp) != 0)
                goto fail;
            i++;
            continue;
        }
        goto fail;
    }
    out[o] = '\0';
    return out;
fail:
    free(out);
    return NULL;
}

/* The text of the first <tag>...</tag> in [p, end) into val and len; 0 if none. */
static int xml_find(const char *p, const char *end, const char *tag, const char **val, size_t *len)
{
    char open[64], close[64];
    const char *s, *e;

    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    s = memmem(p, (size_t)(end - p), open, strlen(open));
    if (!s)
        return 0;
    s += strlen(open);
    e = memmem(s, (size_t)(end - s), close, strlen(close));
    if (!e)
        return 0;
    *val = s;
    *len = (size_t)(e - s);
    return 1;
}

/* Calls fn for each <Contents> of one ListObjectsV2 page; sets *stop when
 * fn asked to stop, *next to the continuation token when truncated. */
static enum source_status parse_page(const char *xml, size_t n, objstore_list_fn fn, void *arg,
                                     int *stop, char **next)
{
    const char *p = xml, *end = xml + n, *v;
    size_t vl;

    *next = NULL;
    for (;;) {
        const char *c = memmem(p, (size_t)(end - p), "<Contents>", 10), *ce;
        char *key, *size_s, *endp;
        unsigned long long size;
        if (!c)
            break;
        ce = memmem(c, (size_t)(end - c), "</Contents>", 11);
        if (!ce)
            return SRC_OBS_FAILED;
        if (!xml_find(c, ce, "Key", &v, &vl))
            return SRC_OBS_FAILED;
        key = xml_text(v, vl);
        if (!key)
            return SRC_OBS_FAILED;
        size = 0;
        if (xml_find(c, ce, "Size", &v, &vl) && (size_s = xml_text(v, vl)) != NULL) {
            size = strtoull(size_s, &endp, 10);
            free(size_s);
        }
        /* Keys our URLs could not name (e.g. with "..") are skipped. */
        if (objurl_key_valid(key) && fn(arg, key, (size_t)size) != 0) {
            free(key);
            *stop = 1;
            return SRC_OK;
        }
        free(key);
        p = ce + 11;
    }
    if (xml_find(xml, end, "IsTruncated", &v, &vl) && vl == 4 && memcmp(v, "true", 4) == 0) {
        if (!xml_find(xml, end, "NextContinuationToken", &v, &vl) || vl == 0)
            return SRC_OBS_FAILED;
        *next = xml_text(v, vl);
        if (!*next)
            return SRC_OBS_FAILED;
    }
    return SRC_OK;
}

/* The sorted, fully encoded query for one page. start-after only matters
 * on the first page: the continuation token carries it on. */
static char *list_query(const char *prefix, const char *token, const char *after)
{
    char *p = objurl_encode(prefix, 0), *t = token ? objurl_encode(token, 0) : NULL, *q = NULL;
    char *a = after && !token ? objurl_encode(after, 0) : NULL;
    size_t n;

    if (!p || (token && !t) || (after && !token && !a))
        goto done;
    n = strlen(p) + (t ? strlen(t) : 0) + (a ? strlen(a) : 0) + 80;
    q = malloc(n);
    if (q)
        snprintf(q, n, "%s%s%slist-type=2&prefix=%s%s%s", t ? "continuation-token=" : "",
                 t ? t : "", t ? "&" : "", p, a ? "&start-after=" : "", a ? a : "");
done:
    free(p);
    free(t);
    free(a);
    return q;
}

enum source_status objstore_s3_list(const struct bucket_config *b, const char *prefix,
                                    const char *start_after, objstore_list_fn fn, void *arg,
                                    char *detail, size_t detail_len)
{
    enum source_status st = SRC_OK;
    char *token = NULL;
    int stop = 0, pages = 0;

    if (!objurl_prefix_valid(prefix))
        return SRC_OBS_BAD_URL;
    do {
        struct curlbuf buf;
        char *query = list_query(prefix, token, start_after),
             *url = query ? s3_url(b, NULL, query) : NULL;
        char *next = NULL;

        free(query);
        if (!url) {
            st = SRC_NOMEM;
            break;
        }
        curlbuf_init(&buf, LIST_PAGE_MAX);
        st = s3_request(b, "GET", url, NULL, 0, NULL, &buf, detail, detail_len);
        free(url);
        if (st == SRC_OBS_MISSING || st == SRC_OBS_TOO_BIG)
            st = SRC_OBS_FAILED; /* no bucket / absurd page: the store is unusable */
        if (st == SRC_OK && buf.len == 0)
            st = SRC_OBS_FAILED;
        if (st == SRC_OK) {
            st = parse_page((const char *)buf.data, buf.len, fn, arg, &stop, &next);
            if (st != SRC_OK)
                source_detail(detail, detail_len, "malformed ListObjectsV2 response");
        }
        curlbuf_release(&buf);
        /* A server repeating its token would loop forever. */
        if (st == SRC_OK && next && token && strcmp(next, token) == 0) {
            st = SRC_OBS_FAILED;
            source_detail(detail, detail_len, "continuation token repeated");
        }
        free(token);
        token = next;
    } while (st == SRC_OK && !stop && token && ++pages < LIST_PAGES_MAX);
    free(token);
    return st;
}
