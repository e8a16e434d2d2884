/* compaction.c: a float instance's vectors rewritten as int8 codes of its
 * own projection (compaction.h), in short transactions.
 *
 * The design (issue 9, "compaction that does not block writers"):
 *   1. switch: one short transaction stores the projection, names it in
 *      instances.projection and moves change_seq and replay_floor on, so
 *      every index of the instance is rebuilt in the new space;
 *   2. from then on every reader of stored vectors (storage/vectors.h:
 *      index load, replay, the re-rank's fetch, items_vector) takes a row
 *      that still holds in_dim floats (its blob length says so) and codes
 *      it on the fly with vectors_code_rows, the same function the rewrite
 *      uses, so the codes it indexes are the bytes the rewrite will store;
 *      new writes store codes at once;
 *   3. rewrite: batches of float rows are read and coded outside any
 *      transaction, then written in one short transaction each, every
 *      UPDATE guarded by "still float" (a row deleted meanwhile is simply
 *      not found). The writer is held for one batch of small UPDATEs.
 * A crash anywhere leaves a consistent instance: before the switch it is
 * float and untouched; after it, any mix of float and code rows reads the
 * same, and the next start resumes the rewrite (compaction_pending). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "index/projection.h"
#include "storage/compaction.h"
#include "storage/vectors.h"

/* Reservoir sampling over the stream vectors_for_each delivers, with a fixed
 * seed: the same instance fits the same projection. */
struct sample {
    int dim;
    size_t max, n, seen;
    float *x;
    uint64_t rng;
};

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int take(void *arg, size_t n, const int64_t *ids, const float *vecs)
{
    (void)ids;
    struct sample *s = arg;
    for (size_t i = 0; i < n; i++) {
        size_t slot = s->seen < s->max ? s->seen : (size_t)(next_rand(&s->rng) % (s->seen + 1));
        s->seen++;
        if (slot >= s->max)
            continue;
        memcpy(s->x + slot * (size_t)s->dim, vecs + i * (size_t)s->dim,
               (size_t)s->dim * sizeof(float));
        if (slot == s->n)
            s->n++;
    }
    return 0;
}

int compaction_sample(struct db *db, int64_t instance_id, int dim, size_t max, float **x, size_t *n)
{
    struct sample s = {
        dim, max, 0, 0, malloc(max * (size_t)dim * sizeof(float)), 0x9e3779b97f4a7c15ULL};
    *x = NULL;
    *n = 0;
    if (!s.x || vectors_for_each(db, instance_id, dim, NULL, take, &s) != 0) {
        free(s.x);
        return -1;
    }
    *x = s.x;
    *n = s.n;
    return 0;
}

static void fail(char *errbuf, size_t errlen, const char *what, struct sql_conn *c)
{
    const char *m = c ? sql_errmsg(c) : NULL;
    snprintf(errbuf, errlen, "%s%s%s", what, m ? ": " : "", m ? m : "");
}

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int compaction_switch(struct db *db, int64_t instance_id, const struct projection *pr,
                      const unsigned char *bytes, size_t len, char *errbuf, size_t errlen)
{
    struct sql_conn *c = db_conn(db);
    if (!c || db_begin(c) != 0) {
        snprintf(errbuf, errlen, "cannot begin: %s", db_last_error());
        return -1;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct sql_stmt *st = sql_prepare(c, "INSERT INTO projections (digest, data, created_ms)"
                                         " VALUES (?, ?, ?) ON CONFLICT (digest) DO NOTHING");
    int ok = st != NULL;
    if (ok) {
        sql_bind_text(st, 1, pr->digest);
        sql_bind_blob(st, 2, bytes, len);
        sql_bind_int64(st, 3, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
        ok = sql_step(st) == SQL_DONE;
        if (!ok)
            fail(errbuf, errlen, "storing the projection", c);
    }
    sql_finalize(st);
    if (ok) {
        /* Right-hand sides see the old row: replay_floor becomes the new
         * change_seq, so no float snapshot is ever replayed. Only a float
         * instance is switched. */
        st = sql_prepare(c, "UPDATE instances SET projection = ?, change_seq = change_seq + 1,"
                            " replay_floor = change_seq + 1 WHERE id = ? AND projection IS NULL");
        ok = st != NULL;
        if (ok) {
            sql_bind_text(st, 1, pr->digest);
            sql_bind_int64(st, 2, instance_id);
            ok = sql_step(st) == SQL_DONE && sql_changes(c) == 1;
            if (!ok)
                fail(errbuf, errlen, "the instance is gone or already compact", c);
        }
        sql_finalize(st);
    }
    if (ok && db_commit(c) != 0) {
        snprintf(errbuf, errlen, "commit: %s", db_last_error());
        ok = 0;
    }
    if (!ok)
        db_rollback(c);
    return ok ? 0 : -1;
}

/* The rows of one table still holding floats, after a cursor (row, k). */
struct table {
    int has_k;
    struct sql_stmt *sel, *upd;
};

/* In primary-key order from the cursor, the instance checked per row: a
 * walk of the instance's own index would sort all its rows again for
 * every batch (quadratic: the first version took 35 s for 10k items). The
 * unary + keeps SQLite off that index; PostgreSQL walks the key too. */
static const char *const SEL[2] = {
    "SELECT id, 0, vector FROM items WHERE id > ?2 AND +instance_id = ?1"
    " AND length(vector) = ?3 ORDER BY id LIMIT ?4",
    "SELECT r.item, r.k, r.vector FROM item_regions r WHERE (r.item, r.k) > (?2, ?5)"
    " AND length(r.vector) = ?3 AND (SELECT instance_id FROM items WHERE id = r.item) = ?1"
    " ORDER BY r.item, r.k LIMIT ?4"};
/* Only a row that still holds floats: one deleted (or replaced, under a new
 * row id) since it was read is left alone. A vector is never updated in
 * place otherwise, so the codes computed outside the transaction are
 * still the right ones. */
static const char *const UPD[2] = {
    "UPDATE items SET vector = ?1 WHERE id = ?2 AND length(vector) = ?3",
    "UPDATE item_regions SET vector = ?1 WHERE item = ?2 AND length(vector) = ?3 AND k = ?4"};

/* One batch: up to `batch` float rows after (*row, *k), read and coded
 * outside any transaction, then rewritten in one short one. Returns how
 * many were read (0: the table is done), or -1. */
static int rewrite_batch(struct sql_conn *c, const struct table *t, int64_t instance_id, int batch,
                         int64_t *row, int *k, const struct projection *pr,
                         struct compaction_progress *p, char *errbuf, size_t errlen)
{
    int in_bytes = pr->in_dim * (int)sizeof(float);
    int64_t *rows = malloc((size_t)batch * sizeof *rows);
    int *ks = malloc((size_t)batch * sizeof *ks);
    int8_t *codes = malloc((size_t)batch * (size_t)pr->out_dim);
    float *x = malloc((size_t)batch * (size_t)pr->in_dim * sizeof *x);
    int n = 0, s = SQL_DONE, rc = -1;
    if (!rows || !ks || !codes || !x) {
        snprintf(errbuf, errlen, "out of memory");
        goto out;
    }
    sql_reset(t->sel);
    sql_bind_int64(t->sel, 1, instance_id);
    sql_bind_int64(t->sel, 2, *row);
    sql_bind_int64(t->sel, 3, in_bytes);
    sql_bind_int64(t->sel, 4, batch);
    if (t->has_k)
        sql_bind_int64(t->sel, 5, *k);
    while (n < batch && (s = sql_step(t->sel)) == SQL_ROW) {
        memcpy(x + (size_t)n * (size_t)pr->in_dim, sql_column_blob(t->sel, 2), (size_t)in_bytes);
        rows[n] = sql_column_int64(t->sel, 0);
        ks[n] = sql_column_int(t->sel, 1);
        n++;
    }
    if (s != SQL_DONE && s != SQL_ROW) {
        fail(errbuf, errlen, "reading vectors", c);
        goto out;
    }
    sql_reset(t->sel); /* PostgreSQL: one statement at a time on a connection */
    if (n == 0) {
        rc = 0;
        goto out;
    }
    if (vectors_code_rows(pr, (size_t)n, x, codes) != 0) {
        snprintf(errbuf, errlen, "out of memory");
        goto out;
    }
    if (db_begin(c) != 0) {
        snprintf(errbuf, errlen, "cannot begin: %s", db_last_error());
        goto out;
    }
    double t0 = mono_ms();
    int ok = 1;
    long long done = 0;
    for (int i = 0; ok && i < n; i++) {
        sql_reset(t->upd);
        sql_bind_blob(t->upd, 1, codes + (size_t)i * (size_t)pr->out_dim, (size_t)pr->out_dim);
        sql_bind_int64(t->upd, 2, rows[i]);
        sql_bind_int64(t->upd, 3, in_bytes);
        if (t->has_k)
            sql_bind_int64(t->upd, 4, ks[i]);
        ok = sql_step(t->upd) == SQL_DONE;
        done += ok ? sql_changes(c) : 0;
    }
    if (!ok) {
        fail(errbuf, errlen, "writing codes", c);
        db_rollback(c);
        goto out;
    }
    if (db_commit(c) != 0) {
        snprintf(errbuf, errlen, "commit: %s", db_last_error());
        goto out;
    }
    double held = mono_ms() - t0;
    p->converted += done;
    p->batches++;
    p->hold_ms += held;
    if (held > p->max_hold_ms)
        p->max_hold_ms = held;
    *row = rows[n - 1];
    *k = ks[n - 1];
    rc = n;
out:
    free(rows);
    free(ks);
    free(codes);
    free(x);
    return rc;
}

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (ms > 0 && nanosleep(&ts, &ts) != 0)
        ;
}

int compaction_rewrite(struct db *db, int64_t instance_id, const struct projection *pr,
                       const struct compaction_pace *pace, struct compaction_progress *p,
                       char *errbuf, size_t errlen)
{
    struct sql_conn *c = db_conn(db);
    int batch = pace && pace->batch > 0 ? pace->batch : COMPACTION_BATCH;
    int rc = 0;
    memset(p, 0, sizeof *p);
    if (!c) {
        snprintf(errbuf, errlen, "no database connection: %s", db_last_error());
        return -1;
    }
    for (int tab = 0; tab < 2 && rc == 0; tab++) {
        struct table t = {tab, sql_prepare(c, SEL[tab]), sql_prepare(c, UPD[tab])};
        int64_t row = -1;
        int k = -1, n = 1;
        if (!t.sel || !t.upd) {
            fail(errbuf, errlen, "preparing the rewrite", c);
            rc = -1;
        }
        while (rc == 0 && n > 0) {
            if (pace && pace->stop && pace->stop(pace->arg)) {
                rc = 1;
                break;
            }
            n = rewrite_batch(c, &t, instance_id, batch, &row, &k, pr, p, errbuf, errlen);
            if (n < 0)
                rc = -1;
            else if (n > 0 && pace && pace->pause_ms > 0)
                pause_ms(pace->pause_ms);
        }
        sql_finalize(t.sel);
        sql_finalize(t.upd);
    }
    return rc;
}

enum db_status projections_get(struct db *db, const char *digest, unsigned char **data, size_t *len)
{
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st =
        c ? sql_prepare(c, "SELECT data FROM projections WHERE digest = ?") : NULL;
    *data = NULL;
    *len = 0;
    if (!st)
        return DB_ERROR;
    sql_bind_text(st, 1, digest);
    int s = sql_step(st);
    enum db_status rc = s == SQL_ROW ? DB_OK : s == SQL_DONE ? DB_NOT_FOUND : DB_ERROR;
    if (rc == DB_OK) {
        int n = sql_column_bytes(st, 0);
        *data = malloc(n > 0 ? (size_t)n : 1);
        if (!*data)
            rc = DB_ERROR;
        else {
            memcpy(*data, sql_column_blob(st, 0), (size_t)n);
            *len = (size_t)n;
        }
    }
    sql_finalize(st);
    return rc;
}

/* The first column of every row of st, which it finalizes (malloc'd). */
static int collect_ids(struct sql_stmt *st, int64_t **ids, size_t *n)
{
    size_t cap = 0;
    *ids = NULL;
    *n = 0;
    return sql_collect_int64(st, ids, n, &cap);
}

int compaction_candidates(struct db *db, long items, int64_t **ids, size_t *n)
{
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st =
        c ? sql_prepare(c, "SELECT i.id FROM instances i WHERE i.projection IS NULL AND"
                           " (SELECT count(*) FROM items WHERE instance_id = i.id) >= ?"
                           " ORDER BY i.id")
          : NULL;
    *ids = NULL;
    *n = 0;
    if (!st)
        return -1;
    sql_bind_int64(st, 1, items);
    return collect_ids(st, ids, n);
}

int compaction_pending(struct db *db, int64_t **ids, size_t *n)
{
    struct sql_conn *c = db_conn(db);
    /* Float rows are in_dim floats, codes out_dim bytes: any blob longer
     * than a code can be is a float one. */
    struct sql_stmt *st =
        c ? sql_prepare(c, "SELECT i.id FROM instances i WHERE i.projection IS NOT NULL AND"
                           " (EXISTS (SELECT 1 FROM items WHERE instance_id = i.id AND"
                           " length(vector) > ?1) OR EXISTS (SELECT 1 FROM item_regions r"
                           " JOIN items t ON t.id = r.item WHERE t.instance_id = i.id AND"
                           " length(r.vector) > ?1)) ORDER BY i.id")
          : NULL;
    if (!st)
        return -1;
    sql_bind_int64(st, 1, COMPACTION_CODE_MAX);
    return collect_ids(st, ids, n);
}
