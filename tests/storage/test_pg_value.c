/* test_pg_value.c: the PostgreSQL driver's pure parts, no server needed:
 * `?` and `?N` placeholders become `$N` by SQLite's numbering, quoted
 * strings, identifiers and comments keep their question marks; binary
 * result values read as SQLite would convert them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "storage/pg_value.h"
#include "tests/unit.h"

static void check_rewrite(const char *in, const char *want, int want_n)
{
    int n = -1;
    char *out = pgv_rewrite(in, &n);
    CHECK_STR(out, want);
    CHECK_INT(n, want_n);
    free(out);
}

static void test_rewrite(void)
{
    check_rewrite("SELECT 1", "SELECT 1", 0);
    check_rewrite("a = ? AND b = ?", "a = $1 AND b = $2", 2);
    check_rewrite("id = ?1 AND j = ?2 OR ?1 IS NULL", "id = $1 AND j = $2 OR $1 IS NULL", 2);
    /* SQLite: a bare ? takes one more than the largest number so far. */
    check_rewrite("?3, ?, ?1, ?", "$3, $4, $1, $5", 5);
    check_rewrite("x = '?' AND y = ?", "x = '?' AND y = $1", 1);
    check_rewrite("x = 'it''s ?' AND y = ?", "x = 'it''s ?' AND y = $1", 1);
    check_rewrite("\"a?\" = ? -- why?\n AND b = ?", "\"a?\" = $1 -- why?\n AND b = $2", 2);
    check_rewrite("/* ? */ c = ?", "/* ? */ c = $1", 1);
    check_rewrite("'unterminated ?", "'unterminated ?", 0);
    int n;
    CHECK(pgv_rewrite("a = ?0", &n) == NULL);
    CHECK(pgv_rewrite("a = ?99999", &n) == NULL);
}

static void test_retry_safe(void)
{
    CHECK(pgv_retry_safe("SELECT 1"));
    CHECK(pgv_retry_safe("  select id FROM t"));
    CHECK(pgv_retry_safe("BEGIN"));
    CHECK(!pgv_retry_safe("UPDATE t SET a = 1"));
    CHECK(!pgv_retry_safe("INSERT INTO t VALUES (1) RETURNING id"));
    CHECK(!pgv_retry_safe("DELETE FROM t"));
}

static void test_values(void)
{
    unsigned char b[8];
    pgv_put_int64(b, -2);
    CHECK_INT(pgv_int64(PGV_INT8, (const char *)b, 8), -2);
    CHECK(memcmp(b, "\xff\xff\xff\xff\xff\xff\xff\xfe", 8) == 0);
    pgv_put_int64(b, (int64_t)1 << 56 | 5);
    CHECK_INT(pgv_int64(PGV_INT8, (const char *)b, 8), ((int64_t)1 << 56) | 5);
    CHECK_INT(pgv_int64(PGV_INT4, "\xff\xff\xff\xfd", 4), -3);
    CHECK_INT(pgv_int64(PGV_INT4, "\x00\x01\x00\x00", 4), 65536);
    CHECK_INT(pgv_int64(PGV_INT2, "\x80\x00", 2), -32768);
    CHECK_INT(pgv_int64(PGV_BOOL, "\x01", 1), 1);
    CHECK_INT(pgv_int64(PGV_TEXT, "42", 2), 42);
    CHECK_INT(pgv_int64(PGV_INT8, "\x01", 1), 0); /* wrong width: not misread */

    pgv_put_double(b, -0.375);
    CHECK(pgv_double(PGV_FLOAT8, (const char *)b, 8) == -0.375);
    CHECK_INT(pgv_int64(PGV_FLOAT8, (const char *)b, 8), 0);
    CHECK(pgv_double(PGV_FLOAT4, "\x3f\xc0\x00\x00", 4) == 1.5);
    CHECK(pgv_double(PGV_INT8, "\x00\x00\x00\x00\x00\x00\x00\x07", 8) == 7.0);
    CHECK(pgv_double(PGV_TEXT, "2.5", 3) == 2.5);

    char buf[40];
    CHECK_STR(pgv_number_text(PGV_INT4, "\x00\x00\x00\x07", 4, buf, sizeof buf), "7");
    CHECK_STR(pgv_number_text(PGV_FLOAT4, "\x3f\xc0\x00\x00", 4, buf, sizeof buf), "1.5");
    CHECK(pgv_number_text(PGV_TEXT, "x", 1, buf, sizeof buf) == NULL);
    CHECK(pgv_is_text(PGV_TEXT) && pgv_is_text(PGV_BYTEA) && !pgv_is_text(PGV_INT8));
}

int main(void)
{
    RUN(test_rewrite);
    RUN(test_retry_safe);
    RUN(test_values);
    return unit_report();
}
