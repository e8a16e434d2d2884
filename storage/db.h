/* db.h: the SQLite metadata store. One database file under data_dir, WAL
 * mode, foreign keys on, schema versioned by migrations run at open. Each
 * thread gets its own connection (SQLite connections are not to be shared
 * across threads without a mutex; WAL lets readers run beside one writer). */
#ifndef IMGSEARCH_DB_H
#define IMGSEARCH_DB_H

#include <sqlite3.h>
#include <stddef.h>

enum db_status { DB_OK = 0, DB_NOT_FOUND, DB_EXISTS, DB_ERROR };

struct db;

int db_open(const char *path, struct db **out, char *errbuf, size_t errlen);
/* Closes every thread's connection; no thread may use the db afterwards. */
void db_close(struct db *db);

/* The calling thread's connection, opened on first use; NULL on failure. */
sqlite3 *db_conn(struct db *db);

/* Current schema version (number of applied migrations). */
int db_schema_version(struct db *db);

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK on the thread's connection. A failed
 * COMMIT (SQLITE_FULL on a full disk, an I/O error) leaves the transaction
 * open: call db_rollback, which is a no-op when nothing is open. */
int db_begin(sqlite3 *c);
int db_commit(sqlite3 *c);
void db_rollback(sqlite3 *c);

/* Text of the calling thread's last failed BEGIN/COMMIT/exec, or of the
 * failed statement a db_rollback followed ("database or disk is full"). */
const char *db_last_error(void);

/* Where this thread's writes waited since the last call, in ms: for the
 * writer mutex, in COMMIT (the WAL's fsync) and in the checkpoints that
 * follow a commit once the WAL passes 1000 pages. Returns and resets. */
struct db_write_times {
    double wait_ms, commit_ms, checkpoint_ms;
};
void db_write_times_take(struct db_write_times *out);

/* Prepares (cached per connection by SQLite's own statement cache is not
 * available, so callers finalize). Logs the error on failure. */
sqlite3_stmt *db_prepare(sqlite3 *c, const char *sql);

#endif
