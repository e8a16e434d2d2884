/* sql.h: the one SQL interface the storage code speaks, with a driver per
 * back end (storage/sql_sqlite.c, storage/sql_pg.c). It is SQLite's own
 * step/column model, because that is what the callers were written
 * against: prepare with `?` (or `?N`) placeholders, bind, step through
 * rows, read columns. Statements are written in the SQL both back ends
 * accept (RETURNING, ON CONFLICT, no PRAGMA, integer booleans); what
 * differs by nature (transactions, errors, placeholders) is the driver's.
 *
 * A connection belongs to one thread at a time (storage/db.c keeps one per
 * thread). Bound text and blobs are borrowed: they must stay valid until
 * the next sql_step, sql_reset or sql_finalize of that statement. Column
 * values are valid until the next step, reset or finalize. */
#ifndef IMGSEARCH_SQL_H
#define IMGSEARCH_SQL_H

#include <stddef.h>
#include <stdint.h>

enum sql_backend { SQL_SQLITE = 0, SQL_POSTGRES };

/* sql_step's answer. CONSTRAINT: a unique, primary or foreign key, NOT
 * NULL or CHECK constraint refused the row (the statement had no effect);
 * ERROR: anything else (full disk, lost connection, bad SQL), with text
 * in sql_errmsg. */
enum sql_rc { SQL_ROW = 1, SQL_DONE, SQL_CONSTRAINT, SQL_ERROR };

struct sql_conn;
struct sql_stmt;

/* target: a file path (SQLite) or a libpq conninfo string or URI
 * (PostgreSQL). On failure errbuf says why; *out stays NULL. */
int sql_open(enum sql_backend b, const char *target, struct sql_conn **out, char *errbuf,
             size_t errlen);
void sql_close(struct sql_conn *c);
enum sql_backend sql_backend_of(const struct sql_conn *c);
const char *sql_backend_name(enum sql_backend b); /* "sqlite" or "postgres" */

/* Runs one or more statements that return no rows we read. 0 or -1. */
int sql_exec(struct sql_conn *c, const char *sql);

/* A write transaction: BEGIN IMMEDIATE on SQLite, BEGIN (READ COMMITTED)
 * on PostgreSQL. sql_commit fails when the transaction did not commit
 * (including PostgreSQL's silent rollback of an aborted transaction);
 * sql_rollback is a no-op outside a transaction. */
int sql_begin(struct sql_conn *c);
int sql_commit(struct sql_conn *c);
void sql_rollback(struct sql_conn *c);
int sql_in_txn(struct sql_conn *c);

/* Time the calling thread spent in SQLite WAL checkpoints since the last
 * call, in ms (the driver runs SQLite's auto-checkpoint itself, past 1000
 * WAL pages after a commit, to time it); then reset. PostgreSQL's server
 * checkpoints on its own: nothing to count there. */
double sql_checkpoint_ms_take(void);

/* SQLite: instead of checkpointing in the committing thread, a commit that
 * leaves 1000+ WAL pages calls wake(arg), for a thread that then calls
 * sql_checkpoint; past SQL_WAL_BACKLOG pages (the checkpoints fall behind)
 * the committing thread checkpoints too, so the WAL stays bounded. A no-op
 * on PostgreSQL. */
#define SQL_WAL_BACKLOG 4000
void sql_set_checkpointer(struct sql_conn *c, void (*wake)(void *arg), void *arg);
/* A PASSIVE checkpoint now (it never waits for writers or readers); 0, or
 * -1. 0 on PostgreSQL. */
int sql_checkpoint(struct sql_conn *c);

/* Rows changed by the last completed INSERT, UPDATE or DELETE. */
long long sql_changes(struct sql_conn *c);

/* The last failure's text on this connection, or NULL when the last call
 * succeeded (a failed step leaves it until the next prepare, step or
 * exec, so a rollback after it can say why). */
const char *sql_errmsg(struct sql_conn *c);

/* NULL on failure (logged to stderr with the SQL). */
struct sql_stmt *sql_prepare(struct sql_conn *c, const char *sql);
void sql_finalize(struct sql_stmt *st);
/* Back to before the first step; bindings are kept. */
void sql_reset(struct sql_stmt *st);
enum sql_rc sql_step(struct sql_stmt *st);

/* Parameters are 1-based; binding past the statement's parameters is
 * refused with -1 and changes nothing. Text NULL binds SQL NULL. */
int sql_bind_int64(struct sql_stmt *st, int i, int64_t v);
int sql_bind_double(struct sql_stmt *st, int i, double v);
int sql_bind_text(struct sql_stmt *st, int i, const char *s);
int sql_bind_blob(struct sql_stmt *st, int i, const void *p, size_t n);
int sql_bind_null(struct sql_stmt *st, int i);

/* Columns are 0-based, read from the current row. Numbers are converted
 * as SQLite converts them; text of a NULL is NULL, a number of a NULL 0. */
int sql_column_is_null(struct sql_stmt *st, int col);
int64_t sql_column_int64(struct sql_stmt *st, int col);
int sql_column_int(struct sql_stmt *st, int col);
double sql_column_double(struct sql_stmt *st, int col);
const char *sql_column_text(struct sql_stmt *st, int col);
const void *sql_column_blob(struct sql_stmt *st, int col);
int sql_column_bytes(struct sql_stmt *st, int col);

/* Room for element n of the array v (*cap elements, each elem bytes):
 * v itself while n < *cap, else v grown (doubled; *cap updated), or NULL
 * when out of memory, v untouched. For the row loops of storage/. */
void *sql_grow(void *v, size_t n, size_t *cap, size_t elem);

/* Steps st to its end, appending the first column of each row to *v (*n
 * used of *cap, grown as needed), and finalizes st. 0, or -1 on a failed
 * step or out of memory (the rows read so far stay in *v). */
int sql_collect_int64(struct sql_stmt *st, int64_t **v, size_t *n, size_t *cap);

#endif
