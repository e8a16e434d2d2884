/* db.c: SQLite connections (one per thread), pragmas and migrations. */
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include "storage/db.h"
#include "storage/schema.h"

struct conn_node {
    sqlite3 *c;
    struct conn_node *next;
};

struct db {
    char *path;
    pthread_key_t key;
    pthread_mutex_t lock; /* guards conns */
    struct conn_node *conns;
};

/* The text of this thread's last failed write ("database or disk is full"),
 * kept past the ROLLBACK that clears SQLite's own, so the request that failed
 * can log why. */
static _Thread_local char last_err[256];

static void note_error(const char *msg)
{
    snprintf(last_err, sizeof last_err, "%s", msg ? msg : "unknown SQLite error");
}

const char *db_last_error(void)
{
    return last_err[0] ? last_err : "no error";
}

static int exec(sqlite3 *c, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(c, sql, NULL, NULL, &msg) != SQLITE_OK) {
        note_error(msg ? msg : sqlite3_errmsg(c));
        fprintf(stderr, "sqlite: %s\n", last_err);
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* Writers of this process queue on one mutex rather than on SQLite's lock:
 * SQLite's own busy handler sleeps 1, 2, 5, 10 ... 25 ms between retries, so
 * under concurrent writes a 1 ms update could wait 20 ms, and an HTTP thread
 * sleeping there holds up the other connections it serves. A mutex wakes the
 * next writer as soon as the last one commits. */
static pthread_mutex_t write_mu = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local int holds_write_mu;
static _Thread_local struct db_write_times times;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void db_write_times_take(struct db_write_times *out)
{
    *out = times;
    times = (struct db_write_times){0, 0, 0};
}

/* SQLite's own auto-checkpoint (a PASSIVE one past 1000 WAL pages, run by
 * the committing connection), timed: installing a WAL hook replaces it. */
static int checkpoint_hook(void *arg, sqlite3 *c, const char *name, int pages)
{
    (void)arg;
    if (pages >= 1000) {
        double t0 = now_ms();
        sqlite3_wal_checkpoint_v2(c, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        times.checkpoint_ms += now_ms() - t0;
    }
    return SQLITE_OK;
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

/* FULL sync: an acknowledged add must survive power loss, not just kill -9. */
static sqlite3 *open_conn(const char *path)
{
    sqlite3 *c = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &c, flags, NULL) != SQLITE_OK) {
        fprintf(stderr, "sqlite: cannot open %s: %s\n", path, c ? sqlite3_errmsg(c) : "?");
        sqlite3_close(c);
        return NULL;
    }
    sqlite3_busy_handler(c, busy_wait, NULL);
    if (exec(c, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
                "PRAGMA temp_store=MEMORY;") != 0) {
        sqlite3_close(c);
        return NULL;
    }
    sqlite3_wal_hook(c, checkpoint_hook, NULL);
    return c;
}

sqlite3 *db_conn(struct db *db)
{
    sqlite3 *c = pthread_getspecific(db->key);
    if (c)
        return c;
    c = open_conn(db->path);
    if (!c)
        return NULL;
    struct conn_node *n = malloc(sizeof *n);
    if (!n) {
        sqlite3_close(c);
        return NULL;
    }
    n->c = c;
    pthread_mutex_lock(&db->lock);
    n->next = db->conns;
    db->conns = n;
    pthread_mutex_unlock(&db->lock);
    pthread_setspecific(db->key, c);
    return c;
}

int db_schema_version(struct db *db)
{
    sqlite3 *c = db_conn(db);
    sqlite3_stmt *st = c ? db_prepare(c, "PRAGMA user_version") : NULL;
    int v = -1;
    if (st && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int migrate(struct db *db, char *errbuf, size_t errlen)
{
    sqlite3 *c = db_conn(db);
    int v = db_schema_version(db);
    if (!c || v < 0) {
        snprintf(errbuf, errlen, "%s: cannot read the schema version", db->path);
        return -1;
    }
    if ((size_t)v > schema_count()) {
        snprintf(errbuf, errlen, "%s: schema version %d is newer than this server (%zu)", db->path,
                 v, schema_count());
        return -1;
    }
    for (size_t i = (size_t)v; i < schema_count(); i++) {
        char pragma[64];
        snprintf(pragma, sizeof pragma, "PRAGMA user_version=%zu;", i + 1);
        if (db_begin(c) != 0 || exec(c, schema_migration(i)) != 0 || exec(c, pragma) != 0 ||
            db_commit(c) != 0) {
            db_rollback(c);
            snprintf(errbuf, errlen, "%s: migration %zu failed: %s", db->path, i + 1,
                     sqlite3_errmsg(c));
            return -1;
        }
    }
    return 0;
}

int db_open(const char *path, struct db **out, char *errbuf, size_t errlen)
{
    struct db *db = calloc(1, sizeof *db);
    if (!db || !(db->path = strdup(path))) {
        free(db);
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_init(&db->lock, NULL);
    if (pthread_key_create(&db->key, NULL) != 0) {
        free(db->path);
        free(db);
        snprintf(errbuf, errlen, "pthread_key_create failed");
        return -1;
    }
    if (!db_conn(db)) {
        snprintf(errbuf, errlen, "cannot open database %s", path);
        db_close(db);
        return -1;
    }
    if (migrate(db, errbuf, errlen) != 0) {
        db_close(db);
        return -1;
    }
    *out = db;
    return 0;
}

void db_close(struct db *db)
{
    if (!db)
        return;
    struct conn_node *n = db->conns;
    while (n) {
        struct conn_node *next = n->next;
        sqlite3_close_v2(n->c);
        free(n);
        n = next;
    }
    pthread_key_delete(db->key);
    pthread_mutex_destroy(&db->lock);
    free(db->path);
    free(db);
}

static void release_write_mu(void)
{
    if (holds_write_mu) {
        holds_write_mu = 0;
        pthread_mutex_unlock(&write_mu);
    }
}

int db_begin(sqlite3 *c)
{
    if (!holds_write_mu) {
        /* As long as SQLite's own busy timeout was: a writer stuck behind a
         * huge transaction gives up with an error instead of piling up. */
        double t0 = now_ms();
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 10;
        if (pthread_mutex_timedlock(&write_mu, &until) != 0) {
            note_error("database is locked (another write took over 10 s)");
            return -1;
        }
        holds_write_mu = 1;
        times.wait_ms += now_ms() - t0;
    }
    if (exec(c, "BEGIN IMMEDIATE") != 0) {
        release_write_mu();
        return -1;
    }
    return 0;
}

/* A failed COMMIT is rolled back here, so the mutex is never left held;
 * callers' own db_rollback after it finds nothing to do. */
int db_commit(sqlite3 *c)
{
    double t0 = now_ms();
    int rc = exec(c, "COMMIT");
    times.commit_ms += now_ms() - t0;
    if (rc != 0 && !sqlite3_get_autocommit(c))
        sqlite3_exec(c, "ROLLBACK", NULL, NULL, NULL);
    release_write_mu();
    return rc;
}

void db_rollback(sqlite3 *c)
{
    int code = sqlite3_errcode(c);
    /* A failed step leaves its error on the connection until the next call. */
    if (code != SQLITE_OK && code != SQLITE_ROW && code != SQLITE_DONE)
        note_error(sqlite3_errmsg(c));
    if (!sqlite3_get_autocommit(c))
        sqlite3_exec(c, "ROLLBACK", NULL, NULL, NULL);
    release_write_mu();
}

sqlite3_stmt *db_prepare(sqlite3 *c, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "sqlite: prepare failed: %s (%s)\n", sqlite3_errmsg(c), sql);
        return NULL;
    }
    return st;
}
