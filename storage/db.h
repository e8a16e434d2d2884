/* db.h: the metadata store, on SQLite (one file under data_dir, the
 * embedded default) or PostgreSQL (a database several nodes can share),
 * behind one interface: storage/sql.h. Schema versioned by migrations run
 * at open. Each thread gets its own connection (neither an sqlite3 handle
 * nor a PGconn is to be shared across threads without a mutex; WAL lets
 * SQLite's readers run beside one writer). */
#ifndef IMGSEARCH_DB_H
#define IMGSEARCH_DB_H

#include <stddef.h>
#include "storage/sql.h"

enum db_status { DB_OK = 0, DB_NOT_FOUND, DB_EXISTS, DB_ERROR };

struct db;

/* target: the database file (SQLite) or a libpq conninfo string or URI
 * (PostgreSQL). Connects, migrates, and fails with errbuf set when either
 * fails. */
int db_open_backend(enum sql_backend backend, const char *target, struct db **out, char *errbuf,
                    size_t errlen);
/* SQLite at path. */
int db_open(const char *path, struct db **out, char *errbuf, size_t errlen);
/* Closes every thread's connection; no thread may use the db afterwards. */
void db_close(struct db *db);

/* SQLite: WAL checkpoints the db's checkpointer thread has run. */
long db_background_checkpoints(struct db *db);

enum sql_backend db_backend(const struct db *db);

/* The calling thread's connection, opened on first use (and again after a
 * failed open: a PostgreSQL server that was down may be back); NULL on
 * failure, with the reason in db_last_error. */
struct sql_conn *db_conn(struct db *db);
/* Closes the calling thread's connection, if it has one: for a background
 * thread about to exit (otherwise it stays open until db_close). */
void db_thread_done(struct db *db);

/* Current schema version (number of applied migrations). */
int db_schema_version(struct db *db);

/* BEGIN / COMMIT / ROLLBACK on the thread's connection, with the writers
 * of this process queued on one mutex. A failed COMMIT (a full disk, an I/O
 * error, a lost connection) is rolled back; db_rollback after it is a
 * no-op, as it is when nothing is open. */
int db_begin(struct sql_conn *c);
int db_commit(struct sql_conn *c);
void db_rollback(struct sql_conn *c);

/* Text of the calling thread's last failed BEGIN/COMMIT/exec or
 * connection, or of the failed statement a db_rollback followed
 * ("database or disk is full"). */
const char *db_last_error(void);

/* Where this thread's writes waited since the last call, in ms: for the
 * writer mutex, in COMMIT (the WAL's fsync; PostgreSQL's round trip and
 * its WAL flush) and in SQLite checkpoints run by the committing thread
 * (only when the checkpointer thread is missing or SQL_WAL_BACKLOG pages
 * behind; none on PostgreSQL: its server checkpoints).
 * Returns and resets. */
struct db_write_times {
    double wait_ms, commit_ms, checkpoint_ms;
};
void db_write_times_take(struct db_write_times *out);

#endif
