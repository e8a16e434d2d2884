/* fetch.c: image URL download with libcurl. One easy handle per call (no
 * sharing, so thread-safe; curl_global_init ran in source_global_init).
 * The address policy is checked in CURLOPT_OPENSOCKETFUNCTION, i.e. on the
 * resolved address of every connection, redirects included, so a name that
 * re-resolves to a private address (DNS rebinding) is still refused. */
#include "storage/detail.h"
#include "storage/fetch.h"
#include "storage/curlbuf.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* A transfer slower than this many bytes/s for LOW_SPEED_TIME s is dropped. */
#define LOW_SPEED_LIMIT 512L
#define LOW_SPEED_TIME 10L

static const char *const default_deny[] = {
    "0.0.0.0/8",      "10.0.0.0/8",    "100.64.0.0/10",  "127.0.0.0/8",
    "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16", "::/128",
    "::1/128",        "fe80::/10",     "fc00::/7",
};

int fetch_default_deny(struct cidr **out, size_t *n)
{
    size_t count = sizeof default_deny / sizeof default_deny[0], i;
    struct cidr *c = calloc(count, sizeof *c);

    *out = NULL;
    *n = 0;
    if (!c)
        return -1;
    for (i = 0; i < count; i++)
        cidr_parse(default_deny[i], &c[i]); /* constant, known good */
    *out = c;
    *n = count;
    return 0;
}

static int any_match(const struct cidr *list, size_t n, int family, const uint8_t *addr)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (cidr_match(&list[i], family, addr))
            return 1;
    return 0;
}

int fetch_addr_allowed(const struct fetch_config *fc, const struct sockaddr *sa)
{
    const uint8_t *addr;

    if (!sa)
        return 0;
    if (sa->sa_family == AF_INET)
        addr = (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
    else if (sa->sa_family == AF_INET6)
        addr = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
    else
        return 0;
    if (any_match(fc->allow, fc->n_allow, sa->sa_family, addr))
        return 1;
    return !any_match(fc->deny, fc->n_deny, sa->sa_family, addr);
}

int fetch_sniff_image(const uint8_t *d, size_t n)
{
    static const uint8_t png[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};

    if (n >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff)
        return 1;
    if (n >= 8 && memcmp(d, png, 8) == 0)
        return 1;
    if (n >= 14 && d[0] == 'B' && d[1] == 'M')
        return 1;
    if (n >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0)
        return 1;
    if (n >= 6 && (memcmp(d, "GIF87a", 6) == 0 || memcmp(d, "GIF89a", 6) == 0))
        return 1;
    return 0;
}

struct sock_ctx {
    const struct fetch_config *fc;
    int denied;
    char denied_addr[INET6_ADDRSTRLEN];
};

static curl_socket_t open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct sock_ctx *ctx = clientp;

    if (purpose != CURLSOCKTYPE_IPCXN || !fetch_addr_allowed(ctx->fc, &a->addr)) {
        const void *ip = a->family == AF_INET6
                             ? (const void *)&((struct sockaddr_in6 *)(void *)&a->addr)->sin6_addr
                             : (const void *)&((struct sockaddr_in *)(void *)&a->addr)->sin_addr;
        ctx->denied = 1;
        if (!inet_ntop(a->family, ip, ctx->denied_addr, sizeof ctx->denied_addr))
            strcpy(ctx->denied_addr, "?");
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static int is_http_url(const char *url)
{
    return strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0;
}

static int is_image_type(const char *ct)
{
    return strncasecmp(ct, "image/", 6) == 0;
}

static enum source_status map_curl_error(CURLcode rc, const struct curlbuf *buf,
                                         const struct sock_ctx *sc, const char *errbuf,
                                         size_t max_bytes, char *detail, size_t detail_len)
{
    if (buf->nomem)
        return SRC_NOMEM;
    if (buf->too_big) {
        source_detail(detail, detail_len, "larger than %zu bytes", max_bytes);
        return SRC_URL_FAILED;
    }
    if (rc == CURLE_UNSUPPORTED_PROTOCOL) {
        source_detail(detail, detail_len, "redirect to a scheme other than http/https");
        return SRC_URL_NOT_ALLOWED;
    }
    if (sc->denied && (rc == CURLE_COULDNT_CONNECT || rc == CURLE_OPERATION_TIMEDOUT)) {
        source_detail(detail, detail_len, "address %s is not allowed", sc->denied_addr);
        return SRC_URL_NOT_ALLOWED;
    }
    source_detail(detail, detail_len, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
    return SRC_URL_FAILED;
}

enum source_status fetch_url(const struct fetch_config *fc, const char *url, size_t max_bytes,
                             struct bytes *out, char *detail, size_t detail_len)
{
    enum source_status st = SRC_URL_FAILED;
    char errbuf[CURL_ERROR_SIZE] = "";
    struct sock_ctx sc = {.fc = fc};
    struct curlbuf buf;
    long redirects = fc->max_redirects > 0 ? fc->max_redirects : 0;
    long low_time = LOW_SPEED_TIME;
    CURLcode rc;
    CURL *c;

    out->data = NULL;
    out->len = 0;
    curlbuf_init(&buf, max_bytes);
    if (!url || !is_http_url(url)) {
        source_detail(detail, detail_len, "only http and https URLs are fetched");
        return SRC_URL_NOT_ALLOWED;
    }
    c = curl_easy_init();
    if (!c)
        return SRC_NOMEM;
    if (fc->timeout_ms > 0 && fc->timeout_ms / 1000 < low_time)
        low_time = fc->timeout_ms / 1000 > 0 ? fc->timeout_ms / 1000 : 1;

    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, redirects > 0 ? 1L : 0L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, redirects);
    /* An environment proxy would make the policy check the proxy's address
     * instead of the target's. */
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     fc->connect_timeout_ms > 0 ? fc->connect_timeout_ms : 0L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, fc->timeout_ms > 0 ? fc->timeout_ms : 0L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, LOW_SPEED_LIMIT);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, low_time);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, &sc);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "imgsearch/1.0");
    curlbuf_attach(&buf, c);

    rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        st = map_curl_error(rc, &buf, &sc, errbuf, max_bytes, detail, detail_len);
        goto fail;
    }
    if (buf.status < 200 || buf.status >= 300) {
        source_detail(detail, detail_len, "HTTP status %ld", buf.status);
        goto fail;
    }
    if (buf.len == 0) {
        source_detail(detail, detail_len, "empty body");
        goto fail;
    }
    /* A wrong Content-Type is forgiven when the bytes are an image. */
    if (!is_image_type(buf.content_type) && !fetch_sniff_image(buf.data, buf.len)) {
        source_detail(detail, detail_len, "not an image (Content-Type \"%s\")", buf.content_type);
        goto fail;
    }
    curlbuf_take(&buf, out);
    curl_easy_cleanup(c);
    return SRC_OK;
fail:
    curlbuf_release(&buf);
    curl_easy_cleanup(c);
    return st;
}
