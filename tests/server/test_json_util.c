/* test_json_util.c: server/json_util.c. The typed getters (strings with
 * lengths in UTF-8 code points and no embedded NULs, required vs optional,
 * null as absent, integers that accept 1.0 but not 1.5 or "1", numbers,
 * strict booleans, arrays with count bounds, objects), the detail they leave
 * in the request, utf8_len, and json_parse_object (objects only, no
 * duplicate keys, no empty body, no trailing garbage). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include "server/json_util.h"
#include "tests/unit.h"

static struct request req;

static json_t *parse(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    CHECK(j != NULL);
    return j;
}

static void reset(void)
{
    memset(&req, 0, sizeof req);
    req.family = API_V2;
}

/* A string of n copies of the UTF-8 character c. */
static char *repeat(const char *c, size_t n)
{
    size_t cl = strlen(c);
    char *s = malloc(cl * n + 1);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * cl, c, cl);
    s[cl * n] = 0;
    return s;
}

static void test_utf8_len(void)
{
    CHECK_INT(utf8_len(""), 0);
    CHECK_INT(utf8_len("abc"), 3);
    CHECK_INT(utf8_len("中文"), 2);
    CHECK_INT(utf8_len("é"), 1);
    CHECK_INT(utf8_len("\xF0\x9F\x98\x80"), 1); /* one emoji, four bytes */
    CHECK_INT(utf8_len("a中b"), 3);
}

static void test_string_basic(void)
{
    reset();
    json_t *o = parse("{\"s\": \"abc\", \"n\": 5, \"e\": \"\", \"z\": null}");
    const char *out = "untouched";
    CHECK_INT(jget_string(&req, o, "s", JREQ, 1, 3, &out), E_OK);
    CHECK_STR(out, "abc");
    CHECK_INT(jget_string(&req, o, "s", JREQ, 4, 10, &out), E_BAD_PARAM);
    CHECK_STR(req.detail, "s");
    reset();
    CHECK_INT(jget_string(&req, o, "s", JREQ, 1, 2, &out), E_BAD_PARAM);
    CHECK_STR(req.detail, "s");
    /* Wrong type. */
    reset();
    CHECK_INT(jget_string(&req, o, "n", JOPT, 0, 10, &out), E_BAD_PARAM);
    CHECK_STR(req.detail, "n");
    /* Absent: required -> missing; optional -> untouched. */
    reset();
    out = "untouched";
    CHECK_INT(jget_string(&req, o, "nope", JREQ, 1, 10, &out), E_MISSING_PARAM);
    CHECK_STR(req.detail, "nope");
    CHECK_STR(out, "untouched");
    CHECK_INT(jget_string(&req, o, "nope", JOPT, 1, 10, &out), E_OK);
    CHECK_STR(out, "untouched");
    /* null is absent. */
    reset();
    CHECK_INT(jget_string(&req, o, "z", JREQ, 1, 10, &out), E_MISSING_PARAM);
    CHECK_STR(req.detail, "z");
    CHECK_INT(jget_string(&req, o, "z", JOPT, 1, 10, &out), E_OK);
    CHECK_STR(out, "untouched");
    /* Required but empty -> missing (v1 IS.0001); optional and empty but a
     * minimum length -> bad value; empty allowed when min is 0. */
    reset();
    CHECK_INT(jget_string(&req, o, "e", JREQ, 1, 10, &out), E_MISSING_PARAM);
    CHECK_STR(req.detail, "e");
    reset();
    CHECK_INT(jget_string(&req, o, "e", JOPT, 1, 10, &out), E_BAD_PARAM);
    CHECK_STR(req.detail, "e");
    CHECK_INT(jget_string(&req, o, "e", JREQ, 0, 10, &out), E_OK);
    CHECK_STR(out, "");
    /* A NULL object is an empty one. */
    CHECK_INT(jget_string(&req, NULL, "s", JREQ, 1, 10, &out), E_MISSING_PARAM);
    CHECK_INT(jget_string(&req, NULL, "s", JOPT, 1, 10, &out), E_OK);
    json_decref(o);
}

static void test_string_counts_code_points(void)
{
    reset();
    char *zh64 = repeat("中", 64), *zh65 = repeat("中", 65);
    char *a64 = repeat("a", 64), *a65 = repeat("a", 65);
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s}", "zh64", zh64, "zh65", zh65, "a64", a64, "a65", a65);
    const char *out = NULL;
    /* 64 Chinese characters are 192 bytes but 64 characters: OK at max 64. */
    CHECK_INT(jget_string(&req, o, "zh64", JREQ, 1, 64, &out), E_OK);
    CHECK_STR(out, zh64);
    CHECK_INT(jget_string(&req, o, "zh65", JREQ, 1, 64, &out), E_BAD_PARAM);
    CHECK_INT(jget_string(&req, o, "a64", JREQ, 1, 64, &out), E_OK);
    CHECK_INT(jget_string(&req, o, "a65", JREQ, 1, 64, &out), E_BAD_PARAM);
    /* Minimum counts characters too: 2 characters, 6 bytes. */
    json_object_set_new(o, "two", json_string("中文"));
    CHECK_INT(jget_string(&req, o, "two", JREQ, 3, 64, &out), E_BAD_PARAM);
    CHECK_INT(jget_string(&req, o, "two", JREQ, 2, 2, &out), E_OK);
    json_decref(o);
    free(zh64);
    free(zh65);
    free(a64);
    free(a65);
}

static void test_string_embedded_nul(void)
{
    reset();
    json_t *o = json_object();
    json_object_set_new(o, "id", json_stringn("ab\0cd", 5));
    json_object_set_new(o, "tail", json_stringn("ab\0", 3));
    const char *out = "untouched";
    CHECK_INT(jget_string(&req, o, "id", JREQ, 1, 64, &out), E_BAD_PARAM);
    CHECK_STR(req.detail, "id");
    CHECK_STR(out, "untouched");
    CHECK_INT(jget_string(&req, o, "tail", JREQ, 1, 64, &out), E_BAD_PARAM);
    json_decref(o);
}

static void test_int(void)
{
    reset();
    json_t *o = parse("{\"i\": 1, \"r\": 1.0, \"h\": 1.5, \"s\": \"1\", \"b\": true,"
                      " \"neg\": -3, \"big\": 1e300, \"z\": null, \"nr\": -2.0}");
    long long out = 42;
    CHECK_INT(jget_int(&req, o, "i", JREQ, 0, 10, &out), E_OK);
    CHECK_INT(out, 1);
    out = 42;
    CHECK_INT(jget_int(&req, o, "r", JREQ, 0, 10, &out), E_OK); /* the SDKs send 1.0 */
    CHECK_INT(out, 1);
    out = 42;
    CHECK_INT(jget_int(&req, o, "h", JREQ, 0, 10, &out), E_BAD_PARAM);
    CHECK_STR(req.detail, "h");
    CHECK_INT(out, 42);
    CHECK_INT(jget_int(&req, o, "s", JREQ, 0, 10, &out), E_BAD_PARAM);
    CHECK_STR(req.detail, "s");
    CHECK_INT(jget_int(&req, o, "b", JREQ, 0, 10, &out), E_BAD_PARAM);
    CHECK_INT(out, 42);
    /* Ranges, inclusive, for integers and integral reals alike. */
    CHECK_INT(jget_int(&req, o, "i", JREQ, 1, 1, &out), E_OK);
    CHECK_INT(jget_int(&req, o, "i", JREQ, 2, 10, &out), E_BAD_PARAM);
    CHECK_INT(jget_int(&req, o, "i", JREQ, -10, 0, &out), E_BAD_PARAM);
    CHECK_INT(jget_int(&req, o, "r", JREQ, 2, 10, &out), E_BAD_PARAM);
    CHECK_INT(jget_int(&req, o, "neg", JREQ, -3, 0, &out), E_OK);
    CHECK_INT(out, -3);
    CHECK_INT(jget_int(&req, o, "neg", JREQ, 0, 10, &out), E_BAD_PARAM);
    CHECK_INT(jget_int(&req, o, "nr", JREQ, -2, 0, &out), E_OK);
    CHECK_INT(out, -2);
    CHECK_INT(jget_int(&req, o, "big", JREQ, 0, 1LL << 40, &out), E_BAD_PARAM);
    CHECK_INT(jget_int(&req, o, "big", JREQ, LLONG_MIN, LLONG_MAX, &out), E_BAD_PARAM);
    /* Absent and null. */
    out = 42;
    reset();
    CHECK_INT(jget_int(&req, o, "z", JREQ, 0, 10, &out), E_MISSING_PARAM);
    CHECK_STR(req.detail, "z");
    CHECK_INT(jget_int(&req, o, "z", JOPT, 0, 10, &out), E_OK);
    CHECK_INT(jget_int(&req, o, "none", JOPT, 0, 10, &out), E_OK);
    CHECK_INT(out, 42);
    json_decref(o);
}

static void test_number(void)
{
    reset();
    json_t *o = parse("{\"f\": 0.5, \"i\": 2, \"s\": \"0.5\", \"z\": null}");
    double out = -1;
    CHECK_INT(jget_number(&req, o, "f", JREQ, 0, 1, &out), E_OK);
    CHECK(out == 0.5);
    CHECK_INT(jget_number(&req, o, "i", JREQ, 0, 10, &out), E_OK); /* integers are numbers */
    CHECK(out == 2.0);
    CHECK_INT(jget_number(&req, o, "f", JREQ, 0.6, 1, &out), E_BAD_PARAM);
    CHECK_INT(jget_number(&req, o, "i", JREQ, 0, 1.5, &out), E_BAD_PARAM);
    CHECK_INT(jget_number(&req, o, "s", JREQ, 0, 1, &out), E_BAD_PARAM);
    CHECK_STR(req.detail, "s");
    out = -1;
    CHECK_INT(jget_number(&req, o, "z", JOPT, 0, 1, &out), E_OK);
    CHECK(out == -1);
    CHECK_INT(jget_number(&req, o, "z", JREQ, 0, 1, &out), E_MISSING_PARAM);
    json_decref(o);
}

static void test_bool(void)
{
    reset();
    json_t *o = parse("{\"t\": true, \"f\": false, \"one\": 1, \"zero\": 0, \"s\": \"true\","
                      " \"z\": null}");
    int out = 7;
    CHECK_INT(jget_bool(&req, o, "t", JREQ, &out), E_OK);
    CHECK_INT(out, 1);
    CHECK_INT(jget_bool(&req, o, "f", JREQ, &out), E_OK);
    CHECK_INT(out, 0);
    out = 7;
    CHECK_INT(jget_bool(&req, o, "one", JREQ, &out), E_BAD_PARAM);
    CHECK_STR(req.detail, "one");
    CHECK_INT(jget_bool(&req, o, "zero", JOPT, &out), E_BAD_PARAM);
    CHECK_INT(jget_bool(&req, o, "s", JOPT, &out), E_BAD_PARAM);
    CHECK_INT(out, 7);
    CHECK_INT(jget_bool(&req, o, "z", JOPT, &out), E_OK);
    CHECK_INT(out, 7);
    CHECK_INT(jget_bool(&req, o, "z", JREQ, &out), E_MISSING_PARAM);
    CHECK_INT(jget_bool(&req, o, "none", JREQ, &out), E_MISSING_PARAM);
    CHECK_STR(req.detail, "none");
    json_decref(o);
}

static void test_array(void)
{
    reset();
    json_t *o = parse("{\"a0\": [], \"a2\": [1, \"x\"], \"a3\": [1, 2, 3], \"obj\": {},"
                      " \"s\": \"[]\", \"z\": null}");
    json_t *out = NULL;
    CHECK_INT(jget_array(&req, o, "a2", JREQ, 1, 2, &out), E_OK);
    CHECK(out == json_object_get(o, "a2")); /* borrowed */
    CHECK_INT(jget_array(&req, o, "a3", JREQ, 1, 2, &out), E_BAD_PARAM);
    CHECK_STR(req.detail, "a3");
    CHECK_INT(jget_array(&req, o, "a0", JREQ, 1, 2, &out), E_BAD_PARAM);
    CHECK_INT(jget_array(&req, o, "a0", JREQ, 0, 2, &out), E_OK);
    CHECK_INT(jget_array(&req, o, "a3", JREQ, 3, 3, &out), E_OK);
    CHECK_INT(jget_array(&req, o, "obj", JREQ, 0, 10, &out), E_BAD_PARAM);
    CHECK_INT(jget_array(&req, o, "s", JREQ, 0, 10, &out), E_BAD_PARAM);
    out = NULL;
    CHECK_INT(jget_array(&req, o, "z", JOPT, 0, 10, &out), E_OK);
    CHECK(out == NULL);
    CHECK_INT(jget_array(&req, o, "z", JREQ, 0, 10, &out), E_MISSING_PARAM);
    CHECK_INT(jget_array(&req, o, "none", JREQ, 0, 10, &out), E_MISSING_PARAM);
    json_decref(o);
}

static void test_object(void)
{
    reset();
    json_t *o = parse("{\"o\": {\"k\": 1}, \"e\": {}, \"a\": [], \"s\": \"{}\", \"z\": null}");
    json_t *out = NULL;
    CHECK_INT(jget_object(&req, o, "o", JREQ, &out), E_OK);
    CHECK(out == json_object_get(o, "o"));
    CHECK_INT(jget_object(&req, o, "e", JREQ, &out), E_OK);
    CHECK_INT(jget_object(&req, o, "a", JREQ, &out), E_BAD_PARAM);
    CHECK_STR(req.detail, "a");
    CHECK_INT(jget_object(&req, o, "s", JOPT, &out), E_BAD_PARAM);
    out = NULL;
    CHECK_INT(jget_object(&req, o, "z", JOPT, &out), E_OK);
    CHECK(out == NULL);
    CHECK_INT(jget_object(&req, o, "z", JREQ, &out), E_MISSING_PARAM);
    json_decref(o);
}

/* Success leaves the detail of an earlier failure alone only until the next
 * failure overwrites it: the detail always names the latest failing field. */
static void test_detail_is_latest(void)
{
    reset();
    json_t *o = parse("{\"a\": 1, \"b\": \"x\"}");
    const char *s;
    long long i;
    CHECK_INT(jget_string(&req, o, "a", JREQ, 0, 10, &s), E_BAD_PARAM);
    CHECK_STR(req.detail, "a");
    CHECK_INT(jget_int(&req, o, "b", JREQ, 0, 10, &i), E_BAD_PARAM);
    CHECK_STR(req.detail, "b");
    json_decref(o);
}

static int parses(const char *body, size_t len)
{
    json_t *j = json_parse_object((const uint8_t *)body, len);
    int ok = j != NULL;
    CHECK(!j || json_is_object(j));
    json_decref(j);
    return ok;
}

static void test_parse_object(void)
{
#define P(s) parses(s, sizeof(s) - 1)
    CHECK(P("{}"));
    CHECK(P("{\"a\": 1, \"b\": [1, 2], \"c\": {\"d\": null}}"));
    CHECK(P(" \n\t{\"a\": \"中文\"}\r\n "));
    /* Not an object. */
    CHECK(!P("[]"));
    CHECK(!P("[{}]"));
    CHECK(!P("1"));
    CHECK(!P("\"str\""));
    CHECK(!P("null"));
    CHECK(!P("true"));
    /* Empty. */
    CHECK(!parses("", 0));
    CHECK(!parses(NULL, 0));
    CHECK(!parses("{}", 0));
    CHECK(!P("   "));
    /* Duplicate keys, also nested. */
    CHECK(!P("{\"a\": 1, \"a\": 2}"));
    CHECK(!P("{\"o\": {\"k\": 1, \"k\": 1}}"));
    /* Trailing garbage, a second document, truncation. */
    CHECK(!P("{} x"));
    CHECK(!P("{}{}"));
    CHECK(!P("{\"a\": 1},"));
    CHECK(!P("{\"a\": 1"));
    CHECK(!parses("{\"a\": 1}", 7));
    /* The length is honoured: bytes past it are not read. */
    CHECK(parses("{}garbage", 2));
    /* NUL bytes and bad UTF-8. */
    CHECK(!parses("{}\0", 3));
    CHECK(!P("{\"a\": \"\\u0000\"}"));
    CHECK(!P("{\"a\": \"\xff\xfe\"}"));
    /* Not JSON at all. */
    CHECK(!P("{a: 1}"));
    CHECK(!P("{'a': 1}"));
    CHECK(!P("{\"a\": NaN}"));
#undef P
}

int main(void)
{
    RUN(test_utf8_len);
    RUN(test_string_basic);
    RUN(test_string_counts_code_points);
    RUN(test_string_embedded_nul);
    RUN(test_int);
    RUN(test_number);
    RUN(test_bool);
    RUN(test_array);
    RUN(test_object);
    RUN(test_detail_is_latest);
    RUN(test_parse_object);
    return unit_report();
}
