/* test_json_body.c: server/json_body.c. With long string values cut out
 * before the parse and put back after, json_parse_object gives what
 * jansson gives for the body itself: every case below is checked against
 * json_loadb (same value, or both refused), at the production cut size and
 * at a cut size of 1 so that small bodies go through the cut path too; and
 * each case says whether the cut path answered. */
#include <stdlib.h>
#include <string.h>
#include "server/json_body.h"
#include "server/json_util.h"
#include "tests/unit.h"

/* jansson on the body itself, as json_parse_object did before the cuts. */
static json_t *reference(const char *body, size_t len)
{
    json_error_t jerr;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* Parses `body` at cut size `min`; checks it against jansson and returns how
 * many values the cut path restored (-1 when the results differ). */
static long same_as_jansson(const char *body, size_t len, size_t min)
{
    size_t restored = 99;
    json_t *want = reference(body, len);
    json_t *got = json_parse_object_cut((const uint8_t *)body, len, min, &restored);
    int same = want ? got && json_equal(want, got) : !got;
    json_decref(want);
    json_decref(got);
    return same ? (long)restored : -1;
}

/* {"item_id":"x","image_base64":"<n base64 bytes>"} */
static char *image_body(size_t n)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *head = "{\"item_id\": \"x\", \"image_base64\": \"";
    size_t h = strlen(head);
    char *s = malloc(h + n + 3);
    memcpy(s, head, h);
    for (size_t i = 0; i < n; i++)
        s[h + i] = b64[(i * 7 + i / 64) % 64];
    memcpy(s + h + n, "\"}", 3);
    return s;
}

static void test_image_body_is_cut_and_equal(void)
{
    char *s = image_body(200000);
    CHECK_INT(same_as_jansson(s, strlen(s), JSON_CUT_MIN), 1);
    json_t *j = json_parse_object((const uint8_t *)s, strlen(s));
    CHECK(j != NULL);
    json_t *v = json_object_get(j, "image_base64");
    CHECK(json_is_string(v) && json_string_length(v) == 200000);
    CHECK(memcmp(json_string_value(v), s + strlen(s) - 2 - 200000, 200000) == 0);
    CHECK_STR(json_string_value(json_object_get(j, "item_id")), "x");
    json_decref(j);
    free(s);
    /* Under the cut size, the plain parse answers. */
    s = image_body(JSON_CUT_MIN - 1);
    CHECK_INT(same_as_jansson(s, strlen(s), JSON_CUT_MIN), 0);
    free(s);
}

static void test_nested_and_many(void)
{
    const char *b =
        "{\"a\": [\"xyz\", {\"b\": \"hello world\", \"c\": [1, \"q\"]}], \"d\": \"z z\", "
        "\"e\": {\"f\": {\"g\": \"deep\"}}}";
    CHECK_INT(same_as_jansson(b, strlen(b), 1), 5); /* the values, not the keys */
    /* More values than the cut table holds: the first 16 are cut. */
    char big[2048] = "{";
    for (int i = 0; i < 20; i++)
        snprintf(big + strlen(big), sizeof big - strlen(big), "%s\"k%d\": \"v%d\"", i ? ", " : "",
                 i, i);
    strcat(big, "}");
    CHECK_INT(same_as_jansson(big, strlen(big), 1), 16);
}

/* Literals that are not cut: keys, escapes, non-ASCII, control bytes. */
static void test_not_cut(void)
{
    const char *cases[] = {
        "{\"a long key\": 1}",
        "{\"a\": \"tab\\tand \\\"quotes\\\" and \\u4e2d\"}",
        "{\"a\": \"\xe4\xb8\xad\xe6\x96\x87\"}",
        "{\"a\"  \n: \"b\"}",
        "{\"a\": \"\x7f\"}",
    };
    long want[] = {0, 0, 0, 1, 0};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        CHECK_INT(same_as_jansson(cases[i], strlen(cases[i]), 1), want[i]);
}

/* The escapes encoders put in base64 (PHP: \/, Gson: \u003d for the
 * padding) do not keep a literal from being cut; any other escape does. */
static void test_base64_escapes(void)
{
    const char *cut[] = {
        "{\"a\": \"ab\\/cd\\/\"}",
        "{\"a\": \"abcd\\u003d\\u003D\"}",
        "{\"a\": \"\\u002b\\u002B\\u002f\\u002F\\/x\"}",
        "{\"a\": [\"\\/\", \"q\\u003d\"]}",
    };
    long want_cut[] = {1, 1, 1, 2};
    for (size_t i = 0; i < sizeof cut / sizeof *cut; i++)
        CHECK_INT(same_as_jansson(cut[i], strlen(cut[i]), 1), want_cut[i]);
    const char *kept[] = {
        "{\"a\": \"ab\\/cd\\n\"}",  /* \n among them */
        "{\"a\": \"ab\\u003e\"}",   /* not a base64 character */
        "{\"a\": \"ab\\u0030\"}",   /* '0' needs no escape: kept as jansson's */
        "{\"a\": \"ab\\u003\"}",    /* short escape: invalid */
        "{\"a\": \"ab\\u00\"3d\"}", /* a quote inside the escape: invalid */
        "{\"a\": \"ab\\\"}",        /* an escaped closing quote: unterminated */
    };
    for (size_t i = 0; i < sizeof kept / sizeof *kept; i++)
        CHECK_INT(same_as_jansson(kept[i], strlen(kept[i]), 1), 0);
    /* A PHP client's image: a 200 KB literal, one '/' in 64 escaped. */
    char *s = image_body(200000);
    size_t n = strlen(s), extra = 0;
    for (size_t i = 0; i < n; i++)
        extra += s[i] == '/';
    char *e = malloc(n + extra + 1), *o = e;
    for (size_t i = 0; i <= n; i++) {
        if (s[i] == '/')
            *o++ = '\\';
        *o++ = s[i];
    }
    CHECK(extra > 1000);
    CHECK_INT(same_as_jansson(e, strlen(e), JSON_CUT_MIN), 1);
    free(e);
    free(s);
}

/* Bodies jansson refuses are refused, whatever the cuts. */
static void test_refused(void)
{
    const char *cases[] = {
        "{\"a\": \"x\", \"a\": \"y\"}",          /* duplicate key */
        "{\"o\": {\"k\": \"x\", \"k\": \"y\"}}", /* nested duplicate */
        "{\"a\": \"x\"",                         /* truncated */
        "{\"a\": \"x",                           /* unterminated literal */
        "{\"a\": \"x\"} trailing",               /* garbage after */
        "{\"a\": \"x\"}{}",                      /* a second document */
        "[\"x\", \"y\"]",                        /* not an object */
        "\"x\"",                                 /* not an object */
        "{\"a\": \"x\", \"b\": \"\\u0000\"}",    /* a client's NUL */
        "{\"a\": \"x\", \"\\u0000\": 1}",        /* NUL in a key */
        "{\"a\": \"x\" \"b\"}",                  /* missing colon */
        "{\"a\": \"x\", \"b\": \"\x01\"}",       /* a raw control byte */
        "{\"a\": \"x\", \"b\": \"\xff\"}",       /* bad UTF-8 */
        "{\"a\" \"x\"}",                         /* the value scan meets a key-less literal */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        CHECK_INT(same_as_jansson(cases[i], strlen(cases[i]), 1), 0);
        json_t *j = json_parse_object((const uint8_t *)cases[i], strlen(cases[i]));
        CHECK(j == NULL);
        json_decref(j);
    }
    /* NUL bytes in the body, and the length honoured. */
    CHECK_INT(same_as_jansson("{\"a\": \"x\"}\0", 11, 1), 0);
    CHECK_INT(same_as_jansson("{\"a\": \"x\"}garbage", 10, 1), 1);
    CHECK_INT(same_as_jansson("{\"a\": \"xy\"}", 9, 1), 0);
}

/* A client who sends what looks like a marker gets the plain answer: the
 * nonce is fresh each parse, so it never matches. */
static void test_marker_lookalike(void)
{
    const char *b = "{\"a\": \"payload\", \"b\": \"\\u00000000000000000000\"}";
    CHECK_INT(same_as_jansson(b, strlen(b), 1), 0);
    CHECK(json_parse_object((const uint8_t *)b, strlen(b)) == NULL);
}

/* A literal of a million escapes: the scan stays linear. A first version
 * looked for the closing quote again after every backslash: quadratic, 9.8 s
 * for this 2 MB body, hours for the largest body a request may carry. */
static void test_many_escapes(void)
{
    size_t n = 1000000;
    char *s = malloc(2 * n + 64);
    size_t at = (size_t)sprintf(s, "{\"a\": \"");
    for (size_t i = 0; i < n; i++) {
        s[at++] = '\\';
        s[at++] = 'n';
    }
    at += (size_t)sprintf(s + at, "\", \"b\": \"plain\"}");
    CHECK_INT(same_as_jansson(s, at, 1), 1); /* "plain" only: "a" has escapes */
    free(s);
}

int main(void)
{
    RUN(test_image_body_is_cut_and_equal);
    RUN(test_nested_and_many);
    RUN(test_not_cut);
    RUN(test_base64_escapes);
    RUN(test_refused);
    RUN(test_marker_lookalike);
    RUN(test_many_escapes);
    return unit_report();
}
