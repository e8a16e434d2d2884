/* signer.c: the canonical request and signature of SDK-HMAC-SHA256, as the
 * official SDKs compute them. Note the two quirks that differ from AWS SigV4:
 * the canonical URI always ends in '/', and the raw SK is the HMAC key. */
#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "server/signer.h"

static void hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = 0;
}

void sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(data, len, md);
    hex(md, sizeof md, out);
}

/* A growable string; on allocation failure `s` becomes NULL and stays so. */
struct sbuf {
    char *s;
    size_t len, cap;
    int failed;
};

static void sb_add(struct sbuf *b, const char *p, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *g = realloc(b->s, cap);
        if (!g) {
            free(b->s);
            b->s = NULL;
            b->failed = 1;
            return;
        }
        b->s = g;
        b->cap = cap;
    }
    memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void sb_str(struct sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void sb_escape(struct sbuf *b, const char *s, size_t n)
{
    static const char digits[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            sb_add(b, (const char *)&c, 1);
        } else {
            char e[3] = {'%', digits[c >> 4], digits[c & 15]};
            sb_add(b, e, 3);
        }
    }
}

char *signer_escape(const char *s)
{
    struct sbuf b = {0};
    sb_add(&b, "", 0);
    sb_escape(&b, s, strlen(s));
    return b.s;
}

static int cmp_query(const void *a, const void *b)
{
    const struct signer_query *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : strcmp(x->value ? x->value : "", y->value ? y->value : "");
}

/* Appends value with leading and trailing white space removed. */
static void sb_trimmed(struct sbuf *b, const char *v)
{
    while (*v == ' ' || *v == '\t')
        v++;
    size_t n = strlen(v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    sb_add(b, v, n);
}

char *signer_canonical_request(const char *method, const char *path,
                               const struct signer_query *query, size_t n_query,
                               const char *signed_headers, signer_header_fn get, void *ctx,
                               const char *payload_hash)
{
    struct sbuf b = {0};
    struct signer_query *sorted = NULL;
    sb_str(&b, method);
    sb_str(&b, "\n");

    /* CanonicalURI: each segment escaped, always a trailing '/'. */
    const char *p = path;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        sb_escape(&b, p, n);
        if (!slash)
            break;
        sb_add(&b, "/", 1);
        p = slash + 1;
    }
    if (b.s && b.s[b.len - 1] != '/')
        sb_add(&b, "/", 1);
    sb_str(&b, "\n");

    if (n_query) {
        sorted = malloc(n_query * sizeof *sorted);
        if (!sorted)
            goto fail;
        memcpy(sorted, query, n_query * sizeof *sorted);
        qsort(sorted, n_query, sizeof *sorted, cmp_query);
        for (size_t i = 0; i < n_query; i++) {
            if (i)
                sb_add(&b, "&", 1);
            sb_escape(&b, sorted[i].key, strlen(sorted[i].key));
            sb_add(&b, "=", 1);
            if (sorted[i].value)
                sb_escape(&b, sorted[i].value, strlen(sorted[i].value));
        }
    }
    sb_str(&b, "\n");

    /* CanonicalHeaders, in the client's SignedHeaders order. */
    const char *h = signed_headers;
    while (*h) {
        const char *semi = strchr(h, ';');
        size_t n = semi ? (size_t)(semi - h) : strlen(h);
        char name[128];
        if (n == 0 || n >= sizeof name)
            goto fail;
        for (size_t i = 0; i < n; i++)
            name[i] = (char)tolower((unsigned char)h[i]);
        name[n] = 0;
        const char *v = get(ctx, name);
        if (!v)
            goto fail;
        sb_str(&b, name);
        sb_add(&b, ":", 1);
        sb_trimmed(&b, v);
        sb_add(&b, "\n", 1);
        if (!semi)
            break;
        h = semi + 1;
    }
    sb_str(&b, "\n");
    sb_str(&b, signed_headers);
    sb_str(&b, "\n");
    sb_str(&b, payload_hash);
    free(sorted);
    return b.s;
fail:
    free(sorted);
    free(b.s);
    return NULL;
}

void signer_signature(const char *secret_key, const char *sdk_date, const char *canonical_request,
                      char out[65])
{
    char creq_hash[65];
    sha256_hex(canonical_request, strlen(canonical_request), creq_hash);
    char sts[256];
    int n = snprintf(sts, sizeof sts, "%s\n%s\n%s", SIGNER_ALGORITHM, sdk_date, creq_hash);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    HMAC(EVP_sha256(), secret_key, (int)strlen(secret_key), (const unsigned char *)sts, (size_t)n,
         md, &md_len);
    hex(md, md_len, out);
}

/* Copies the value after `key` up to the next ',' (or the end). */
static char *field(const char *s, const char *key)
{
    const char *p = strstr(s, key);
    if (!p)
        return NULL;
    p += strlen(key);
    const char *end = strchr(p, ',');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    while (n && p[n - 1] == ' ')
        n--;
    return n ? strndup(p, n) : NULL;
}

int signer_parse_authorization(const char *value, char **access, char **signed_headers,
                               char **signature)
{
    *access = *signed_headers = *signature = NULL;
    size_t alen = strlen(SIGNER_ALGORITHM);
    if (strncmp(value, SIGNER_ALGORITHM, alen) != 0 || value[alen] != ' ')
        return -1;
    const char *rest = value + alen + 1;
    *access = field(rest, "Access=");
    *signed_headers = field(rest, "SignedHeaders=");
    *signature = field(rest, "Signature=");
    int ok = *access && *signed_headers && *signature && strlen(*signature) == 64;
    for (const char *c = ok ? *signature : ""; *c && ok; c++)
        ok = isxdigit((unsigned char)*c) && !isupper((unsigned char)*c);
    if (!ok) {
        free(*access);
        free(*signed_headers);
        free(*signature);
        *access = *signed_headers = *signature = NULL;
        return -1;
    }
    return 0;
}

long long signer_parse_date(const char *s)
{
    struct tm tm = {0};
    if (!s || strlen(s) != 16)
        return -1;
    const char *end = strptime(s, "%Y%m%dT%H%M%SZ", &tm);
    if (!end || *end)
        return -1;
    return (long long)timegm(&tm);
}
