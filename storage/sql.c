/* sql.c: dispatch from the storage/sql.h calls to the connection's driver,
 * and the per-connection error text every driver shares. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include "storage/sql_driver.h"

static const struct sql_driver *driver(enum sql_backend b)
{
    return b == SQL_POSTGRES ? &sql_pg_driver : &sql_sqlite_driver;
}

const char *sql_backend_name(enum sql_backend b)
{
    return b == SQL_POSTGRES ? "postgres" : "sqlite";
}

void sql_set_error(struct sql_conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    c->failed = 1;
}

void sql_clear_error(struct sql_conn *c)
{
    c->failed = 0;
    c->err[0] = '\0';
}

int sql_open(enum sql_backend b, const char *target, struct sql_conn **out, char *errbuf,
             size_t errlen)
{
    *out = NULL;
    return driver(b)->open(target, out, errbuf, errlen);
}

void sql_close(struct sql_conn *c)
{
    if (c)
        c->drv->close(c);
}

enum sql_backend sql_backend_of(const struct sql_conn *c)
{
    return c->drv->backend;
}

int sql_exec(struct sql_conn *c, const char *sql)
{
    sql_clear_error(c);
    int rc = c->drv->exec(c, sql);
    if (rc != 0)
        fprintf(stderr, "%s: %s\n", sql_backend_name(c->drv->backend), c->err);
    return rc;
}

int sql_begin(struct sql_conn *c)
{
    sql_clear_error(c);
    return c->drv->begin(c);
}

int sql_commit(struct sql_conn *c)
{
    sql_clear_error(c);
    return c->drv->commit(c);
}

/* Keeps the error that made the caller roll back. */
void sql_rollback(struct sql_conn *c)
{
    c->drv->rollback(c);
}

int sql_in_txn(struct sql_conn *c)
{
    return c->drv->in_txn(c);
}

long long sql_changes(struct sql_conn *c)
{
    return c->changes;
}

const char *sql_errmsg(struct sql_conn *c)
{
    return c->failed ? c->err : NULL;
}

struct sql_stmt *sql_prepare(struct sql_conn *c, const char *sql)
{
    sql_clear_error(c);
    struct sql_stmt *st = c->drv->prepare(c, sql);
    if (!st)
        fprintf(stderr, "%s: prepare failed: %s (%s)\n", sql_backend_name(c->drv->backend), c->err,
                sql);
    return st;
}

void sql_finalize(struct sql_stmt *st)
{
    if (st)
        st->conn->drv->finalize(st);
}

void sql_reset(struct sql_stmt *st)
{
    st->conn->drv->reset(st);
}

/* Errors are logged here (a constraint is an answer, not an error): a
 * read that fails becomes a 500 whose cause is otherwise lost. */
enum sql_rc sql_step(struct sql_stmt *st)
{
    sql_clear_error(st->conn);
    enum sql_rc rc = st->conn->drv->step(st);
    if (rc == SQL_ERROR)
        fprintf(stderr, "%s: %s\n", sql_backend_name(st->conn->drv->backend), st->conn->err);
    return rc;
}

int sql_bind_int64(struct sql_stmt *st, int i, int64_t v)
{
    return st->conn->drv->bind(st, i, SQLB_INT, v, 0, NULL, 0);
}

int sql_bind_double(struct sql_stmt *st, int i, double v)
{
    return st->conn->drv->bind(st, i, SQLB_DOUBLE, 0, v, NULL, 0);
}

int sql_bind_text(struct sql_stmt *st, int i, const char *s)
{
    return st->conn->drv->bind(st, i, s ? SQLB_TEXT : SQLB_NULL, 0, 0, s, 0);
}

int sql_bind_blob(struct sql_stmt *st, int i, const void *p, size_t n)
{
    return st->conn->drv->bind(st, i, p ? SQLB_BLOB : SQLB_NULL, 0, 0, p, n);
}

int sql_bind_null(struct sql_stmt *st, int i)
{
    return st->conn->drv->bind(st, i, SQLB_NULL, 0, 0, NULL, 0);
}

int sql_column_is_null(struct sql_stmt *st, int col)
{
    return st->conn->drv->is_null(st, col);
}

int64_t sql_column_int64(struct sql_stmt *st, int col)
{
    return st->conn->drv->col_int64(st, col);
}

int sql_column_int(struct sql_stmt *st, int col)
{
    return (int)st->conn->drv->col_int64(st, col);
}

double sql_column_double(struct sql_stmt *st, int col)
{
    return st->conn->drv->col_double(st, col);
}

const char *sql_column_text(struct sql_stmt *st, int col)
{
    return st->conn->drv->col_text(st, col);
}

const void *sql_column_blob(struct sql_stmt *st, int col)
{
    return st->conn->drv->col_blob(st, col);
}

int sql_column_bytes(struct sql_stmt *st, int col)
{
    return st->conn->drv->col_bytes(st, col);
}

void *sql_grow(void *v, size_t n, size_t *cap, size_t elem)
{
    if (n < *cap)
        return v;
    size_t nc = *cap ? *cap * 2 : 16;
    void *g = realloc(v, nc * elem);
    if (g)
        *cap = nc;
    return g;
}

int sql_collect_int64(struct sql_stmt *st, int64_t **v, size_t *n, size_t *cap)
{
    int s, rc = 0;
    while ((s = sql_step(st)) == SQL_ROW) {
        int64_t *g = sql_grow(*v, *n, cap, sizeof *g);
        if (!g) {
            rc = -1;
            break;
        }
        *v = g;
        (*v)[(*n)++] = sql_column_int64(st, 0);
    }
    if (rc == 0 && s != SQL_DONE)
        rc = -1;
    sql_finalize(st);
    return rc;
}

void sql_set_checkpointer(struct sql_conn *c, void (*wake)(void *arg), void *arg)
{
    if (c->drv == &sql_sqlite_driver)
        sql_lite_set_checkpointer(c, wake, arg);
}

int sql_checkpoint(struct sql_conn *c)
{
    return c->drv == &sql_sqlite_driver ? sql_lite_checkpoint(c) : 0;
}
