/* jobs.c: import job rows and per-key progress (schema migrations 2, 5).
 * Counts are derived from import_keys, so they can never disagree with the
 * per-key markers that resume relies on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include "storage/instances.h"
#include "storage/jobs.h"

#define JOB_COLS                                                                                   \
    "j.id, j.job_id, j.project_id, j.instance, j.source, j.manifest, j.item_id_from, "             \
    "j.force, j.status, j.error, j.total, j.created_ms, j.started_ms, j.finished_ms, "             \
    "j.active_ms, j.listing_done, "                                                                \
    "(SELECT COUNT(*) FROM import_keys k WHERE k.job = j.id AND k.status = 1), "                   \
    "(SELECT COUNT(*) FROM import_keys k WHERE k.job = j.id AND k.status = 2) "

static char *col_dup(struct sql_stmt *st, int col)
{
    const char *t = sql_column_text(st, col);
    return t ? strdup((const char *)t) : NULL;
}

static void job_read(struct sql_stmt *st, struct job *j)
{
    memset(j, 0, sizeof *j);
    j->id = sql_column_int64(st, 0);
    snprintf(j->job_id, sizeof j->job_id, "%s", sql_column_text(st, 1));
    j->project_id = col_dup(st, 2);
    j->instance = col_dup(st, 3);
    j->source = col_dup(st, 4);
    j->manifest = col_dup(st, 5);
    j->item_id_from = col_dup(st, 6);
    j->force = sql_column_int(st, 7);
    j->status = col_dup(st, 8);
    j->error = col_dup(st, 9);
    j->total = sql_column_int64(st, 10);
    j->created_ms = sql_column_int64(st, 11);
    j->started_ms = sql_column_int64(st, 12);
    j->finished_ms = sql_column_int64(st, 13);
    j->active_ms = sql_column_int64(st, 14);
    j->listing_done = sql_column_int(st, 15);
    j->done = sql_column_int64(st, 16);
    j->failed = sql_column_int64(st, 17);
}

void job_free(struct job *j)
{
    if (!j)
        return;
    free(j->project_id);
    free(j->instance);
    free(j->source);
    free(j->manifest);
    free(j->item_id_from);
    free(j->status);
    free(j->error);
    memset(j, 0, sizeof *j);
}

void jobs_free(struct job *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        job_free(&list[i]);
    free(list);
}

void job_keys_free(struct job_key *k, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(k[i].key);
        free(k[i].url);
        free(k[i].meta);
    }
    free(k);
}

static void new_job_id(char out[40])
{
    unsigned char r[12];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        long long t = now_ms();
        memcpy(r, &t, sizeof t);
        memset(r + sizeof t, 0x5a, sizeof r - sizeof t);
    }
    strcpy(out, "imp-");
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(out + 4 + 2 * i, 3, "%02x", r[i]);
}

/* The job row; fills j->id, j->job_id, j->created_ms. */
static int insert_job(struct sql_conn *c, struct job *j, size_t total, int listing_done)
{
    new_job_id(j->job_id);
    j->created_ms = now_ms();
    struct sql_stmt *st = sql_prepare(c, "INSERT INTO import_jobs (job_id, project_id, instance,"
                                         " source, manifest, item_id_from, force, status, total,"
                                         " created_ms, listing_done)"
                                         " VALUES (?, ?, ?, ?, ?, ?, ?, 'QUEUED', ?, ?, ?)"
                                         " RETURNING id");
    if (!st)
        return -1;
    sql_bind_text(st, 1, j->job_id);
    sql_bind_text(st, 2, j->project_id);
    sql_bind_text(st, 3, j->instance);
    sql_bind_text(st, 4, j->source);
    sql_bind_text(st, 5, j->manifest); /* NULL: none */
    sql_bind_text(st, 6, j->item_id_from);
    sql_bind_int64(st, 7, j->force);
    sql_bind_int64(st, 8, (int64_t)total);
    sql_bind_int64(st, 9, j->created_ms);
    sql_bind_int64(st, 10, listing_done);
    int rc = sql_step(st);
    if (rc == SQL_ROW) {
        j->id = sql_column_int64(st, 0);
        rc = sql_step(st);
    }
    sql_finalize(st);
    if (rc != SQL_DONE)
        return -1;
    j->total = (long long)total;
    j->listing_done = listing_done;
    return 0;
}

/* Keys with seq first_seq, first_seq + 1, ... */
static int insert_keys(struct sql_conn *c, int64_t id, int64_t first_seq,
                       const struct job_key *keys, size_t n)
{
    struct sql_stmt *st =
        sql_prepare(c, "INSERT INTO import_keys (job, seq, key, url, meta) VALUES (?, ?, ?, ?, ?)");
    if (!st)
        return -1;
    for (size_t i = 0; i < n; i++) {
        sql_reset(st);
        sql_bind_int64(st, 1, id);
        sql_bind_int64(st, 2, first_seq + (int64_t)i);
        sql_bind_text(st, 3, keys[i].key);
        sql_bind_text(st, 4, keys[i].url);
        sql_bind_text(st, 5, keys[i].meta); /* NULL: no manifest line */
        if (sql_step(st) != SQL_DONE) {
            sql_finalize(st);
            return -1;
        }
    }
    sql_finalize(st);
    return 0;
}

enum db_status jobs_create(struct db *db, struct job *j, const struct job_key *keys, size_t n)
{
    struct sql_conn *c = db_conn(db);
    if (!c || db_begin(c) != 0)
        return DB_ERROR;
    if (insert_job(c, j, n, 1) != 0 || insert_keys(c, j->id, 0, keys, n) != 0 ||
        db_commit(c) != 0) {
        db_rollback(c);
        return DB_ERROR;
    }
    return DB_OK;
}

enum db_status jobs_create_listing(struct db *db, struct job *j)
{
    struct sql_conn *c = db_conn(db);
    if (!c || db_begin(c) != 0)
        return DB_ERROR;
    if (insert_job(c, j, 0, 0) != 0 || db_commit(c) != 0) {
        db_rollback(c);
        return DB_ERROR;
    }
    return DB_OK;
}

static enum db_status get_one(struct sql_stmt *st, struct job *out)
{
    if (!st)
        return DB_ERROR;
    int rc = sql_step(st);
    enum db_status s = DB_ERROR;
    if (rc == SQL_ROW) {
        job_read(st, out);
        s = DB_OK;
    } else if (rc == SQL_DONE) {
        s = DB_NOT_FOUND;
    }
    sql_finalize(st);
    return s;
}

enum db_status jobs_get(struct db *db, const char *project_id, const char *instance,
                        const char *job_id, struct job *out)
{
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st = c ? sql_prepare(c, "SELECT " JOB_COLS "FROM import_jobs j WHERE"
                                             " j.job_id = ? AND j.project_id = ?"
                                             " AND (CAST(?3 AS TEXT) IS NULL OR j.instance = ?3)")
                            : NULL;
    if (!st)
        return DB_ERROR;
    sql_bind_text(st, 1, job_id);
    sql_bind_text(st, 2, project_id);
    if (instance)
        sql_bind_text(st, 3, instance);
    return get_one(st, out);
}

enum db_status jobs_get_row(struct db *db, int64_t id, struct job *out)
{
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st =
        c ? sql_prepare(c, "SELECT " JOB_COLS "FROM import_jobs j WHERE j.id = ?") : NULL;
    if (!st)
        return DB_ERROR;
    sql_bind_int64(st, 1, id);
    return get_one(st, out);
}

enum db_status jobs_list(struct db *db, const char *project_id, const char *instance,
                         const char *status, struct job **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st =
        c ? sql_prepare(c, "SELECT " JOB_COLS "FROM import_jobs j WHERE"
                           " (CAST(?1 AS TEXT) IS NULL OR j.project_id = ?1)"
                           " AND (CAST(?2 AS TEXT) IS NULL OR j.instance = ?2)"
                           " AND (CAST(?3 AS TEXT) IS NULL OR j.status = ?3) ORDER BY j.id DESC")
          : NULL;
    if (!st)
        return DB_ERROR;
    if (project_id)
        sql_bind_text(st, 1, project_id);
    if (instance)
        sql_bind_text(st, 2, instance);
    if (status)
        sql_bind_text(st, 3, status);
    size_t cap = 0;
    int rc;
    while ((rc = sql_step(st)) == SQL_ROW) {
        struct job *g = sql_grow(*out, *n, &cap, sizeof *g);
        if (!g)
            break;
        *out = g;
        job_read(st, &(*out)[(*n)++]);
    }
    sql_finalize(st);
    if (rc != SQL_DONE) {
        jobs_free(*out, *n);
        *out = NULL;
        *n = 0;
        return DB_ERROR;
    }
    return DB_OK;
}

enum db_status jobs_errors(struct db *db, int64_t id, long long offset, long long limit,
                           json_t **out)
{
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st = c ? sql_prepare(c, "SELECT key, error_code, error_msg FROM import_keys"
                                             " WHERE job = ? AND status = 2 ORDER BY seq"
                                             " LIMIT ? OFFSET ?")
                            : NULL;
    if (!st)
        return DB_ERROR;
    sql_bind_int64(st, 1, id);
    sql_bind_int64(st, 2, limit);
    sql_bind_int64(st, 3, offset);
    json_t *a = json_array();
    int rc;
    while ((rc = sql_step(st)) == SQL_ROW) {
        const char *code = sql_column_text(st, 1);
        const char *msg = sql_column_text(st, 2);
        json_array_append_new(a, json_pack("{s:s, s:s, s:s}", "key", sql_column_text(st, 0),
                                           "error_code", code ? code : "", "error_msg",
                                           msg ? msg : ""));
    }
    sql_finalize(st);
    if (rc != SQL_DONE) {
        json_decref(a);
        return DB_ERROR;
    }
    *out = a;
    return DB_OK;
}

/* Runs one statement with n (0..2) int64 parameters a, b; *changes gets
 * the row count. */
static enum db_status exec_ints(struct sql_conn *c, const char *sql, int n, int64_t a, int64_t b,
                                long long *changes)
{
    struct sql_stmt *st = c ? sql_prepare(c, sql) : NULL;
    if (!st)
        return DB_ERROR;
    if (n > 0)
        sql_bind_int64(st, 1, a);
    if (n > 1)
        sql_bind_int64(st, 2, b);
    int rc = sql_step(st);
    sql_finalize(st);
    if (changes)
        *changes = sql_changes(c);
    return rc == SQL_DONE ? DB_OK : DB_ERROR;
}

/* QUEUED -> RUNNING by `node`; *changes 0 when another claimed it first. */
static enum db_status claim_row(struct sql_conn *c, int64_t id, const char *node,
                                long long *changes)
{
    struct sql_stmt *st = sql_prepare(
        c, "UPDATE import_jobs SET status = 'RUNNING', claimed_by = ?3, started_ms = CASE"
           " started_ms WHEN 0 THEN ?2 ELSE started_ms END WHERE id = ?1 AND status = 'QUEUED'");
    if (!st)
        return DB_ERROR;
    sql_bind_int64(st, 1, id);
    sql_bind_int64(st, 2, now_ms());
    sql_bind_text(st, 3, node);
    int rc = sql_step(st);
    *changes = sql_changes(c);
    sql_finalize(st);
    return rc == SQL_DONE ? DB_OK : DB_ERROR;
}

enum db_status jobs_claim(struct db *db, struct job *out, int *resumed)
{
    return jobs_claim_by(db, NULL, out, resumed);
}

enum db_status jobs_claim_by(struct db *db, const char *node, struct job *out, int *resumed)
{
    struct sql_conn *c = db_conn(db);
    if (!c || db_begin(c) != 0)
        return DB_ERROR;
    struct sql_stmt *st =
        sql_prepare(c, "SELECT id, started_ms FROM import_jobs WHERE status = 'QUEUED'"
                       " ORDER BY id LIMIT 1");
    if (!st) {
        db_rollback(c);
        return DB_ERROR;
    }
    int rc = sql_step(st);
    int64_t id = rc == SQL_ROW ? sql_column_int64(st, 0) : 0;
    *resumed = rc == SQL_ROW && sql_column_int64(st, 1) != 0;
    sql_finalize(st);
    if (rc == SQL_DONE) {
        db_rollback(c);
        return DB_NOT_FOUND;
    }
    /* started_ms keeps the first start, so a resumed job shows when it began.
     * Still QUEUED: on a shared database another node may have claimed it
     * since the SELECT; then there is nothing for this one. */
    long long changes = 0;
    if (rc != SQL_ROW || claim_row(c, id, node, &changes) != DB_OK || db_commit(c) != 0) {
        db_rollback(c);
        return DB_ERROR;
    }
    if (!changes)
        return DB_NOT_FOUND;
    return jobs_get_row(db, id, out);
}

enum db_status jobs_next_unlisted(struct db *db, struct job *out)
{
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st =
        c ? sql_prepare(c, "SELECT " JOB_COLS "FROM import_jobs j WHERE"
                           " j.listing_done = 0 AND j.status IN ('QUEUED', 'RUNNING')"
                           " ORDER BY j.id LIMIT 1")
          : NULL;
    return get_one(st, out);
}

enum db_status jobs_next_unlisted_by(struct db *db, const char *node, struct job *out)
{
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st =
        c ? sql_prepare(c, "SELECT " JOB_COLS "FROM import_jobs j WHERE j.listing_done = 0"
                           " AND j.status = 'RUNNING' AND j.claimed_by = ? ORDER BY j.id LIMIT 1")
          : NULL;
    if (st)
        sql_bind_text(st, 1, node);
    return get_one(st, out);
}

enum db_status jobs_last_key(struct db *db, int64_t id, char **out)
{
    *out = NULL;
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st = c ? sql_prepare(c, "SELECT key FROM import_keys WHERE job = ?"
                                             " ORDER BY seq DESC LIMIT 1")
                            : NULL;
    if (!st)
        return DB_ERROR;
    sql_bind_int64(st, 1, id);
    int rc = sql_step(st);
    int nomem = rc == SQL_ROW && !(*out = col_dup(st, 0));
    sql_finalize(st);
    return !nomem && (rc == SQL_ROW || rc == SQL_DONE) ? DB_OK : DB_ERROR;
}

#define STILL_LISTING                                                                              \
    " id = ?1 AND job_id = ?2 AND listing_done = 0 AND status IN ('QUEUED', 'RUNNING')"

/* Runs `sql` (?1 row id, ?2 public id, ?3 text unless NULL); *changes as
 * in exec_ints. */
static enum db_status exec_job(struct sql_conn *c, const char *sql, const struct job *j,
                               const char *text, long long *changes)
{
    struct sql_stmt *st = c ? sql_prepare(c, sql) : NULL;
    if (!st)
        return DB_ERROR;
    sql_bind_int64(st, 1, j->id);
    sql_bind_text(st, 2, j->job_id);
    if (text)
        sql_bind_text(st, 3, text);
    int rc = sql_step(st);
    sql_finalize(st);
    if (changes)
        *changes = sql_changes(c);
    return rc == SQL_DONE ? DB_OK : DB_ERROR;
}

/* Inside a transaction: the job's total when it is still listing, else -1
 * (gone, ended, or listed) or -2 (error). */
static long long listing_total(struct sql_conn *c, const struct job *j)
{
    struct sql_stmt *st = sql_prepare(c, "SELECT total FROM import_jobs WHERE" STILL_LISTING);
    if (!st)
        return -2;
    sql_bind_int64(st, 1, j->id);
    sql_bind_text(st, 2, j->job_id);
    int rc = sql_step(st);
    long long total = rc == SQL_ROW ? sql_column_int64(st, 0) : rc == SQL_DONE ? -1 : -2;
    sql_finalize(st);
    return total;
}

enum db_status jobs_append(struct db *db, const struct job *j, const struct job_key *keys, size_t n)
{
    struct sql_conn *c = db_conn(db);
    if (!c || db_begin(c) != 0)
        return DB_ERROR;
    long long total = listing_total(c, j);
    /* seq continues at total: seqs are 0..total-1, as jobs_create made them. */
    if (total < 0 || insert_keys(c, j->id, total, keys, n) != 0 ||
        exec_ints(c, "UPDATE import_jobs SET total = total + ? WHERE id = ?", 2, (int64_t)n, j->id,
                  NULL) != DB_OK ||
        db_commit(c) != 0) {
        db_rollback(c);
        return total == -1 ? DB_NOT_FOUND : DB_ERROR;
    }
    return DB_OK;
}

enum db_status jobs_listing_finish(struct db *db, const struct job *j)
{
    long long changes = 0;
    enum db_status s =
        exec_job(db_conn(db), "UPDATE import_jobs SET listing_done = 1 WHERE" STILL_LISTING, j,
                 NULL, &changes);
    return s != DB_OK ? s : changes ? DB_OK : DB_NOT_FOUND;
}

enum db_status jobs_listing_fail(struct db *db, const struct job *j, const char *error)
{
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st = c ? sql_prepare(c, "UPDATE import_jobs SET status = 'FAILED', error = ?3,"
                                             " finished_ms = ?4 WHERE" STILL_LISTING)
                            : NULL;
    if (!st)
        return DB_ERROR;
    sql_bind_int64(st, 1, j->id);
    sql_bind_text(st, 2, j->job_id);
    sql_bind_text(st, 3, error);
    sql_bind_int64(st, 4, now_ms());
    int rc = sql_step(st);
    sql_finalize(st);
    if (rc != SQL_DONE)
        return DB_ERROR;
    return sql_changes(c) ? DB_OK : DB_NOT_FOUND;
}

enum db_status jobs_requeue_running(struct db *db)
{
    return exec_ints(db_conn(db),
                     "UPDATE import_jobs SET status = 'QUEUED' WHERE status = 'RUNNING'", 0, 0, 0,
                     NULL);
}

enum db_status jobs_finish(struct db *db, int64_t id, const char *status, const char *error)
{
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st =
        c ? sql_prepare(c, "UPDATE import_jobs SET status = ?2, error = ?3, finished_ms = ?4"
                           " WHERE id = ?1 AND status IN ('QUEUED', 'RUNNING')")
          : NULL;
    if (!st)
        return DB_ERROR;
    sql_bind_int64(st, 1, id);
    sql_bind_text(st, 2, status);
    if (error)
        sql_bind_text(st, 3, error);
    sql_bind_int64(st, 4, now_ms());
    int rc = sql_step(st);
    sql_finalize(st);
    return rc == SQL_DONE ? DB_OK : DB_ERROR;
}

enum db_status jobs_cancel(struct db *db, int64_t id)
{
    return jobs_finish(db, id, "CANCELLED", NULL);
}

enum db_status jobs_status(struct db *db, int64_t id, char *buf, size_t len)
{
    return jobs_status_for(db, id, NULL, buf, len);
}

enum db_status jobs_status_for(struct db *db, int64_t id, const char *node, char *buf, size_t len)
{
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st =
        c ? sql_prepare(c, "SELECT status, claimed_by FROM import_jobs WHERE id = ?") : NULL;
    if (!st)
        return DB_ERROR;
    sql_bind_int64(st, 1, id);
    int rc = sql_step(st);
    if (rc == SQL_ROW) {
        const char *by = sql_column_text(st, 1);
        int lost = node && (!by || strcmp(by, node) != 0);
        snprintf(buf, len, "%s", lost ? "LOST" : sql_column_text(st, 0));
    }
    sql_finalize(st);
    return rc == SQL_ROW ? DB_OK : rc == SQL_DONE ? DB_NOT_FOUND : DB_ERROR;
}

enum db_status jobs_add_active(struct db *db, int64_t id, long long ms)
{
    return exec_ints(db_conn(db), "UPDATE import_jobs SET active_ms = active_ms + ?2 WHERE id = ?1",
                     2, id, ms, NULL);
}

enum db_status jobs_pending(struct db *db, int64_t id, size_t max, struct job_key **out, size_t *n)
{
    *out = calloc(max ? max : 1, sizeof **out);
    *n = 0;
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st = c && *out ? sql_prepare(c, "SELECT seq, key, url, meta FROM import_keys"
                                                     " WHERE job = ? AND status = 0 ORDER BY seq"
                                                     " LIMIT ?")
                                    : NULL;
    if (!st) {
        free(*out);
        *out = NULL;
        return DB_ERROR;
    }
    sql_bind_int64(st, 1, id);
    sql_bind_int64(st, 2, (int64_t)max);
    int rc;
    while ((rc = sql_step(st)) == SQL_ROW) {
        struct job_key *k = &(*out)[(*n)++];
        k->seq = sql_column_int64(st, 0);
        k->key = col_dup(st, 1);
        k->url = col_dup(st, 2);
        k->meta = col_dup(st, 3);
    }
    sql_finalize(st);
    if (rc != SQL_DONE) {
        job_keys_free(*out, *n);
        *out = NULL;
        *n = 0;
        return DB_ERROR;
    }
    return DB_OK;
}

enum db_status jobs_key_result(struct db *db, int64_t id, int64_t seq, enum key_status status,
                               const char *code, const char *msg)
{
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st = c ? sql_prepare(c, "UPDATE import_keys SET status = ?3, error_code = ?4,"
                                             " error_msg = ?5 WHERE job = ?1 AND seq = ?2")
                            : NULL;
    if (!st)
        return DB_ERROR;
    sql_bind_int64(st, 1, id);
    sql_bind_int64(st, 2, seq);
    sql_bind_int64(st, 3, (int)status);
    if (code)
        sql_bind_text(st, 4, code);
    if (msg)
        sql_bind_text(st, 5, msg);
    int rc = sql_step(st);
    sql_finalize(st);
    return rc == SQL_DONE ? DB_OK : DB_ERROR;
}
