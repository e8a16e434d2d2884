/* sql_driver.h: what a back end implements behind storage/sql.h. Only the
 * drivers and sql.c include it. Each driver's connection and statement
 * structs start with struct sql_conn / struct sql_stmt, so sql.c can
 * dispatch on c->drv and keep the error text in one place. */
#ifndef IMGSEARCH_SQL_DRIVER_H
#define IMGSEARCH_SQL_DRIVER_H

#include "storage/sql.h"

struct sql_driver {
    enum sql_backend backend;
    int (*open)(const char *target, struct sql_conn **out, char *errbuf, size_t errlen);
    void (*close)(struct sql_conn *c);
    int (*exec)(struct sql_conn *c, const char *sql);
    int (*begin)(struct sql_conn *c);
    int (*commit)(struct sql_conn *c);
    void (*rollback)(struct sql_conn *c);
    int (*in_txn)(struct sql_conn *c);
    struct sql_stmt *(*prepare)(struct sql_conn *c, const char *sql);
    void (*finalize)(struct sql_stmt *st);
    void (*reset)(struct sql_stmt *st);
    enum sql_rc (*step)(struct sql_stmt *st);
    /* kind: one of enum sql_bind_kind; p/n for text and blobs. */
    int (*bind)(struct sql_stmt *st, int i, int kind, int64_t iv, double dv, const void *p,
                size_t n);
    int (*is_null)(struct sql_stmt *st, int col);
    int64_t (*col_int64)(struct sql_stmt *st, int col);
    double (*col_double)(struct sql_stmt *st, int col);
    const char *(*col_text)(struct sql_stmt *st, int col);
    const void *(*col_blob)(struct sql_stmt *st, int col);
    int (*col_bytes)(struct sql_stmt *st, int col);
};

enum sql_bind_kind { SQLB_NULL = 0, SQLB_INT, SQLB_DOUBLE, SQLB_TEXT, SQLB_BLOB };

struct sql_conn {
    const struct sql_driver *drv;
    int failed; /* the last call failed; err says why */
    char err[512];
    long long changes;
};

struct sql_stmt {
    struct sql_conn *conn;
};

/* Records a failure on c (printf-style); sql_errmsg returns it. */
void sql_set_error(struct sql_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sql_clear_error(struct sql_conn *c);

/* sql_sqlite.c's side of sql_set_checkpointer and sql_checkpoint. */
void sql_lite_set_checkpointer(struct sql_conn *c, void (*wake)(void *arg), void *arg);
int sql_lite_checkpoint(struct sql_conn *c);

extern const struct sql_driver sql_sqlite_driver;
extern const struct sql_driver sql_pg_driver;

#endif
