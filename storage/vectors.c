/* vectors.c: bulk reads of item vectors, in batches so a rebuild of a large
 * instance never holds more than one batch twice in memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "index/projection.h"
#include "storage/vectors.h"

#define BATCH 1024

int vectors_code_rows(const struct projection *pr, size_t n, const float *x, int8_t *q)
{
    float *y = malloc((n ? n : 1) * (size_t)pr->out_dim * sizeof *y);
    if (!y || projection_apply_rows(pr, n, x, y) != 0) {
        free(y);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        projection_encode(pr, y + i * (size_t)pr->out_dim, q + i * (size_t)pr->out_dim);
    free(y);
    return 0;
}

/* A float row of a compact instance whose conversion has not reached it
 * yet (storage/compaction.h): the codes the conversion will write, decoded.
 * The blob is copied first: a database's blob need not be float-aligned. */
static int decode_float_row(const void *blob, const struct projection *pr, float *out)
{
    float *x = malloc((size_t)pr->in_dim * sizeof *x);
    int8_t q8[512], *q = pr->out_dim <= 512 ? q8 : malloc((size_t)pr->out_dim);
    int rc = x && q ? 0 : -1;
    if (rc == 0) {
        memcpy(x, blob, (size_t)pr->in_dim * sizeof *x);
        rc = vectors_code_rows(pr, 1, x, q);
        if (rc == 0)
            projection_decode(pr, q, out);
    }
    free(x);
    if (q != q8)
        free(q);
    return rc;
}

int vectors_decode(const void *blob, int bytes, int dim, const struct projection *pr, float *out)
{
    if (!blob)
        return -1;
    if (pr) {
        if (dim != pr->out_dim)
            return -1;
        if (bytes == pr->in_dim * (int)sizeof(float))
            return decode_float_row(blob, pr, out);
        if (bytes != dim)
            return -1;
        projection_decode(pr, blob, out);
        return 0;
    }
    if (bytes != dim * (int)sizeof(float))
        return -1;
    memcpy(out, blob, (size_t)bytes);
    return 0;
}

/* The float rows of a compact instance met in a batch (a conversion in
 * progress): coded together, in one matrix product, before the batch is
 * handed on. */
struct staged {
    float *x;     /* n x in_dim */
    size_t *slot; /* where each one's decoded codes go */
    int8_t *q;    /* n x out_dim */
    size_t n;
};

static int code_staged(struct staged *sg, const struct projection *pr, float *vecs, int dim)
{
    if (!sg->n)
        return 0;
    if (vectors_code_rows(pr, sg->n, sg->x, sg->q) != 0)
        return -1;
    for (size_t i = 0; i < sg->n; i++)
        projection_decode(pr, sg->q + i * (size_t)dim, vecs + sg->slot[i] * (size_t)dim);
    sg->n = 0;
    return 0;
}

/* One query's rows (id column, optional k column, vector) in batches;
 * ?1 is the instance, ?2 `since` unless both it and the shard are -1, ?3
 * the shard unless that is -1 (PostgreSQL refuses a parameter between two
 * others that no clause uses; seq > -1 is every row). */
static int batches(struct sql_conn *c, const char *sql, int64_t instance_id, int64_t since,
                   int shard, int dim, const struct projection *pr, int has_k, vectors_batch_fn fn,
                   void *arg)
{
    struct sql_stmt *st = sql_prepare(c, sql);
    if (!st)
        return -1;
    int64_t *ids = malloc(BATCH * sizeof *ids);
    float *vecs = malloc((size_t)BATCH * (size_t)dim * sizeof *vecs);
    struct staged sg = {0};
    int rc = ids && vecs ? 0 : -1;
    size_t n = 0;
    int vcol = has_k ? 2 : 1;
    int float_bytes = pr ? pr->in_dim * (int)sizeof(float) : -1;
    sql_bind_int64(st, 1, instance_id);
    if (since >= 0 || shard >= 0)
        sql_bind_int64(st, 2, since);
    if (shard >= 0)
        sql_bind_int64(st, 3, shard);
    int s = SQL_DONE;
    while (rc == 0 && (s = sql_step(st)) == SQL_ROW) {
        const void *blob = sql_column_blob(st, vcol);
        int bytes = sql_column_bytes(st, vcol);
        int64_t row = sql_column_int64(st, 0);
        if (blob && bytes == float_bytes && dim == pr->out_dim) {
            if (!sg.x) {
                sg.x = malloc((size_t)BATCH * (size_t)pr->in_dim * sizeof *sg.x);
                sg.slot = malloc(BATCH * sizeof *sg.slot);
                sg.q = malloc((size_t)BATCH * (size_t)dim);
                if (!sg.x || !sg.slot || !sg.q) {
                    rc = -1;
                    break;
                }
            }
            memcpy(sg.x + sg.n * (size_t)pr->in_dim, blob, (size_t)bytes);
            sg.slot[sg.n++] = n;
        } else if (vectors_decode(blob, bytes, dim, pr, vecs + n * (size_t)dim) != 0) {
            fprintf(stderr, "vectors: item row %lld has a %d-byte vector, expected %d\n",
                    (long long)row, bytes, dim * (pr ? 1 : (int)sizeof(float)));
            continue; /* one bad row must not make the whole instance unusable */
        }
        ids[n] = has_k ? vec_id(row, sql_column_int(st, 1)) : row;
        if (++n == BATCH) {
            rc = code_staged(&sg, pr, vecs, dim);
            if (rc == 0)
                rc = fn(arg, n, ids, vecs);
            n = 0;
        }
    }
    if (rc == 0 && s != SQL_DONE)
        rc = -1;
    if (rc == 0 && n) {
        rc = code_staged(&sg, pr, vecs, dim);
        if (rc == 0)
            rc = fn(arg, n, ids, vecs);
    }
    sql_finalize(st);
    free(ids);
    free(vecs);
    free(sg.x);
    free(sg.slot);
    free(sg.q);
    return rc;
}

int vectors_for_each(struct db *db, int64_t instance_id, int dim, const struct projection *pr,
                     vectors_batch_fn fn, void *arg)
{
    return vectors_for_each_shard(db, instance_id, -1, -1, dim, pr, fn, arg);
}

int vectors_for_each_since(struct db *db, int64_t instance_id, int64_t since, int dim,
                           const struct projection *pr, vectors_batch_fn fn, void *arg)
{
    return vectors_for_each_shard(db, instance_id, -1, since, dim, pr, fn, arg);
}

int vectors_for_each_shard(struct db *db, int64_t instance_id, int shard, int64_t since, int dim,
                           const struct projection *pr, vectors_batch_fn fn, void *arg)
{
    struct sql_conn *c = db_conn(db);
    if (!c)
        return -1;
    /* ?2 and ?3 appear only when bound: an unbound one would be NULL. */
    if (since < 0)
        since = -1;
    const char *seq = since >= 0 || shard >= 0 ? " AND i.seq > ?2" : "";
    const char *sh = shard >= 0 ? " AND i.shard = ?3" : "";
    char whole[256], views[320];
    snprintf(whole, sizeof whole,
             "SELECT i.id, i.vector FROM items i WHERE i.instance_id = ?1%s%s ORDER BY i.id", seq,
             sh);
    snprintf(views, sizeof views,
             "SELECT r.item, r.k, r.vector FROM items i JOIN item_regions r"
             " ON r.item = i.id WHERE i.instance_id = ?1%s%s ORDER BY r.k, r.item",
             seq, sh);
    if (batches(c, whole, instance_id, since, shard, dim, pr, 0, fn, arg) != 0)
        return -1;
    return batches(c, views, instance_id, since, shard, dim, pr, 1, fn, arg);
}

/* A candidate: its index id and where its vector goes. */
struct want {
    int64_t id;
    size_t pos;
};

static int cmp_want(const void *a, const void *b)
{
    int64_t x = ((const struct want *)a)->id, y = ((const struct want *)b)->id;
    return (x > y) - (x < y);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static const struct want *find_want(const struct want *w, size_t n, int64_t id)
{
    struct want key = {id, 0};
    return bsearch(&key, w, n, sizeof *w, cmp_want);
}

/* Rows per statement: well under SQLite's and PostgreSQL's parameter limits. */
#define FETCH_CHUNK 256

/* One statement for up to FETCH_CHUNK rows: `sql` selects (row, k,
 * instance, vector) and ends in "IN (", and gets a placeholder per row.
 * Every returned vector of the instance that a candidate wants is decoded
 * into its place. The instance is checked here, not in the WHERE clause:
 * with "instance_id = ? AND id IN (...)" SQLite's planner walked the
 * instance's index instead of looking the ids up (15 ms for 128 ids of a
 * 100k-item instance, against 0.3 ms). */
static int fetch_rows(struct sql_conn *c, const char *sql, int64_t instance_id, const int64_t *rows,
                      size_t n_rows, const struct want *w, size_t nw, int dim,
                      const struct projection *pr, float *out, unsigned char *found)
{
    size_t len = strlen(sql);
    char *text = malloc(len + 2 * n_rows + 2);
    if (!text)
        return -1;
    memcpy(text, sql, len);
    for (size_t i = 0; i < n_rows; i++) {
        text[len++] = '?';
        text[len++] = i + 1 < n_rows ? ',' : ')';
    }
    text[len] = '\0';
    struct sql_stmt *st = sql_prepare(c, text);
    free(text);
    if (!st)
        return -1;
    for (size_t i = 0; i < n_rows; i++)
        sql_bind_int64(st, (int)i + 1, rows[i]);
    enum sql_rc s;
    while ((s = sql_step(st)) == SQL_ROW) {
        if (sql_column_int64(st, 2) != instance_id)
            continue;
        const struct want *hit =
            find_want(w, nw, vec_id(sql_column_int64(st, 0), sql_column_int(st, 1)));
        if (hit && vectors_decode(sql_column_blob(st, 3), sql_column_bytes(st, 3), dim, pr,
                                  out + hit->pos * (size_t)dim) == 0)
            found[hit->pos] = 1;
    }
    sql_finalize(st);
    return s == SQL_DONE ? 0 : -1;
}

int vectors_fetch(struct db *db, int64_t instance_id, size_t n, const int64_t *ids, int dim,
                  const struct projection *pr, float *out, unsigned char *found)
{
    memset(found, 0, n);
    if (n == 0)
        return 0;
    struct sql_conn *c = db_conn(db);
    struct want *w = malloc(n * sizeof *w);
    int64_t *whole = malloc(n * sizeof *whole), *viewed = malloc(n * sizeof *viewed);
    size_t nwhole = 0, nviewed = 0;
    int rc = c && w && whole && viewed ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        w[i] = (struct want){ids[i], i};
        if (vec_k(ids[i]) == 0)
            whole[nwhole++] = ids[i];
        else
            viewed[nviewed++] = vec_row(ids[i]);
    }
    if (rc == 0) {
        qsort(w, n, sizeof *w, cmp_want);
        /* An item's views are adjacent in item_regions: one read per item. */
        qsort(viewed, nviewed, sizeof *viewed, cmp_i64);
        size_t u = 0;
        for (size_t i = 0; i < nviewed; i++)
            if (!u || viewed[u - 1] != viewed[i])
                viewed[u++] = viewed[i];
        nviewed = u;
    }
    for (size_t i = 0; rc == 0 && i < nwhole; i += FETCH_CHUNK)
        rc = fetch_rows(c, "SELECT id, 0, instance_id, vector FROM items WHERE id IN (",
                        instance_id, whole + i, nwhole - i < FETCH_CHUNK ? nwhole - i : FETCH_CHUNK,
                        w, n, dim, pr, out, found);
    for (size_t i = 0; rc == 0 && i < nviewed; i += FETCH_CHUNK)
        rc = fetch_rows(c,
                        "SELECT r.item, r.k, i.instance_id, r.vector FROM item_regions r"
                        " JOIN items i ON i.id = r.item WHERE r.item IN (",
                        instance_id, viewed + i,
                        nviewed - i < FETCH_CHUNK ? nviewed - i : FETCH_CHUNK, w, n, dim, pr, out,
                        found);
    free(w);
    free(whole);
    free(viewed);
    return rc;
}

/* Appends the first column of every result row to a growing array. */
static int collect_rows(struct sql_conn *c, const char *sql, int64_t instance_id, int64_t since,
                        int64_t **rows, size_t *n, size_t *cap)
{
    struct sql_stmt *st = sql_prepare(c, sql);
    if (!st)
        return -1;
    sql_bind_int64(st, 1, instance_id);
    sql_bind_int64(st, 2, since);
    return sql_collect_int64(st, rows, n, cap);
}

int vectors_changed_rows(struct db *db, int64_t instance_id, int64_t since, int64_t **rows,
                         size_t *n)
{
    struct sql_conn *c = db_conn(db);
    size_t cap = 0;
    *rows = NULL;
    *n = 0;
    if (!c ||
        collect_rows(c, "SELECT row FROM index_tombstones WHERE instance_id = ? AND seq > ?",
                     instance_id, since, rows, n, &cap) != 0 ||
        collect_rows(c, "SELECT id FROM items WHERE instance_id = ? AND seq > ?", instance_id,
                     since, rows, n, &cap) != 0) {
        free(*rows);
        *rows = NULL;
        *n = 0;
        return -1;
    }
    return 0;
}

int vectors_log_state(struct db *db, int64_t instance_id, int64_t *change_seq,
                      int64_t *replay_floor)
{
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st =
        c ? sql_prepare(c, "SELECT change_seq, replay_floor FROM instances WHERE id = ?") : NULL;
    int rc = -1;
    if (!st)
        return -1;
    sql_bind_int64(st, 1, instance_id);
    if (sql_step(st) == SQL_ROW) {
        *change_seq = sql_column_int64(st, 0);
        *replay_floor = sql_column_int64(st, 1);
        rc = 0;
    }
    sql_finalize(st);
    return rc;
}

int vectors_prune_log(struct db *db, int64_t instance_id, int64_t upto)
{
    struct sql_conn *c = db_conn(db);
    if (!c || db_begin(c) != 0)
        return -1;
    int rc = -1;
    struct sql_stmt *a =
        sql_prepare(c, "DELETE FROM index_tombstones WHERE instance_id = ? AND seq <= ?");
    struct sql_stmt *b = sql_prepare(
        c, "UPDATE instances SET replay_floor = ?1 WHERE id = ?2 AND replay_floor < ?1");
    if (a && b) {
        sql_bind_int64(a, 1, instance_id);
        sql_bind_int64(a, 2, upto);
        sql_bind_int64(b, 1, upto);
        sql_bind_int64(b, 2, instance_id);
        if (sql_step(a) == SQL_DONE && sql_step(b) == SQL_DONE)
            rc = db_commit(c);
    }
    sql_finalize(a);
    sql_finalize(b);
    if (rc != 0)
        db_rollback(c);
    return rc;
}

int vectors_kinds(int regions, int views, int ks[VEC_KINDS])
{
    int n = 0;
    ks[n++] = 0;
    if (regions || views)
        ks[n++] = VEC_K_CENTRE;
    for (int k = 2; regions && k <= VEC_REGIONS; k++)
        ks[n++] = k;
    if (views) {
        ks[n++] = VEC_K_LOWRES;
        ks[n++] = VEC_K_GREY;
    }
    return n;
}

int vectors_per_item(struct db *db, int64_t instance_id)
{
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st =
        c ? sql_prepare(c, "SELECT regions, views FROM instances WHERE id = ?") : NULL;
    int ks[VEC_KINDS], n = 1;
    if (!st)
        return 1;
    sql_bind_int64(st, 1, instance_id);
    if (sql_step(st) == SQL_ROW)
        n = vectors_kinds(sql_column_int(st, 0), sql_column_int(st, 1), ks);
    sql_finalize(st);
    return n;
}

long long vectors_change_seq(struct db *db, int64_t instance_id)
{
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st =
        c ? sql_prepare(c, "SELECT change_seq FROM instances WHERE id = ?") : NULL;
    long long v = -1;
    if (!st)
        return -1;
    sql_bind_int64(st, 1, instance_id);
    if (sql_step(st) == SQL_ROW)
        v = sql_column_int64(st, 0);
    sql_finalize(st);
    return v;
}

enum db_status vectors_projection(struct db *db, int64_t instance_id, char **digest)
{
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st =
        c ? sql_prepare(c, "SELECT projection FROM instances WHERE id = ?") : NULL;
    *digest = NULL;
    if (!st)
        return DB_ERROR;
    sql_bind_int64(st, 1, instance_id);
    int s = sql_step(st);
    enum db_status rc = s == SQL_ROW ? DB_OK : s == SQL_DONE ? DB_NOT_FOUND : DB_ERROR;
    const char *t = rc == DB_OK ? sql_column_text(st, 0) : NULL;
    if (t && !(*digest = strdup(t)))
        rc = DB_ERROR;
    sql_finalize(st);
    return rc;
}

int vectors_shards(struct db *db, int64_t instance_id)
{
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st = c ? sql_prepare(c, "SELECT shards FROM instances WHERE id = ?") : NULL;
    int v = -1;
    if (!st)
        return -1;
    sql_bind_int64(st, 1, instance_id);
    if (sql_step(st) == SQL_ROW)
        v = sql_column_int(st, 0);
    sql_finalize(st);
    return v;
}
