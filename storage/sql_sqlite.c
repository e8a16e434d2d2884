/* sql_sqlite.c: the SQLite driver behind storage/sql.h, a thin wrapper over
 * sqlite3. Everything SQLite-specific about a connection lives here: WAL,
 * FULL sync, foreign keys on, the busy handler, BEGIN IMMEDIATE. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "storage/sql_driver.h"

struct lite_conn {
    struct sql_conn base;
    sqlite3 *db;
    void (*wake)(void *arg); /* the checkpointer's, or NULL: checkpoint here */
    void *wake_arg;
};

struct lite_stmt {
    struct sql_stmt base;
    sqlite3_stmt *st;
};

static sqlite3 *db_of(struct sql_conn *c)
{
    return ((struct lite_conn *)c)->db;
}

static sqlite3_stmt *st_of(struct sql_stmt *st)
{
    return ((struct lite_stmt *)st)->st;
}

static _Thread_local double checkpoint_ms;

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

double sql_checkpoint_ms_take(void)
{
    double ms = checkpoint_ms;
    checkpoint_ms = 0;
    return ms;
}

/* SQLite's own auto-checkpoint (a PASSIVE one past 1000 WAL pages), timed
 * (installing a WAL hook replaces it), or handed to the checkpointer. */
static int checkpoint_hook(void *arg, sqlite3 *c, const char *name, int pages)
{
    struct lite_conn *lc = arg;
    if (pages < 1000)
        return SQLITE_OK;
    if (lc->wake && pages < SQL_WAL_BACKLOG) {
        lc->wake(lc->wake_arg);
        return SQLITE_OK;
    }
    double t0 = mono_ms();
    sqlite3_wal_checkpoint_v2(c, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    checkpoint_ms += mono_ms() - t0;
    return SQLITE_OK;
}

void sql_lite_set_checkpointer(struct sql_conn *c, void (*wake)(void *arg), void *arg)
{
    struct lite_conn *lc = (struct lite_conn *)c;
    lc->wake = wake;
    lc->wake_arg = arg;
}

int sql_lite_checkpoint(struct sql_conn *c)
{
    int rc = sqlite3_wal_checkpoint_v2(db_of(c), NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return rc == SQLITE_OK ? 0 : -1;
}

/* For writers in other processes (the CLI, a second server on the same data
 * dir by mistake) and autocommit writes: short sleeps, up to 10 s in all. */
static int busy_wait(void *arg, int count)
{
    (void)arg;
    if (count >= 20000)
        return 0;
    struct timespec ts = {0, 500 * 1000};
    nanosleep(&ts, NULL);
    return 1;
}

static int lite_exec(struct sql_conn *c, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db_of(c), sql, NULL, NULL, &msg) != SQLITE_OK) {
        sql_set_error(c, "%s", msg ? msg : sqlite3_errmsg(db_of(c)));
        sqlite3_free(msg);
        return -1;
    }
    c->changes = sqlite3_changes(db_of(c));
    return 0;
}

/* FULL sync: an acknowledged add must survive power loss, not just kill -9. */
static int lite_open(const char *path, struct sql_conn **out, char *errbuf, size_t errlen)
{
    struct lite_conn *lc = calloc(1, sizeof *lc);
    if (!lc) {
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    lc->base.drv = &sql_sqlite_driver;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &lc->db, flags, NULL) != SQLITE_OK) {
        snprintf(errbuf, errlen, "cannot open database %s: %s", path,
                 lc->db ? sqlite3_errmsg(lc->db) : "out of memory");
        sqlite3_close(lc->db);
        free(lc);
        return -1;
    }
    sqlite3_busy_handler(lc->db, busy_wait, NULL);
    if (lite_exec(&lc->base, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                             " PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;") != 0) {
        snprintf(errbuf, errlen, "cannot open database %s: %s", path, lc->base.err);
        sqlite3_close(lc->db);
        free(lc);
        return -1;
    }
    sqlite3_wal_hook(lc->db, checkpoint_hook, lc);
    *out = &lc->base;
    return 0;
}

static void lite_close(struct sql_conn *c)
{
    sqlite3_close_v2(db_of(c));
    free(c);
}

static int lite_in_txn(struct sql_conn *c)
{
    return !sqlite3_get_autocommit(db_of(c));
}

/* IMMEDIATE: take the write lock now, not at the first write, so two
 * writers never deadlock upgrading their read locks. */
static int lite_begin(struct sql_conn *c)
{
    return lite_exec(c, "BEGIN IMMEDIATE");
}

/* A failed COMMIT (SQLITE_FULL, an I/O error) leaves the transaction open:
 * roll it back here so the caller's connection is clean either way. */
static int lite_commit(struct sql_conn *c)
{
    int rc = lite_exec(c, "COMMIT");
    if (rc != 0 && lite_in_txn(c))
        sqlite3_exec(db_of(c), "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static void lite_rollback(struct sql_conn *c)
{
    if (lite_in_txn(c))
        sqlite3_exec(db_of(c), "ROLLBACK", NULL, NULL, NULL);
}

static struct sql_stmt *lite_prepare(struct sql_conn *c, const char *sql)
{
    struct lite_stmt *ls = calloc(1, sizeof *ls);
    if (!ls) {
        sql_set_error(c, "out of memory");
        return NULL;
    }
    if (sqlite3_prepare_v2(db_of(c), sql, -1, &ls->st, NULL) != SQLITE_OK) {
        sql_set_error(c, "%s", sqlite3_errmsg(db_of(c)));
        free(ls);
        return NULL;
    }
    ls->base.conn = c;
    return &ls->base;
}

static void lite_finalize(struct sql_stmt *st)
{
    sqlite3_finalize(st_of(st));
    free(st);
}

static void lite_reset(struct sql_stmt *st)
{
    sqlite3_reset(st_of(st));
}

static enum sql_rc lite_step(struct sql_stmt *st)
{
    struct sql_conn *c = st->conn;
    int rc = sqlite3_step(st_of(st));
    if (rc == SQLITE_ROW)
        return SQL_ROW;
    if (rc == SQLITE_DONE) {
        c->changes = sqlite3_changes(db_of(c));
        return SQL_DONE;
    }
    sql_set_error(c, "%s", sqlite3_errmsg(db_of(c)));
    return (rc & 0xff) == SQLITE_CONSTRAINT ? SQL_CONSTRAINT : SQL_ERROR;
}

static int lite_bind(struct sql_stmt *st, int i, int kind, int64_t iv, double dv, const void *p,
                     size_t n)
{
    sqlite3_stmt *s = st_of(st);
    int rc;
    switch (kind) {
    case SQLB_INT:
        rc = sqlite3_bind_int64(s, i, iv);
        break;
    case SQLB_DOUBLE:
        rc = sqlite3_bind_double(s, i, dv);
        break;
    case SQLB_TEXT:
        rc = sqlite3_bind_text(s, i, p, -1, SQLITE_STATIC);
        break;
    case SQLB_BLOB:
        rc = n > 0x7fffffff ? SQLITE_TOOBIG : sqlite3_bind_blob(s, i, p, (int)n, SQLITE_STATIC);
        break;
    default:
        rc = sqlite3_bind_null(s, i);
    }
    return rc == SQLITE_OK ? 0 : -1;
}

static int lite_is_null(struct sql_stmt *st, int col)
{
    return sqlite3_column_type(st_of(st), col) == SQLITE_NULL;
}

static int64_t lite_int64(struct sql_stmt *st, int col)
{
    return sqlite3_column_int64(st_of(st), col);
}

static double lite_double(struct sql_stmt *st, int col)
{
    return sqlite3_column_double(st_of(st), col);
}

static const char *lite_text(struct sql_stmt *st, int col)
{
    return (const char *)sqlite3_column_text(st_of(st), col);
}

static const void *lite_blob(struct sql_stmt *st, int col)
{
    return sqlite3_column_blob(st_of(st), col);
}

static int lite_bytes(struct sql_stmt *st, int col)
{
    return sqlite3_column_bytes(st_of(st), col);
}

const struct sql_driver sql_sqlite_driver = {
    .backend = SQL_SQLITE,
    .open = lite_open,
    .close = lite_close,
    .exec = lite_exec,
    .begin = lite_begin,
    .commit = lite_commit,
    .rollback = lite_rollback,
    .in_txn = lite_in_txn,
    .prepare = lite_prepare,
    .finalize = lite_finalize,
    .reset = lite_reset,
    .step = lite_step,
    .bind = lite_bind,
    .is_null = lite_is_null,
    .col_int64 = lite_int64,
    .col_double = lite_double,
    .col_text = lite_text,
    .col_blob = lite_blob,
    .col_bytes = lite_bytes,
};
