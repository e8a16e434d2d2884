/* json_body.c: request bodies into jansson objects.
 *
 * jansson's lexer takes about 8 ns a byte of a string (it checks and copies
 * byte by byte, then once more to unescape): a 200 KB base64 image cost
 * 1.7 ms to parse, more than anything in a data/add but the CNN. Long
 * literals of plain printable ASCII, which is what base64 is (also with the
 * escapes some encoders put in it), are cut out
 * before the parse, each replaced by a short marker, and put back after as
 * the very values jansson would have made. Anything unexpected falls back to
 * the plain parse, so the result is always jansson's own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include "server/json_body.h"
#include "server/json_util.h"

#define MAX_CUTS 16
/* Decoded marker: NUL, 16 hex digits of nonce, one hex digit of index. A
 * client cannot send it: bodies with \u0000 in a string are refused, and
 * the nonce is fresh for every parse. */
#define MARK_LEN 18
#define MARK_TEXT 23 /* as JSON text: \u0000 (6) + 17 */
_Static_assert(MAX_CUTS <= 16, "a marker holds its index in one hex digit");

struct cut {
    size_t off, len; /* the literal's content within the body */
    int unescape;    /* holds the escapes of base64_escape */
    int used;
};

struct cuts {
    const uint8_t *body;
    struct cut c[MAX_CUTS];
    size_t n;
    char nonce[17];
};

/* Every byte printable ASCII (no control, no DEL, no UTF-8): such a
 * literal without backslashes decodes to exactly its bytes. */
__attribute__((optimize("O3"))) static int plain(const uint8_t *s, size_t n)
{
    unsigned bad = 0;
    for (size_t i = 0; i < n; i++)
        bad |= (uint8_t)(s[i] - 0x20) > 0x5E;
    return !bad;
}

/* Bytes of an escape at e (e[0] is the backslash, `room` bytes up to the
 * closing quote) that stands for a base64 character: \/ (PHP's
 * json_encode), \u003d and \u002b (the HTML-safe escapes of Gson and the
 * like); 0 for any other escape. Such literals are still cut. */
static int base64_escape(const uint8_t *e, size_t room)
{
    if (room >= 2 && e[1] == '/')
        return 2;
    if (room >= 6 && e[1] == 'u' && e[2] == '0' && e[3] == '0' &&
        ((e[4] == '3' && (e[5] == 'd' || e[5] == 'D')) ||
         (e[4] == '2' && (e[5] == 'b' || e[5] == 'B' || e[5] == 'f' || e[5] == 'F'))))
        return 6;
    return 0;
}

static int is_ws(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The value literals (not keys) of >= min plain bytes, in body order. The
 * scan follows JSON's rule for strings, so it agrees with jansson's lexer
 * wherever jansson gets that far; it stops at an unterminated literal. */
static void find_cuts(const uint8_t *b, size_t len, size_t min, struct cuts *cs)
{
    size_t i = 0;
    cs->n = 0;
    while (i < len && cs->n < MAX_CUTS) {
        const uint8_t *q = memchr(b + i, '"', len - i);
        if (!q)
            return;
        size_t start = (size_t)(q - b) + 1, j = start;
        const uint8_t *e = NULL;
        int escaped = 0, unescape = 0;
        for (;;) {
            /* The quote found last is searched again only once an escape
             * has passed it: every byte is scanned a bounded number of
             * times, however many backslashes the literal holds. */
            if (!e || e < b + j)
                e = j < len ? memchr(b + j, '"', len - j) : NULL;
            if (!e)
                return;
            const uint8_t *bs = memchr(b + j, '\\', (size_t)(e - (b + j)));
            if (!bs) {
                j = (size_t)(e - b);
                break;
            }
            int n = base64_escape(bs, (size_t)(e - bs));
            if (n)
                unescape = 1;
            else
                escaped = 1;
            j = (size_t)(bs - b) + (n ? (size_t)n : 2); /* past the escaped byte(s) */
        }
        i = j + 1;
        if (escaped || j - start < min)
            continue;
        size_t k = i;
        while (k < len && is_ws(b[k]))
            k++;
        if (k < len && b[k] == ':')
            continue; /* a key: jansson refuses NUL in keys, leave it */
        if (plain(b + start, j - start))
            cs->c[cs->n++] = (struct cut){start, j - start, unescape, 0};
    }
}

/* The body with each cut's content replaced by its marker. */
static char *marked_body(const uint8_t *b, size_t len, const struct cuts *cs, size_t *out_len)
{
    size_t n = len;
    for (size_t i = 0; i < cs->n; i++)
        n = n - cs->c[i].len + MARK_TEXT;
    char *m = malloc(n + 1);
    if (!m)
        return NULL;
    size_t at = 0, from = 0;
    for (size_t i = 0; i < cs->n; i++) {
        memcpy(m + at, b + from, cs->c[i].off - from);
        at += cs->c[i].off - from;
        at += (size_t)snprintf(m + at, MARK_TEXT + 1, "\\u0000%s%zx", cs->nonce, i);
        from = cs->c[i].off + cs->c[i].len;
    }
    memcpy(m + at, b + from, len - from);
    at += len - from;
    m[at] = 0;
    *out_len = at;
    return m;
}

/* The value a string of the parsed tree stands for: NULL when it is as
 * parsed, *bad when it holds a NUL that is not one of our markers. */
static json_t *restore(json_t *s, struct cuts *cs, int *bad)
{
    const char *v = json_string_value(s);
    size_t n = json_string_length(s);
    if (strlen(v) == n)
        return NULL;
    unsigned idx;
    if (n != MARK_LEN || v[0] != 0 || memcmp(v + 1, cs->nonce, 16) != 0 ||
        sscanf(v + 17, "%1x", &idx) != 1 || idx >= cs->n || cs->c[idx].used) {
        *bad = 1;
        return NULL;
    }
    cs->c[idx].used = 1;
    const struct cut *c = &cs->c[idx];
    const char *raw = (const char *)cs->body + c->off;
    json_t *r = NULL;
    if (!c->unescape) {
        r = json_stringn_nocheck(raw, c->len);
    } else {
        char *d = malloc(c->len);
        size_t dn = 0;
        for (size_t i = 0; d && i < c->len; i++) {
            if (raw[i] != '\\') {
                d[dn++] = raw[i];
            } else if (raw[i + 1] == '/') {
                d[dn++] = '/';
                i++;
            } else { /* \u00XX, checked by base64_escape */
                d[dn++] = raw[i + 4] == '3' ? '=' : (raw[i + 5] | 0x20) == 'b' ? '+' : '/';
                i += 5;
            }
        }
        r = d ? json_stringn_nocheck(d, dn) : NULL;
        free(d);
    }
    if (!r)
        *bad = 1;
    return r;
}

/* Puts every cut back into the tree under v (a container: its own value
 * stays); sets *bad when something did not go well. */
static void restore_tree(json_t *v, struct cuts *cs, int *bad);

/* x with its cuts put back: a new string to set in x's place, or NULL when
 * x stays where it is. */
static json_t *restore_value(json_t *x, struct cuts *cs, int *bad)
{
    if (json_is_string(x))
        return restore(x, cs, bad);
    restore_tree(x, cs, bad);
    return NULL;
}

static void restore_tree(json_t *v, struct cuts *cs, int *bad)
{
    if (json_is_object(v)) {
        for (void *it = json_object_iter(v); it && !*bad; it = json_object_iter_next(v, it)) {
            json_t *r = restore_value(json_object_iter_value(it), cs, bad);
            if (r && json_object_iter_set_new(v, it, r) != 0)
                *bad = 1;
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v) && !*bad; i++) {
            json_t *r = restore_value(json_array_get(v, i), cs, bad);
            if (r && json_array_set_new(v, i, r) != 0)
                *bad = 1;
        }
    }
}

static json_t *parse_plain(const uint8_t *body, size_t len, int flags)
{
    json_error_t jerr;
    json_t *j = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES | flags, &jerr);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

json_t *json_parse_object_cut(const uint8_t *body, size_t len, size_t min_cut, size_t *restored)
{
    struct cuts cs = {.body = body};
    uint64_t r;
    *restored = 0;
    if (!body || len == 0)
        return NULL;
    find_cuts(body, len, min_cut ? min_cut : 1, &cs);
    if (cs.n == 0 || getrandom(&r, sizeof r, GRND_NONBLOCK) != sizeof r)
        return parse_plain(body, len, 0);
    snprintf(cs.nonce, sizeof cs.nonce, "%016llx", (unsigned long long)r);
    size_t mlen;
    char *m = marked_body(body, len, &cs, &mlen);
    if (!m)
        return parse_plain(body, len, 0);
    json_t *j = parse_plain((const uint8_t *)m, mlen, JSON_ALLOW_NUL);
    free(m);
    int bad = !j;
    if (j)
        restore_tree(j, &cs, &bad);
    int ok = !bad;
    for (size_t i = 0; ok && i < cs.n; i++)
        ok = cs.c[i].used;
    if (ok) {
        *restored = cs.n;
        return j;
    }
    /* Not an object, invalid, a client's NUL, or a cut that did not come
     * back: whatever jansson says of the body itself. */
    json_decref(j);
    return parse_plain(body, len, 0);
}

json_t *json_parse_object(const uint8_t *body, size_t len)
{
    size_t restored;
    return json_parse_object_cut(body, len, JSON_CUT_MIN, &restored);
}
