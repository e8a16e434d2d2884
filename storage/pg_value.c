/* pg_value.c: placeholder rewriting and binary value decoding for the
 * PostgreSQL driver (storage/pg_value.h). Binary results, not text: a
 * vector comes back as its bytes rather than twice as many hex digits. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "storage/pg_value.h"

#define MAX_PARAMS 32767 /* SQLite's default limit; PostgreSQL allows 65535 */

/* The length of a quoted run (string or identifier, `q` doubled inside to escape
 * it) or a comment starting at *p; returns how many bytes it spans. */
static size_t skip_quoted(const char *p)
{
    size_t i = 1;
    if (p[0] == '-' && p[1] == '-') {
        while (p[i] && p[i] != '\n')
            i++;
        return i;
    }
    if (p[0] == '/' && p[1] == '*') {
        for (i = 2; p[i] && !(p[i] == '*' && p[i + 1] == '/'); i++)
            ;
        return p[i] ? i + 2 : i;
    }
    char q = p[0];
    for (;;) {
        if (!p[i])
            return i;
        if (p[i] == q) {
            if (p[i + 1] != q)
                return i + 1;
            i++;
        }
        i++;
    }
}

char *pgv_rewrite(const char *sql, int *nparams)
{
    size_t len = strlen(sql);
    /* "?" → "$32767" at worst: six bytes for one. */
    char *out = malloc(len * 6 + 1), *o = out;
    int max = 0;
    if (!out)
        return NULL;
    for (const char *p = sql; *p;) {
        if (*p == '\'' || *p == '"' || (p[0] == '-' && p[1] == '-') ||
            (p[0] == '/' && p[1] == '*')) {
            size_t n = skip_quoted(p);
            memcpy(o, p, n);
            o += n;
            p += n;
            continue;
        }
        if (*p != '?') {
            *o++ = *p++;
            continue;
        }
        p++;
        long n;
        if (isdigit((unsigned char)*p)) {
            char *end;
            n = strtol(p, &end, 10);
            p = end;
        } else {
            n = max + 1;
        }
        if (n < 1 || n > MAX_PARAMS) {
            free(out);
            return NULL;
        }
        if (n > max)
            max = (int)n;
        o += sprintf(o, "$%ld", n);
    }
    *o = '\0';
    *nparams = max;
    return out;
}

int pgv_retry_safe(const char *sql)
{
    while (isspace((unsigned char)*sql) || *sql == '(')
        sql++;
    return !strncasecmp(sql, "SELECT", 6) || !strncasecmp(sql, "BEGIN", 5);
}

void pgv_put_int64(unsigned char out[8], int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 7; i >= 0; i--, u >>= 8)
        out[i] = (unsigned char)(u & 0xff);
}

void pgv_put_double(unsigned char out[8], double v)
{
    int64_t bits;
    memcpy(&bits, &v, sizeof bits);
    pgv_put_int64(out, bits);
}

static uint64_t be(const char *v, int n)
{
    uint64_t u = 0;
    for (int i = 0; i < n; i++)
        u = u << 8 | (unsigned char)v[i];
    return u;
}

int pgv_is_text(unsigned oid)
{
    switch (oid) {
    case PGV_TEXT:
    case PGV_VARCHAR:
    case PGV_BPCHAR:
    case PGV_NAME:
    case PGV_UNKNOWN:
    case PGV_BYTEA:
        return 1;
    default:
        return 0;
    }
}

/* Integer types by width; 0 when oid is not one. */
static int int_width(unsigned oid)
{
    switch (oid) {
    case PGV_BOOL:
        return 1;
    case PGV_INT2:
        return 2;
    case PGV_INT4:
    case PGV_OID:
        return 4;
    case PGV_INT8:
        return 8;
    default:
        return 0;
    }
}

static int64_t read_int(unsigned oid, const char *v, int len)
{
    int w = int_width(oid);
    if (len != w)
        return 0;
    uint64_t u = be(v, w);
    if (oid == PGV_OID || oid == PGV_BOOL)
        return (int64_t)u;
    /* Sign-extend from w bytes. */
    int shift = 64 - 8 * w;
    return (int64_t)(u << shift) >> shift;
}

static double read_float(unsigned oid, const char *v, int len)
{
    if (oid == PGV_FLOAT4 && len == 4) {
        uint32_t u = (uint32_t)be(v, 4);
        float f;
        memcpy(&f, &u, sizeof f);
        return f;
    }
    if (oid == PGV_FLOAT8 && len == 8) {
        uint64_t u = be(v, 8);
        double d;
        memcpy(&d, &u, sizeof d);
        return d;
    }
    return 0;
}

int64_t pgv_int64(unsigned oid, const char *v, int len)
{
    if (int_width(oid))
        return read_int(oid, v, len);
    if (oid == PGV_FLOAT4 || oid == PGV_FLOAT8)
        return (int64_t)read_float(oid, v, len);
    if (pgv_is_text(oid) && oid != PGV_BYTEA)
        return strtoll(v, NULL, 10);
    return 0;
}

double pgv_double(unsigned oid, const char *v, int len)
{
    if (int_width(oid))
        return (double)read_int(oid, v, len);
    if (oid == PGV_FLOAT4 || oid == PGV_FLOAT8)
        return read_float(oid, v, len);
    if (pgv_is_text(oid) && oid != PGV_BYTEA)
        return strtod(v, NULL);
    return 0;
}

const char *pgv_number_text(unsigned oid, const char *v, int len, char *buf, size_t size)
{
    if (int_width(oid))
        snprintf(buf, size, "%lld", (long long)read_int(oid, v, len));
    else if (oid == PGV_FLOAT4 || oid == PGV_FLOAT8)
        snprintf(buf, size, "%.17g", read_float(oid, v, len));
    else
        return NULL;
    return buf;
}
