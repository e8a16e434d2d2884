/* curlbuf.c: see curlbuf.h. Status and headers are tracked per response, so
 * a redirect's or a "100 Continue"'s headers never decide for the final one. */
#include "storage/curlbuf.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ERR_BODY_MAX (64 * 1024)

void curlbuf_init(struct curlbuf *b, size_t max)
{
    memset(b, 0, sizeof *b);
    b->max = max;
}

static int is_2xx(long s)
{
    return s >= 200 && s < 300;
}

/* Header value after "name:", trimmed, copied into dst. */
static void header_value(const char *v, size_t n, char *dst, size_t dst_len)
{
    while (n > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n >= dst_len)
        n = dst_len - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static size_t on_header(char *ptr, size_t size, size_t nitems, void *arg)
{
    struct curlbuf *b = arg;
    size_t n = size * nitems;
    char val[64];

    if (n >= 5 && strncmp(ptr, "HTTP/", 5) == 0) {
        const char *sp = memchr(ptr, ' ', n);
        b->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        b->len = 0; /* a new response begins */
        b->content_type[0] = '\0';
    } else if (n > 13 && strncasecmp(ptr, "content-type:", 13) == 0) {
        header_value(ptr + 13, n - 13, b->content_type, sizeof b->content_type);
    } else if (n > 15 && strncasecmp(ptr, "content-length:", 15) == 0 && is_2xx(b->status)) {
        char *end;
        unsigned long long cl;
        header_value(ptr + 15, n - 15, val, sizeof val);
        cl = strtoull(val, &end, 10);
        if (end != val && cl > b->max) {
            b->too_big = 1;
            return 0; /* abort before any of the body is read */
        }
    }
    return n;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct curlbuf *b = arg;
    size_t n = size * nmemb;
    size_t limit = is_2xx(b->status) ? b->max : ERR_BODY_MAX;

    if (n > limit - b->len) {
        if (is_2xx(b->status))
            b->too_big = 1;
        return 0;
    }
    if (b->sink && is_2xx(b->status)) {
        if (fwrite(ptr, 1, n, b->sink) != n) {
            b->sink_failed = 1;
            return 0;
        }
        b->len += n;
        return n;
    }
    if (b->len + n > b->cap) {
        size_t ncap = b->cap ? b->cap : 16384;
        uint8_t *nd;
        while (ncap < b->len + n)
            ncap = ncap > limit / 2 ? limit : ncap * 2;
        nd = realloc(b->data, ncap);
        if (!nd) {
            b->nomem = 1;
            return 0;
        }
        b->data = nd;
        b->cap = ncap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    return n;
}

void curlbuf_attach(struct curlbuf *b, CURL *c)
{
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, b);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
}

void curlbuf_take(struct curlbuf *b, struct bytes *out)
{
    out->data = b->data;
    out->len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
}

void curlbuf_release(struct curlbuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
