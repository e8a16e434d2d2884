/* compaction.c: a float instance's vectors rewritten as int8 codes of its
 * own projection (compaction.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "index/projection.h"
#include "storage/compaction.h"
#include "storage/vectors.h"

#define REWRITE_BATCH 256

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

/* One batch of up to REWRITE_BATCH vectors after the cursor (row, k), read
 * in full before any is written (a PostgreSQL connection runs one statement
 * at a time), then rewritten as codes. Returns how many, or -1. */
static int rewrite_batch(struct sql_conn *c, struct sql_stmt *sel, struct sql_stmt *upd, int has_k,
                         int64_t instance_id, int64_t *row, int *k, const struct projection *pr,
                         char *errbuf, size_t errlen)
{
    static _Thread_local int64_t rows[REWRITE_BATCH];
    static _Thread_local int ks[REWRITE_BATCH];
    int8_t *codes = malloc((size_t)REWRITE_BATCH * (size_t)pr->out_dim);
    float *y = malloc((size_t)pr->out_dim * sizeof *y);
    float *x = malloc((size_t)pr->in_dim * sizeof *x);
    int n = 0, s = SQL_DONE, rc = -1;
    if (!codes || !y || !x) {
        snprintf(errbuf, errlen, "out of memory");
        goto out;
    }
    sql_reset(sel);
    sql_bind_int64(sel, 1, instance_id);
    sql_bind_int64(sel, 2, *row);
    if (has_k) {
        sql_bind_int64(sel, 3, *row);
        sql_bind_int64(sel, 4, *k);
    }
    int vcol = has_k ? 2 : 1;
    while ((s = sql_step(sel)) == SQL_ROW) {
        int bytes = sql_column_bytes(sel, vcol);
        if (bytes != pr->in_dim * (int)sizeof(float)) {
            snprintf(errbuf, errlen, "item row %lld has a %d-byte vector, not %d floats",
                     (long long)sql_column_int64(sel, 0), bytes, pr->in_dim);
            goto out;
        }
        memcpy(x, sql_column_blob(sel, vcol), (size_t)bytes);
        projection_apply(pr, x, y);
        projection_encode(pr, y, codes + (size_t)n * (size_t)pr->out_dim);
        rows[n] = sql_column_int64(sel, 0);
        ks[n] = has_k ? sql_column_int(sel, 1) : 0;
        n++;
    }
    if (s != SQL_DONE) {
        fail(errbuf, errlen, "reading vectors", c);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        sql_reset(upd);
        sql_bind_blob(upd, 1, codes + (size_t)i * (size_t)pr->out_dim, (size_t)pr->out_dim);
        sql_bind_int64(upd, 2, rows[i]);
        if (has_k)
            sql_bind_int64(upd, 3, ks[i]);
        if (sql_step(upd) != SQL_DONE) {
            fail(errbuf, errlen, "writing codes", c);
            goto out;
        }
    }
    if (n) {
        *row = rows[n - 1];
        *k = ks[n - 1];
    }
    rc = n;
out:
    free(codes);
    free(y);
    free(x);
    return rc;
}

static int rewrite_all(struct sql_conn *c, int has_k, int64_t instance_id,
                       const struct projection *pr, long long *converted, char *errbuf,
                       size_t errlen)
{
    struct sql_stmt *sel =
        sql_prepare(c, has_k ? "SELECT r.item, r.k, r.vector FROM item_regions r JOIN items i"
                               " ON i.id = r.item WHERE i.instance_id = ?1 AND (r.item > ?2"
                               " OR (r.item = ?3 AND r.k > ?4)) ORDER BY r.item, r.k LIMIT 256"
                             : "SELECT id, vector FROM items WHERE instance_id = ?1 AND id > ?2"
                               " ORDER BY id LIMIT 256");
    struct sql_stmt *upd =
        sql_prepare(c, has_k ? "UPDATE item_regions SET vector = ? WHERE item = ? AND k = ?"
                             : "UPDATE items SET vector = ? WHERE id = ?");
    int64_t row = -1;
    int k = -1, n = 0;
    if (!sel || !upd)
        fail(errbuf, errlen, "preparing the rewrite", c), n = -1;
    while (n >= 0 &&
           (n = rewrite_batch(c, sel, upd, has_k, instance_id, &row, &k, pr, errbuf, errlen)) > 0)
        *converted += n;
    sql_finalize(sel);
    sql_finalize(upd);
    return n < 0 ? -1 : 0;
}

int compaction_convert(struct db *db, int64_t instance_id, const struct projection *pr,
                       const unsigned char *bytes, size_t len, long long *converted, char *errbuf,
                       size_t errlen)
{
    struct sql_conn *c = db_conn(db);
    *converted = 0;
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
    ok = ok && rewrite_all(c, 0, instance_id, pr, converted, errbuf, errlen) == 0 &&
         rewrite_all(c, 1, instance_id, pr, converted, errbuf, errlen) == 0;
    if (ok) {
        /* Right-hand sides see the old row: replay_floor becomes the new
         * change_seq. Only a float instance is converted. */
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

int compaction_candidates(struct db *db, long items, int64_t **ids, size_t *n)
{
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st =
        c ? sql_prepare(c, "SELECT i.id FROM instances i WHERE i.projection IS NULL AND"
                           " (SELECT count(*) FROM items WHERE instance_id = i.id) >= ?"
                           " ORDER BY i.id")
          : NULL;
    size_t cap = 0;
    *ids = NULL;
    *n = 0;
    if (!st)
        return -1;
    sql_bind_int64(st, 1, items);
    int s, rc = 0;
    while ((s = sql_step(st)) == SQL_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            int64_t *g = realloc(*ids, cap * sizeof *g);
            if (!g) {
                rc = -1;
                break;
            }
            *ids = g;
        }
        (*ids)[(*n)++] = sql_column_int64(st, 0);
    }
    if (rc == 0 && s != SQL_DONE)
        rc = -1;
    sql_finalize(st);
    return rc;
}
