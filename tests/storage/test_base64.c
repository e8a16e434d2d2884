/* test_base64.c: strict decoding (whitespace, data: prefix, padding rules,
 * bad characters, size limit) and encode/decode round trips. */
#include "storage/base64.h"
#include "tests/unit.h"

#include <stdlib.h>

#define BIG ((size_t)1 << 30)

/* Decodes a C string; returns the status, output in *out (caller frees). */
static enum b64_status dec(const char *s, uint8_t **out, size_t *n)
{
    return base64_decode(s, strlen(s), BIG, out, n);
}

static int dec_eq(const char *s, const char *want)
{
    uint8_t *out;
    size_t n;
    enum b64_status st = dec(s, &out, &n);
    int ok = st == B64_OK && n == strlen(want) && memcmp(out, want, n) == 0;
    if (!ok)
        fprintf(stderr, "  decode(\"%s\") status %d len %zu\n", s, st, n);
    free(out);
    return ok;
}

static enum b64_status dec_status(const char *s)
{
    uint8_t *out;
    size_t n;
    enum b64_status st = dec(s, &out, &n);
    if (st != B64_OK)
        CHECK(out == NULL && n == 0);
    free(out);
    return st;
}

static void test_rfc4648_vectors(void)
{
    CHECK(dec_eq("", ""));
    CHECK(dec_eq("Zg==", "f"));
    CHECK(dec_eq("Zm8=", "fo"));
    CHECK(dec_eq("Zm9v", "foo"));
    CHECK(dec_eq("Zm9vYg==", "foob"));
    CHECK(dec_eq("Zm9vYmE=", "fooba"));
    CHECK(dec_eq("Zm9vYmFy", "foobar"));
    /* Padding is optional. */
    CHECK(dec_eq("Zg", "f"));
    CHECK(dec_eq("Zm8", "fo"));
    CHECK(dec_eq("Zm9vYmE", "fooba"));
    char *e = base64_encode((const uint8_t *)"foobar", 6);
    CHECK_STR(e, "Zm9vYmFy");
    free(e);
    e = base64_encode((const uint8_t *)"fooba", 5);
    CHECK_STR(e, "Zm9vYmE=");
    free(e);
    e = base64_encode((const uint8_t *)"", 0);
    CHECK_STR(e, "");
    free(e);
}

static void test_round_trips(void)
{
    /* Every length 0..300 over all byte values, so each tail case and the
     * 16-char fast path boundaries are crossed. */
    uint8_t data[300];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 167 + 13);
    for (size_t len = 0; len <= sizeof(data); len++) {
        char *e = base64_encode(data, len);
        uint8_t *out;
        size_t n;
        CHECK_INT(base64_decode(e, strlen(e), len, &out, &n), B64_OK);
        CHECK_INT(n, len);
        CHECK(out && memcmp(out, data, len) == 0);
        free(out);
        free(e);
    }
}

static void test_whitespace(void)
{
    CHECK(dec_eq(" Zm9v\nYmFy\r\n", "foobar"));
    CHECK(dec_eq("Z m 9 v Y m F y", "foobar"));
    CHECK(dec_eq("\tZm9vYg=\n=\n", "foob"));
    CHECK(dec_eq("Zm9vYg==  \r\n", "foob"));
    CHECK(dec_eq("\v\fZm8=", "fo"));
    CHECK(dec_eq("  \n ", ""));
    /* A long MIME-style text (76-char lines) decodes like the unbroken one. */
    uint8_t data[4000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i ^ (i >> 3));
    char *e = base64_encode(data, sizeof(data));
    size_t el = strlen(e);
    char *wrapped = malloc(el * 2);
    size_t w = 0;
    for (size_t i = 0; i < el; i++) {
        wrapped[w++] = e[i];
        if (i % 76 == 75)
            wrapped[w++] = '\n';
        if (i % 301 == 300) {
            wrapped[w++] = '\r';
            wrapped[w++] = ' ';
        }
    }
    uint8_t *out;
    size_t n;
    CHECK_INT(base64_decode(wrapped, w, sizeof(data), &out, &n), B64_OK);
    CHECK_INT(n, sizeof(data));
    CHECK(out && memcmp(out, data, sizeof(data)) == 0);
    free(out);
    free(wrapped);
    free(e);
}

static void test_data_prefix(void)
{
    CHECK(dec_eq("data:image/png;base64,Zm9v", "foo"));
    CHECK(dec_eq("  data:image/jpeg;base64,Zm9vYg==", "foob"));
    CHECK(dec_eq("DATA:Image/JPEG;BASE64,Zm9v", "foo"));
    CHECK(dec_eq("data:image/svg+xml;base64,Zm9v", "foo"));
    CHECK(dec_eq("data:image/x-ms-bmp;base64,\nZm9v", "foo"));
    CHECK(dec_eq("data:image/png;base64,", ""));
    CHECK_INT(dec_status("data:text/plain;base64,Zm9v"), B64_INVALID);
    CHECK_INT(dec_status("data:image/png,Zm9v"), B64_INVALID);
    CHECK_INT(dec_status("data:image/;base64,Zm9v"), B64_INVALID);
    CHECK_INT(dec_status("data:image/png/x;base64,Zm9v"), B64_INVALID);
    CHECK_INT(dec_status("data:image/png;charset=x;base64,Zm9v"), B64_INVALID);
    CHECK_INT(dec_status("data:image/png;base64,Zm9v data:"), B64_INVALID);
    CHECK_INT(dec_status("Zm9vdata:image/png;base64,"), B64_INVALID);
    CHECK_INT(dec_status("data:"), B64_INVALID);
    CHECK(dec_eq("data", "u\xabZ")); /* just base64 */
}

static void test_bad_chars(void)
{
    CHECK_INT(dec_status("Zm9v!mFy"), B64_INVALID);
    CHECK_INT(dec_status("Zm9v-mFy"), B64_INVALID); /* url-safe alphabet is not accepted */
    CHECK_INT(dec_status("Zm9v_mFy"), B64_INVALID);
    CHECK_INT(dec_status("Zm9vYmFy\x80"), B64_INVALID);
    /* In the fast path too: a bad char deep inside a long run. */
    char buf[200];
    memset(buf, 'A', sizeof(buf) - 1);
    buf[sizeof(buf) - 1] = '\0';
    buf[150] = '.';
    CHECK_INT(dec_status(buf), B64_INVALID);
    uint8_t *out;
    size_t n;
    buf[150] = '\0'; /* an embedded NUL inside the given length */
    CHECK_INT(base64_decode(buf, 152, BIG, &out, &n), B64_INVALID);
}

static void test_bad_padding(void)
{
    CHECK_INT(dec_status("Z"), B64_INVALID);     /* lone char: 6 bits */
    CHECK_INT(dec_status("Zm9vY"), B64_INVALID); /* lone char after a group */
    CHECK_INT(dec_status("Zg="), B64_INVALID);   /* incomplete padding */
    CHECK_INT(dec_status("Zm8=="), B64_INVALID); /* too much padding */
    CHECK_INT(dec_status("Zm9v="), B64_INVALID); /* padding after a full group */
    CHECK_INT(dec_status("="), B64_INVALID);
    CHECK_INT(dec_status("=="), B64_INVALID);
    CHECK_INT(dec_status("Z==="), B64_INVALID);
    CHECK_INT(dec_status("Zg===="), B64_INVALID);
    /* Padding in the middle. */
    CHECK_INT(dec_status("Zg==Zm9v"), B64_INVALID);
    CHECK_INT(dec_status("Zm8=Zm9v"), B64_INVALID);
    CHECK_INT(dec_status("Zm=8"), B64_INVALID);
    CHECK_INT(dec_status("Zg== x"), B64_INVALID);
}

static void test_size_limit(void)
{
    uint8_t *out = (uint8_t *)1;
    size_t n = 99;
    /* "Zm9vYmFy" is 6 bytes: exactly at the limit is fine, one below is not. */
    CHECK_INT(base64_decode("Zm9vYmFy", 8, 6, &out, &n), B64_OK);
    CHECK_INT(n, 6);
    free(out);
    CHECK_INT(base64_decode("Zm9vYmFy", 8, 5, &out, &n), B64_TOO_LARGE);
    CHECK(out == NULL);
    CHECK_INT(n, 0);
    CHECK_INT(base64_decode("Zm9vYg==", 8, 4, &out, &n), B64_OK);
    free(out);
    CHECK_INT(base64_decode("Zm9vYg", 6, 3, &out, &n), B64_TOO_LARGE);
    /* Whitespace does not count toward the size. */
    CHECK_INT(base64_decode("Zm 9v\n\n\n\n\n\n\n\n\n\n", 15, 3, &out, &n), B64_OK);
    CHECK_INT(n, 3);
    free(out);
    /* A huge input over the limit is refused without decoding it. */
    size_t big = 64u << 20;
    char *s = malloc(big);
    memset(s, 'A', big);
    CHECK_INT(base64_decode(s, big, 5u << 20, &out, &n), B64_TOO_LARGE);
    CHECK(out == NULL);
    free(s);
    CHECK_INT(base64_decode("", 0, 0, &out, &n), B64_OK);
    CHECK_INT(n, 0);
    free(out);
}

static void test_empty(void)
{
    uint8_t *out;
    size_t n = 5;
    CHECK_INT(base64_decode(NULL, 0, 100, &out, &n), B64_OK);
    CHECK_INT(n, 0);
    free(out);
    CHECK_INT(base64_decode("", 0, 100, &out, &n), B64_OK);
    CHECK_INT(n, 0);
    free(out);
}

int main(void)
{
    RUN(test_rfc4648_vectors);
    RUN(test_round_trips);
    RUN(test_whitespace);
    RUN(test_data_prefix);
    RUN(test_bad_chars);
    RUN(test_bad_padding);
    RUN(test_size_limit);
    RUN(test_empty);
    return unit_report();
}
