/* pg_value.h: the pure parts of the PostgreSQL driver, kept apart from
 * libpq so they are tested without a server: `?` placeholders rewritten to
 * `$N`, and binary result values read as SQLite would read them. */
#ifndef IMGSEARCH_PG_VALUE_H
#define IMGSEARCH_PG_VALUE_H

#include <stddef.h>
#include <stdint.h>

/* Type OIDs of the built-in types we send or read (fixed since forever;
 * the server headers that name them are not in libpq-dev). */
#define PGV_BOOL 16
#define PGV_BYTEA 17
#define PGV_NAME 19
#define PGV_INT8 20
#define PGV_INT2 21
#define PGV_INT4 23
#define PGV_TEXT 25
#define PGV_OID 26
#define PGV_FLOAT4 700
#define PGV_FLOAT8 701
#define PGV_UNKNOWN 705
#define PGV_BPCHAR 1042
#define PGV_VARCHAR 1043

/* SQLite's placeholders in PostgreSQL's spelling: `?N` becomes `$N` and a
 * bare `?` the next number after the largest so far (SQLite's rule).
 * Quoted strings, quoted identifiers and comments are left alone.
 * *nparams gets the largest number used. malloc'd; NULL when out of
 * memory or a number is out of range. */
char *pgv_rewrite(const char *sql, int *nparams);

/* 1 when the statement only reads, or is BEGIN: resending it after a
 * reconnect cannot apply a write twice. */
int pgv_retry_safe(const char *sql);

/* Big-endian (network order) encodings of binary parameters. */
void pgv_put_int64(unsigned char out[8], int64_t v);
void pgv_put_double(unsigned char out[8], double v);

/* A binary result value of type `oid` as SQLite would convert it; text
 * types are parsed, unknown types read as 0. */
int64_t pgv_int64(unsigned oid, const char *v, int len);
double pgv_double(unsigned oid, const char *v, int len);
/* Numbers formatted as text into buf (SQLite's column_text of a number);
 * returns buf, or NULL for a type that is not a number. */
const char *pgv_number_text(unsigned oid, const char *v, int len, char *buf, size_t size);
int pgv_is_text(unsigned oid); /* text, bytea and the like: bytes as they are */

#endif
