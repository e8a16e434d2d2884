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
    if (n < 0 || (size_t)n >= sizeof sts) {
        /* No valid date is this long (it is 16 bytes). HMAC must not read
         * past sts, and all-NUL matches no hex signature. */
        memset(out, 0, 65);
        return;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    HMAC(EVP_sha256(), secret_key, (int)strlen(secret_key), (const unsigned char *)sts, (size_t)n,
         md, &md_len);
    hex(md, md_len, out);
}

/* `name` then a non-empty value up to the next ',' (or the end): the value
 * and its length, or NULL. */
static const char *part(const char *p, const char *name, size_t *len)
{
    size_t n = strlen(name);
    if (strncmp(p, name, n) != 0)
        return NULL;
    p += n;
    *len = strcspn(p, ",");
    return *len ? p : NULL;
}

/* Exactly the spec's (§2.2) ^SDK-HMAC-SHA256 Access=([^,]+),
 * SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$: a looser strstr() parse
 * let one field's value swallow the next ones (found by fuzz_auth). */
int signer_parse_authorization(const char *value, char **access, char **signed_headers,
                               char **signature)
{
    const char *a, *h, *s;
    size_t al, hl, sl;
    *access = *signed_headers = *signature = NULL;
    if (!(a = part(value, SIGNER_ALGORITHM " Access=", &al)) ||
        !(h = part(a + al, ", SignedHeaders=", &hl)) || !(s = part(h + hl, ", Signature=", &sl)) ||
        sl != 64 || s[sl])
        return -1;
    for (size_t i = 0; i < sl; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return -1;
    *access = strndup(a, al);
    *signed_headers = strndup(h, hl);
    *signature = strndup(s, sl);
    if (!*access || !*signed_headers || !*signature) {
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
