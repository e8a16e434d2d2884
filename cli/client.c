/* client.c: libcurl requests with SDK-HMAC-SHA256 signing: the signed
 * headers are content-type, host, x-project-id and x-sdk-date, as the SDKs
 * send them. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "cli/client.h"
#include "server/signer.h"

struct buf {
    char *data;
    size_t len;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    struct buf *b = arg;
    size_t add = size * n;
    char *g = realloc(b->data, b->len + add + 1);
    if (!g)
        return 0;
    memcpy(g + b->len, p, add);
    b->data = g;
    b->len += add;
    b->data[b->len] = 0;
    return add;
}

struct hdrs {
    const char *names[4], *values[4];
};

static const char *hdr_get(void *ctx, const char *name)
{
    struct hdrs *h = ctx;
    for (int i = 0; i < 4; i++)
        if (h->names[i] && !strcasecmp(h->names[i], name))
            return h->values[i];
    return NULL;
}

/* "/a%2Fb/c" -> "/a/b/c": the signer wants the decoded path. */
static char *decode_path(const char *p)
{
    char *out = malloc(strlen(p) + 1), *o = out;
    for (; out && *p; p++) {
        unsigned v;
        if (*p == '%' && sscanf(p + 1, "%2x", &v) == 1) {
            *o++ = (char)v;
            p += 2;
        } else {
            *o++ = *p;
        }
    }
    if (out)
        *o = 0;
    return out;
}

char *client_escape(const char *s)
{
    return signer_escape(s);
}

int client_call(const struct client *cl, const char *method, const char *path, json_t *body,
                long *status, json_t **reply)
{
    int rc = -1;
    char *payload = body ? json_dumps(body, JSON_COMPACT) : strdup("");
    char url[8192], host[512], date[32], line[1024];
    struct curl_slist *h = NULL;
    struct buf got = {0};
    char *dpath = NULL, *creq = NULL;
    *reply = NULL;
    CURL *c = curl_easy_init();
    if (!c || !payload)
        goto fail;
    snprintf(url, sizeof url, "%s%s", cl->base, path);
    const char *hp = strstr(cl->base, "://");
    snprintf(host, sizeof host, "%s", hp ? hp + 3 : cl->base);
    h = curl_slist_append(h, "Content-Type: application/json");
    snprintf(line, sizeof line, "Host: %s", host);
    h = curl_slist_append(h, line);
    h = curl_slist_append(h, "Expect:");
    if (cl->token) {
        snprintf(line, sizeof line, "X-Auth-Token: %s", cl->token);
        h = curl_slist_append(h, line);
    } else if (cl->ak && cl->sk) {
        time_t t = time(NULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(date, sizeof date, "%Y%m%dT%H%M%SZ", &tm);
        struct hdrs hv = {{"content-type", "host", "x-project-id", "x-sdk-date"},
                          {"application/json", host, cl->project, date}};
        char hash[65], sig[65];
        sha256_hex(payload, strlen(payload), hash);
        const char *signed_list = "content-type;host;x-project-id;x-sdk-date";
        if (!(dpath = decode_path(path)) ||
            !(creq = signer_canonical_request(method, dpath, NULL, 0, signed_list, hdr_get, &hv,
                                              hash)))
            goto fail;
        signer_signature(cl->sk, date, creq, sig);
        snprintf(line, sizeof line, "X-Sdk-Date: %s", date);
        h = curl_slist_append(h, line);
        snprintf(line, sizeof line, "X-Project-Id: %s", cl->project);
        h = curl_slist_append(h, line);
        snprintf(line, sizeof line,
                 "Authorization: " SIGNER_ALGORITHM " Access=%s, SignedHeaders=%s, Signature=%s",
                 cl->ak, signed_list, sig);
        h = curl_slist_append(h, line);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (body || !strcmp(method, "POST")) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &got);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 300L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        fprintf(stderr, "imgsearch: %s: %s\n", url, curl_easy_strerror(cc));
        goto fail;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    if (got.data)
        *reply = json_loads(got.data, 0, NULL);
    rc = 0;
fail:
    free(got.data);
    free(creq);
    free(dpath);
    free(payload);
    curl_slist_free_all(h);
    if (c)
        curl_easy_cleanup(c);
    return rc;
}

int client_api(const struct client *cl, const char *method, const char *path, json_t *body,
               json_t **reply)
{
    long status = 0;
    json_t *r = NULL;
    if (reply)
        *reply = NULL;
    if (client_call(cl, method, path, body, &status, &r) != 0)
        return 1;
    if (status < 200 || status > 299) {
        const char *code = json_string_value(json_object_get(r, "error_code"));
        const char *msg = json_string_value(json_object_get(r, "error_msg"));
        if (code)
            fprintf(stderr, "%s: %s\n", code, msg ? msg : "");
        else
            fprintf(stderr, "HTTP %ld\n", status);
        json_decref(r);
        return 1;
    }
    if (reply)
        *reply = r;
    else
        json_decref(r);
    return 0;
}
