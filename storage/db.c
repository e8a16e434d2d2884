/* db.c: one connection per thread to the metadata database, migrations at
 * open, the write transactions of this process, and (SQLite) the thread
 * that checkpoints the WAL off the writers' path. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "storage/db.h"
#include "storage/migrate.h"

struct conn_node {
    struct sql_conn *c;
    struct conn_node *next;
};

struct db {
    enum sql_backend backend;
    char *target;
    char *label; /* names the database in errors; never the DSN (a password) */
    pthread_key_t key;
    pthread_mutex_t lock; /* guards conns */
    struct conn_node *conns;
    /* SQLite: the checkpointer. A commit that leaves 1000+ WAL pages wakes
     * it instead of checkpointing (fsyncs of the database file) while it
     * holds the writer mutex, where every other write waited for it. */
    pthread_t ckpt;
    int ckpt_running;           /* set once, before the db is handed out */
    int ckpt_wanted, ckpt_stop; /* under ckpt_mu */
    pthread_mutex_t ckpt_mu;
    pthread_cond_t ckpt_cv;
    _Atomic long ckpt_done;
};

/* The text of this thread's last failed write ("database or disk is full"),
 * kept past the ROLLBACK that clears the driver's own, so the request that
 * failed can log why. */
static _Thread_local char last_err[512];

static void note_error(const char *msg)
{
    snprintf(last_err, sizeof last_err, "%s", msg ? msg : "unknown database error");
}

const char *db_last_error(void)
{
    return last_err[0] ? last_err : "no error";
}

/* Writers of this process queue on one mutex rather than on the database's
 * lock: SQLite's busy handler sleeps between retries, so under concurrent
 * writes a 1 ms update could wait 20 ms, and an HTTP thread sleeping there
 * holds up the other connections it serves. A mutex wakes the next writer
 * as soon as the last one commits. On PostgreSQL it also keeps one node's
 * writers from piling up on the same instance's row lock; other nodes'
 * writers wait on that row lock. */
static pthread_mutex_t write_mu = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local int holds_write_mu;
static _Thread_local struct db_write_times times;

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void db_write_times_take(struct db_write_times *out)
{
    *out = times;
    out->checkpoint_ms = sql_checkpoint_ms_take();
    times = (struct db_write_times){0, 0, 0};
}

static void wake_checkpointer(void *arg)
{
    struct db *db = arg;
    pthread_mutex_lock(&db->ckpt_mu);
    db->ckpt_wanted = 1;
    pthread_cond_signal(&db->ckpt_cv);
    pthread_mutex_unlock(&db->ckpt_mu);
}

static void *checkpointer(void *arg)
{
    struct db *db = arg;
    pthread_mutex_lock(&db->ckpt_mu);
    while (!db->ckpt_stop) {
        if (!db->ckpt_wanted) {
            pthread_cond_wait(&db->ckpt_cv, &db->ckpt_mu);
            continue;
        }
        db->ckpt_wanted = 0;
        pthread_mutex_unlock(&db->ckpt_mu);
        struct sql_conn *c = db_conn(db);
        if (c && sql_checkpoint(c) == 0)
            atomic_fetch_add(&db->ckpt_done, 1);
        pthread_mutex_lock(&db->ckpt_mu);
    }
    pthread_mutex_unlock(&db->ckpt_mu);
    return NULL;
}

long db_background_checkpoints(struct db *db)
{
    return atomic_load(&db->ckpt_done);
}

void db_thread_done(struct db *db)
{
    struct sql_conn *c = pthread_getspecific(db->key);
    if (!c)
        return;
    pthread_setspecific(db->key, NULL);
    pthread_mutex_lock(&db->lock);
    for (struct conn_node **pp = &db->conns; *pp; pp = &(*pp)->next) {
        if ((*pp)->c == c) {
            struct conn_node *n = *pp;
            *pp = n->next;
            free(n);
            break;
        }
    }
    pthread_mutex_unlock(&db->lock);
    sql_close(c);
}

/* Only the thread that sets it reads its key, so a connection that failed
 * to open is retried by that thread on its next call. */
struct sql_conn *db_conn(struct db *db)
{
    struct sql_conn *c = pthread_getspecific(db->key);
    if (c)
        return c;
    char err[512];
    if (sql_open(db->backend, db->target, &c, err, sizeof err) != 0) {
        note_error(err);
        fprintf(stderr, "%s: %s\n", sql_backend_name(db->backend), err);
        return NULL;
    }
    struct conn_node *n = malloc(sizeof *n);
    if (!n) {
        sql_close(c);
        return NULL;
    }
    n->c = c;
    pthread_mutex_lock(&db->lock);
    n->next = db->conns;
    db->conns = n;
    pthread_mutex_unlock(&db->lock);
    pthread_setspecific(db->key, c);
    if (db->ckpt_running)
        sql_set_checkpointer(c, wake_checkpointer, db);
    return c;
}

int db_schema_version(struct db *db)
{
    struct sql_conn *c = db_conn(db);
    return c ? migrate_version(c) : -1;
}

enum sql_backend db_backend(const struct db *db)
{
    return db->backend;
}

int db_open_backend(enum sql_backend backend, const char *target, struct db **out, char *errbuf,
                    size_t errlen)
{
    struct db *db = calloc(1, sizeof *db);
    if (!db || !(db->target = strdup(target)) ||
        !(db->label = strdup(backend == SQL_SQLITE ? target : "PostgreSQL"))) {
        if (db)
            free(db->target);
        free(db);
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    db->backend = backend;
    pthread_mutex_init(&db->lock, NULL);
    pthread_mutex_init(&db->ckpt_mu, NULL);
    pthread_cond_init(&db->ckpt_cv, NULL);
    if (pthread_key_create(&db->key, NULL) != 0) {
        free(db->target);
        free(db->label);
        free(db);
        snprintf(errbuf, errlen, "pthread_key_create failed");
        return -1;
    }
    struct sql_conn *c = NULL;
    if (sql_open(backend, target, &c, errbuf, errlen) != 0) {
        db_close(db);
        return -1;
    }
    /* The opening thread keeps this connection as its own. */
    struct conn_node *n = malloc(sizeof *n);
    if (!n) {
        sql_close(c);
        db_close(db);
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    n->c = c;
    n->next = NULL;
    db->conns = n;
    pthread_setspecific(db->key, c);
    if (migrate_run(c, db->label, errbuf, errlen) != 0) {
        db_close(db);
        return -1;
    }
    /* Without the thread, commits checkpoint as SQLite does by itself. */
    if (backend == SQL_SQLITE && pthread_create(&db->ckpt, NULL, checkpointer, db) == 0) {
        db->ckpt_running = 1;
        sql_set_checkpointer(c, wake_checkpointer, db);
    }
    *out = db;
    return 0;
}

int db_open(const char *path, struct db **out, char *errbuf, size_t errlen)
{
    return db_open_backend(SQL_SQLITE, path, out, errbuf, errlen);
}

void db_close(struct db *db)
{
    if (!db)
        return;
    if (db->ckpt_running) {
        pthread_mutex_lock(&db->ckpt_mu);
        db->ckpt_stop = 1;
        pthread_cond_signal(&db->ckpt_cv);
        pthread_mutex_unlock(&db->ckpt_mu);
        pthread_join(db->ckpt, NULL);
    }
    struct conn_node *n = db->conns;
    while (n) {
        struct conn_node *next = n->next;
        sql_close(n->c);
        free(n);
        n = next;
    }
    pthread_setspecific(db->key, NULL);
    pthread_key_delete(db->key);
    pthread_mutex_destroy(&db->lock);
    pthread_mutex_destroy(&db->ckpt_mu);
    pthread_cond_destroy(&db->ckpt_cv);
    free(db->target);
    free(db->label);
    free(db);
}

static void release_write_mu(void)
{
    if (holds_write_mu) {
        holds_write_mu = 0;
        pthread_mutex_unlock(&write_mu);
    }
}

int db_begin(struct sql_conn *c)
{
    if (!holds_write_mu) {
        /* As long as SQLite's own busy timeout was: a writer stuck behind a
         * huge transaction gives up with an error instead of piling up. */
        double t0 = mono_ms();
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 10;
        if (pthread_mutex_timedlock(&write_mu, &until) != 0) {
            note_error("database is locked (another write took over 10 s)");
            return -1;
        }
        holds_write_mu = 1;
        times.wait_ms += mono_ms() - t0;
    }
    if (sql_begin(c) != 0) {
        note_error(sql_errmsg(c));
        fprintf(stderr, "%s: %s\n", sql_backend_name(sql_backend_of(c)), last_err);
        release_write_mu();
        return -1;
    }
    return 0;
}

/* A failed COMMIT is rolled back by the driver, so the mutex is never left
 * held; callers' own db_rollback after it finds nothing to do. */
int db_commit(struct sql_conn *c)
{
    double t0 = mono_ms();
    int rc = sql_commit(c);
    times.commit_ms += mono_ms() - t0;
    if (rc != 0) {
        note_error(sql_errmsg(c));
        fprintf(stderr, "%s: %s\n", sql_backend_name(sql_backend_of(c)), last_err);
        if (sql_in_txn(c))
            sql_rollback(c);
    }
    release_write_mu();
    return rc;
}

void db_rollback(struct sql_conn *c)
{
    /* A failed step leaves its error on the connection until the next call. */
    if (sql_errmsg(c))
        note_error(sql_errmsg(c));
    sql_rollback(c);
    release_write_mu();
}
