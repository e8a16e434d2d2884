/* test_items.c: items_put's write transaction when it fails. On SQLite, a
 * COMMIT that runs out of space (RLIMIT_FSIZE stands in for a full disk:
 * writes past it fail with EFBIG, no root or mount needed) fails, stores
 * nothing, leaves change_seq as it was, says why in db_last_error, and the
 * same connection works again once there is room, integrity_check clean.
 * A full disk is the server's own on PostgreSQL, so there the same promises
 * are checked on a write that fails inside its transaction (a lock wait
 * that times out). The snapshot change log on both back ends. Search
 * results' metadata read in batches: order, gone rows, another instance's
 * rows, and a prefix read that stops once enough rows are present. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include "storage/db.h"
#include "storage/instances.h"
#include "storage/items.h"
#include "storage/vectors.h"
#include "tests/storage/testdb.h"
#include "tests/unit.h"

#define DIM 8

#define dir testdb_dir

static struct db *open_with_instance(const char *name, int64_t *inst)
{
    struct db *db = NULL;
    CHECK_INT(testdb_open(name, &db), 0);
    if (!db)
        return NULL;
    struct instance in = {.project_id = "p", .name = "i", .model = "common-search"};
    CHECK_INT(instances_create(db, &in), DB_OK);
    *inst = in.id;
    return db;
}

static enum db_status put(struct db *db, int64_t inst, const char *id, const uint8_t *thumb,
                          size_t thumb_len)
{
    static const float vec[DIM] = {1, 0, 0, 0, 0, 0, 0, 0};
    struct item_rec rec = {.item_id = id,
                           .vector = vec,
                           .dim = DIM,
                           .width = 10,
                           .height = 10,
                           .thumb = thumb,
                           .thumb_len = thumb_len};
    int64_t old = 0;
    return items_put(db, inst, &rec, 0, &old);
}

static int exists(struct db *db, int64_t inst, const char *id)
{
    return items_get(db, inst, id, NULL, NULL) == DB_OK;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

static void test_commit_out_of_space(void)
{
    if (testdb_pg())
        return; /* SQLite's own files; test_write_fails_in_txn instead */
    int64_t inst = 0;
    struct db *db = open_with_instance("full", &inst);
    if (!db)
        return;
    CHECK_INT(put(db, inst, "before", NULL, 0), DB_OK);
    long long seq = vectors_change_seq(db, inst);

    /* Room for nothing beyond what the files hold now; the 64 KB thumbnail
     * stays in SQLite's page cache until COMMIT writes it to the WAL. */
    char path[160];
    long biggest = 0;
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/full.db%s", dir, suffixes[i]);
        if (file_size(path) > biggest)
            biggest = file_size(path);
    }
    size_t big_len = 64 * 1024;
    uint8_t *big = calloc(1, big_len);
    struct rlimit saved, small;
    getrlimit(RLIMIT_FSIZE, &saved);
    small = saved;
    small.rlim_cur = (rlim_t)biggest;
    signal(SIGXFSZ, SIG_IGN); /* EFBIG instead of death */
    CHECK_INT(setrlimit(RLIMIT_FSIZE, &small), 0);
    enum db_status s = put(db, inst, "refused", big, big_len);
    setrlimit(RLIMIT_FSIZE, &saved);
    signal(SIGXFSZ, SIG_DFL);
    CHECK_INT(s, DB_ERROR);
    CHECK(strcmp(db_last_error(), "no error") != 0);
    CHECK(!exists(db, inst, "refused"));
    CHECK_INT(vectors_change_seq(db, inst), seq);

    /* Room again: the same connection goes on. */
    CHECK_INT(put(db, inst, "after", big, big_len), DB_OK);
    CHECK(exists(db, inst, "before") && exists(db, inst, "after"));
    CHECK_STR(testdb_query_text(db_conn(db), "PRAGMA integrity_check"), "ok");
    free(big);
    db_close(db);
}

/* PostgreSQL: another session holds the instance's row lock, so the put's
 * change_seq bump waits and times out (lock_timeout): DB_ERROR, the reason
 * in db_last_error, nothing stored, change_seq unchanged; once the lock is
 * gone the same connection writes again. */
static void test_write_fails_in_txn(void)
{
    if (!testdb_pg())
        return;
    int64_t inst = 0;
    struct db *db = open_with_instance("locked", &inst);
    char dsn[512], err[256];
    const char *t = testdb_target("locked", dsn, sizeof dsn);
    struct sql_conn *other = NULL;
    CHECK(t && sql_open(SQL_POSTGRES, t, &other, err, sizeof err) == 0);
    if (!db || !other) {
        sql_close(other);
        db_close(db);
        return;
    }
    CHECK_INT(put(db, inst, "before", NULL, 0), DB_OK);
    long long seq = vectors_change_seq(db, inst);
    CHECK_INT(sql_exec(db_conn(db), "SET lock_timeout = '200ms'"), 0);
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT id FROM instances WHERE id = %lld FOR UPDATE",
             (long long)inst);
    CHECK_INT(sql_begin(other), 0);
    CHECK_INT(sql_exec(other, sql), 0);
    CHECK_INT(put(db, inst, "refused", NULL, 0), DB_ERROR);
    CHECK(strstr(db_last_error(), "lock timeout") != NULL);
    sql_rollback(other);
    CHECK(!exists(db, inst, "refused"));
    CHECK_INT(vectors_change_seq(db, inst), seq);
    CHECK_INT(put(db, inst, "after", NULL, 0), DB_OK);
    CHECK(exists(db, inst, "before") && exists(db, inst, "after"));
    sql_close(other);
    db_close(db);
}

static int collect(void *arg, size_t n, const int64_t *ids, const float *vecs)
{
    int64_t *acc = arg;
    (void)vecs;
    for (size_t i = 0; i < n; i++)
        acc[1 + acc[0]++] = ids[i];
    return 0;
}

static int has(const int64_t *a, size_t n, int64_t v)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] == v)
            return 1;
    return 0;
}

/* The snapshot change log: each insert carries its seq, each removal leaves
 * a tombstone; a forced replacement is both in one seq; pruning drops what a
 * snapshot covers and raises replay_floor. */
static void test_change_log(void)
{
    int64_t inst = 0, row;
    struct db *db = open_with_instance("log", &inst);
    if (!db)
        return;
    static const float vec[DIM] = {1, 0, 0, 0, 0, 0, 0, 0};
    struct item_rec a = {.item_id = "a", .vector = vec, .dim = DIM};
    struct item_rec b = a, c = a, a2 = a;
    b.item_id = "b";
    c.item_id = "c";
    int64_t old = 0;
    CHECK_INT(items_put(db, inst, &a, 0, &old), DB_OK);
    CHECK_INT(items_put(db, inst, &b, 0, &old), DB_OK);
    CHECK_INT(items_put(db, inst, &c, 0, &old), DB_OK);
    CHECK_INT(items_delete(db, inst, "b", &row), DB_OK); /* seq 4 */
    CHECK_INT(row, b.row);
    CHECK_INT(items_put(db, inst, &a2, 1, &old), DB_OK); /* seq 5: a replaced */
    CHECK_INT(old, a.row);
    CHECK_INT(items_update(db, inst, "c", "desc", NULL, NULL, 0), DB_OK); /* no vector change */
    int64_t cs = -1, floor = -1;
    CHECK_INT(vectors_log_state(db, inst, &cs, &floor), 0);
    CHECK_INT(cs, 5);
    CHECK_INT(floor, 0);

    int64_t *rows = NULL;
    size_t n = 0;
    CHECK_INT(vectors_changed_rows(db, inst, 3, &rows, &n), 0);
    CHECK_INT(n, 3);
    CHECK(has(rows, n, b.row) && has(rows, n, a.row) && has(rows, n, a2.row));
    free(rows);
    CHECK_INT(vectors_changed_rows(db, inst, 5, &rows, &n), 0);
    CHECK_INT(n, 0);
    free(rows);
    int64_t got[16] = {0};
    CHECK_INT(vectors_for_each_since(db, inst, 2, DIM, NULL, collect, got), 0);
    CHECK_INT(got[0], 2); /* c (seq 3) and the new a (seq 5) */
    CHECK(has(got + 1, 2, c.row) && has(got + 1, 2, a2.row));

    CHECK_INT(vectors_prune_log(db, inst, 4), 0);
    CHECK_INT(vectors_log_state(db, inst, &cs, &floor), 0);
    CHECK_INT(floor, 4);
    CHECK_INT(vectors_changed_rows(db, inst, 0, &rows, &n), 0);
    CHECK(!has(rows, n, b.row)); /* its tombstone (seq 4) is pruned */
    CHECK(has(rows, n, a.row));  /* seq 5 is not */
    free(rows);
    CHECK_INT(vectors_prune_log(db, inst, 2), 0); /* never lowers the floor */
    CHECK_INT(vectors_log_state(db, inst, &cs, &floor), 0);
    CHECK_INT(floor, 4);
    db_close(db);
}

/* 150 items (three batches of items_meta's 64), every third deleted. */
static void test_meta_batches(void)
{
    int64_t inst = 0, other = 0, row;
    struct db *db = open_with_instance("meta", &inst);
    if (!db)
        return;
    struct instance in2 = {.project_id = "p", .name = "other", .model = "common-search"};
    CHECK_INT(instances_create(db, &in2), DB_OK);
    other = in2.id;
    static const float vec[DIM] = {1, 0, 0, 0, 0, 0, 0, 0};
    enum { N = 150 };
    int64_t rows[N + 2];
    char name[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(name[i], sizeof name[i], "it%03d", i);
        struct item_rec r = {.item_id = name[i], .vector = vec, .dim = DIM, .desc = name[i]};
        int64_t old = 0;
        CHECK_INT(items_put(db, inst, &r, 0, &old), DB_OK);
        rows[N - 1 - i] = r.row; /* newest first: not the table's order */
    }
    for (int i = 0; i < N; i += 3)
        CHECK_INT(items_delete(db, inst, name[i], &row), DB_OK);
    struct item_rec stranger = {.item_id = "x", .vector = vec, .dim = DIM};
    int64_t old = 0;
    CHECK_INT(items_put(db, other, &stranger, 0, &old), DB_OK);
    rows[N] = stranger.row; /* another instance's row reads as gone */
    rows[N + 1] = 1L << 40; /* never a row */

    struct item_meta *m = NULL;
    CHECK_INT(items_meta(db, inst, rows, N + 2, NULL, &m), DB_OK);
    int present = 0, right = 1;
    for (int k = 0; m && k < N; k++) {
        int i = N - 1 - k;
        right &= m[k].row == rows[k];
        if (i % 3 == 0) {
            right &= m[k].item_id == NULL;
        } else {
            present++;
            json_t *d = m[k].item_id ? json_object_get(m[k].source, "desc") : NULL;
            right &= m[k].item_id && !strcmp(m[k].item_id, name[i]) && d &&
                     !strcmp(json_string_value(d), name[i]);
        }
    }
    CHECK(right);
    CHECK_INT(present, 100);
    CHECK(m && !m[N].item_id && !m[N + 1].item_id);
    items_meta_free(m, N + 2);

    /* A page of 10 after 5: one batch is enough, the rest is left unread. */
    size_t scanned = 0;
    CHECK_INT(items_meta_prefix(db, inst, rows, N + 2, 15, NULL, &m, &scanned), DB_OK);
    CHECK_INT(scanned, 64);
    CHECK(m && m[scanned].item_id == NULL && m[scanned].row == 0);
    items_meta_free(m, N + 2);
    /* More present rows wanted than one batch holds: reads on. */
    CHECK_INT(items_meta_prefix(db, inst, rows, N + 2, 50, NULL, &m, &scanned), DB_OK);
    CHECK_INT(scanned, 128);
    items_meta_free(m, N + 2);
    CHECK_INT(items_meta_prefix(db, inst, rows, 0, 10, NULL, &m, &scanned), DB_OK);
    CHECK_INT(scanned, 0);
    items_meta_free(m, 0);
    db_close(db);
}

int main(void)
{
    if (testdb_init("test-items") != 0)
        return 1;
    RUN(test_commit_out_of_space);
    RUN(test_write_fails_in_txn);
    RUN(test_change_log);
    RUN(test_meta_batches);
    testdb_cleanup();
    return unit_report();
}
