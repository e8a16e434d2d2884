/* test_db.c: storage/db.c and storage/instances.c on a temporary database.
 * Migrations bring the schema to schema_count() and re-opening runs none
 * again; a database from a newer server is refused; WAL and foreign keys are
 * on for every connection; instances create/get/list/delete, DB_EXISTS on a
 * duplicate, projects kept apart, tag key lists and search type bits stored
 * and read back; db_conn gives each thread its own working connection;
 * concurrent writers queue and a failed COMMIT does not block the next;
 * commit and checkpoint times are reported. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "storage/db.h"
#include "storage/instances.h"
#include "storage/schema.h"
#include "tests/unit.h"

static char dir[64];
static char path[128];
static int seq;

/* A fresh database file name in the test's temp directory. */
static const char *fresh_path(void)
{
    snprintf(path, sizeof path, "%s/meta-%d.db", dir, ++seq);
    return path;
}

static struct db *open_fresh(void)
{
    struct db *db = NULL;
    char err[512] = "";
    int rc = db_open(fresh_path(), &db, err, sizeof err);
    CHECK_INT(rc, 0);
    if (rc)
        fprintf(stderr, "  db_open: %s\n", err);
    return rc == 0 ? db : NULL;
}

/* First column of the first row of `sql`, as text (static buffer). */
static const char *query_text(sqlite3 *c, const char *sql)
{
    static char buf[256];
    buf[0] = 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        snprintf(buf, sizeof buf, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return buf;
}

static long long query_int(sqlite3 *c, const char *sql)
{
    return atoll(query_text(c, sql));
}

static void test_open_and_migrate(void)
{
    struct db *db = open_fresh();
    if (!db)
        return;
    CHECK(schema_count() > 0);
    CHECK_INT(db_schema_version(db), schema_count());
    sqlite3 *c = db_conn(db);
    CHECK(c != NULL);
    CHECK_INT(query_int(c, "SELECT count(*) FROM sqlite_master WHERE type='table' AND"
                           " name IN ('projects','instances','items')"),
              3);
    db_close(db);
}

static void test_reopen_is_idempotent(void)
{
    char err[512] = "";
    struct db *db = open_fresh();
    if (!db)
        return;
    char p[128];
    snprintf(p, sizeof p, "%s", path);
    struct instance in = {.project_id = "proj", .name = "keep", .search_types = ST_IMAGE};
    CHECK_INT(instances_create(db, &in), DB_OK);
    long long objects = query_int(db_conn(db), "SELECT count(*) FROM sqlite_master WHERE type IN"
                                               " ('table','index')");
    db_close(db);

    for (int round = 0; round < 2; round++) {
        db = NULL;
        CHECK_INT(db_open(p, &db, err, sizeof err), 0);
        if (!db)
            return;
        CHECK_INT(db_schema_version(db), schema_count());
        CHECK_INT(query_int(db_conn(db), "SELECT count(*) FROM sqlite_master WHERE type IN"
                                         " ('table','index')"),
                  objects);
        struct instance got;
        CHECK_INT(instances_get(db, "proj", "keep", &got), DB_OK);
        instance_free(&got);
        db_close(db);
    }
}

static void test_newer_schema_refused(void)
{
    struct db *db = open_fresh();
    if (!db)
        return;
    char p[128], sql[64], err[512] = "";
    snprintf(p, sizeof p, "%s", path);
    snprintf(sql, sizeof sql, "PRAGMA user_version=%zu", schema_count() + 1);
    CHECK_INT(sqlite3_exec(db_conn(db), sql, NULL, NULL, NULL), SQLITE_OK);
    db_close(db);
    db = NULL;
    CHECK_INT(db_open(p, &db, err, sizeof err), -1);
    CHECK(db == NULL);
    CHECK(strstr(err, "newer") != NULL);
    CHECK(strstr(err, p) != NULL);
}

static void test_open_bad_path(void)
{
    struct db *db = NULL;
    char err[512] = "";
    CHECK_INT(db_open("/nonexistent-dir/x/meta.db", &db, err, sizeof err), -1);
    CHECK(db == NULL);
    CHECK(strstr(err, "/nonexistent-dir/x/meta.db") != NULL);
}

static void test_pragmas(void)
{
    struct db *db = open_fresh();
    if (!db)
        return;
    sqlite3 *c = db_conn(db);
    CHECK_STR(query_text(c, "PRAGMA journal_mode"), "wal");
    CHECK_INT(query_int(c, "PRAGMA foreign_keys"), 1);
    /* Foreign keys are enforced, not just declared. */
    CHECK(sqlite3_exec(c,
                       "INSERT INTO instances(project_id, name, created_ms)"
                       " VALUES ('no-such-project', 'x', 0)",
                       NULL, NULL, NULL) != SQLITE_OK);
    db_close(db);
}

static void test_instance_crud(void)
{
    struct db *db = open_fresh();
    if (!db)
        return;
    char *tags[] = {"color", "brand"};
    struct instance in = {.project_id = "p1",
                          .name = "shoes",
                          .description = "my shoes",
                          .model = "image-recommend",
                          .level = 1000,
                          .search_types = ST_IMAGE | ST_KEYWORD,
                          .tag_keys = tags,
                          .n_tag_keys = 2};
    long long before = now_ms();
    CHECK_INT(instances_create(db, &in), DB_OK);
    CHECK(in.id > 0);
    CHECK(in.created_ms >= before && in.created_ms <= now_ms());

    struct instance got;
    CHECK_INT(instances_get(db, "p1", "shoes", &got), DB_OK);
    CHECK_INT(got.id, in.id);
    CHECK_STR(got.project_id, "p1");
    CHECK_STR(got.name, "shoes");
    CHECK_STR(got.description, "my shoes");
    CHECK_STR(got.model, "image-recommend");
    CHECK_INT(got.level, 1000);
    CHECK_INT(got.search_types, ST_IMAGE | ST_KEYWORD);
    CHECK_INT(got.created_ms, in.created_ms);
    CHECK_STR(got.status, "NORMAL");
    CHECK_INT(got.item_count, 0);
    CHECK_INT(got.n_tag_keys, 2);
    CHECK_INT(got.n_num_tag_keys, 0);
    CHECK(instance_has_tag_key(&got, "color"));
    CHECK(instance_has_tag_key(&got, "brand"));
    CHECK(!instance_has_tag_key(&got, "size"));
    CHECK(!instance_has_num_tag_key(&got, "color"));
    instance_free(&got);

    /* Defaults for what the caller left out. */
    struct instance bare = {.project_id = "p1", .name = "bare"};
    CHECK_INT(instances_create(db, &bare), DB_OK);
    CHECK_INT(instances_get(db, "p1", "bare", &got), DB_OK);
    CHECK_STR(got.description, "");
    CHECK_STR(got.model, "common-search");
    CHECK_INT(got.level, 30000000);
    CHECK_INT(got.n_tag_keys, 0);
    instance_free(&got);

    CHECK_INT(instances_get(db, "p1", "nope", &got), DB_NOT_FOUND);

    /* Listed by name. */
    struct instance *list = NULL;
    size_t n = 0;
    CHECK_INT(instances_list(db, "p1", &list, &n), DB_OK);
    CHECK_INT(n, 2);
    if (n == 2) {
        CHECK_STR(list[0].name, "bare");
        CHECK_STR(list[1].name, "shoes");
        CHECK_INT(list[1].n_tag_keys, 2);
    }
    instances_free(list, n);

    int64_t id = 0;
    CHECK_INT(instances_delete(db, "p1", "shoes", &id), DB_OK);
    CHECK_INT(id, in.id);
    CHECK_INT(instances_get(db, "p1", "shoes", &got), DB_NOT_FOUND);
    CHECK_INT(instances_delete(db, "p1", "shoes", &id), DB_NOT_FOUND);
    CHECK_INT(instances_list(db, "p1", &list, &n), DB_OK);
    CHECK_INT(n, 1);
    instances_free(list, n);
    /* The name is free again. */
    CHECK_INT(instances_create(db, &in), DB_OK);
    db_close(db);
}

static void test_duplicate_and_projects(void)
{
    struct db *db = open_fresh();
    if (!db)
        return;
    struct instance a = {.project_id = "pa", .name = "same", .description = "A"};
    struct instance dup = {.project_id = "pa", .name = "same", .description = "dup"};
    struct instance b = {.project_id = "pb", .name = "same", .description = "B"};
    CHECK_INT(instances_create(db, &a), DB_OK);
    CHECK_INT(instances_create(db, &dup), DB_EXISTS);
    CHECK_INT(instances_create(db, &b), DB_OK); /* another project: its own namespace */
    CHECK(a.id != b.id);

    /* The failed create left no transaction open: writes still work. */
    struct instance c = {.project_id = "pa", .name = "other"};
    CHECK_INT(instances_create(db, &c), DB_OK);

    struct instance got;
    CHECK_INT(instances_get(db, "pa", "same", &got), DB_OK);
    CHECK_STR(got.description, "A");
    instance_free(&got);
    CHECK_INT(instances_get(db, "pb", "same", &got), DB_OK);
    CHECK_STR(got.description, "B");
    instance_free(&got);
    CHECK_INT(instances_get(db, "pc", "same", &got), DB_NOT_FOUND);
    CHECK_INT(instances_get(db, "pb", "other", &got), DB_NOT_FOUND);

    struct instance *list = NULL;
    size_t n = 0;
    CHECK_INT(instances_list(db, "pa", &list, &n), DB_OK);
    CHECK_INT(n, 2);
    instances_free(list, n);
    CHECK_INT(instances_list(db, "pb", &list, &n), DB_OK);
    CHECK_INT(n, 1);
    instances_free(list, n);
    CHECK_INT(instances_list(db, "nobody", &list, &n), DB_OK);
    CHECK_INT(n, 0);
    instances_free(list, n);
    /* instances_all sees every project, in creation order. */
    CHECK_INT(instances_all(db, &list, &n), DB_OK);
    CHECK_INT(n, 3);
    if (n == 3) {
        CHECK_STR(list[0].project_id, "pa");
        CHECK_STR(list[1].project_id, "pb");
        CHECK_STR(list[2].name, "other");
    }
    instances_free(list, n);

    /* Deleting in one project leaves the other's namesake alone. */
    int64_t id = 0;
    CHECK_INT(instances_delete(db, "pa", "same", &id), DB_OK);
    CHECK_INT(id, a.id);
    CHECK_INT(instances_get(db, "pb", "same", &got), DB_OK);
    instance_free(&got);
    CHECK_INT(instances_delete(db, "pc", "same", &id), DB_NOT_FOUND);
    db_close(db);
}

static void test_tag_keys_round_trip(void)
{
    struct db *db = open_fresh();
    if (!db)
        return;
    char *tags[] = {"color", "中文标签", "with \"quotes\" and \\", "", "a,b"};
    char *num[] = {"price", "weight"};
    struct instance in = {.project_id = "p",
                          .name = "tags",
                          .tag_keys = tags,
                          .n_tag_keys = 5,
                          .num_tag_keys = num,
                          .n_num_tag_keys = 2};
    CHECK_INT(instances_create(db, &in), DB_OK);
    struct instance got;
    CHECK_INT(instances_get(db, "p", "tags", &got), DB_OK);
    CHECK_INT(got.n_tag_keys, 5);
    for (size_t i = 0; i < got.n_tag_keys && i < 5; i++)
        CHECK_STR(got.tag_keys[i], tags[i]);
    CHECK_INT(got.n_num_tag_keys, 2);
    for (size_t i = 0; i < got.n_num_tag_keys && i < 2; i++)
        CHECK_STR(got.num_tag_keys[i], num[i]);
    CHECK(instance_has_num_tag_key(&got, "price"));
    CHECK(!instance_has_num_tag_key(&got, "color"));
    CHECK(instance_has_tag_key(&got, "中文标签"));
    instance_free(&got);
    CHECK(got.tag_keys == NULL && got.name == NULL); /* instance_free clears */
    db_close(db);
}

static void test_search_types_round_trip(void)
{
    struct db *db = open_fresh();
    if (!db)
        return;
    for (unsigned bits = 0; bits < 16; bits++) {
        char name[16];
        snprintf(name, sizeof name, "t%u", bits);
        struct instance in = {.project_id = "p", .name = name, .search_types = bits};
        CHECK_INT(instances_create(db, &in), DB_OK);
        struct instance got;
        CHECK_INT(instances_get(db, "p", name, &got), DB_OK);
        CHECK_INT(got.search_types, bits);
        instance_free(&got);
    }
    db_close(db);

    CHECK_INT(search_type_parse("IMAGE"), ST_IMAGE);
    CHECK_INT(search_type_parse("KEYWORD"), ST_KEYWORD);
    CHECK_INT(search_type_parse("TEXT"), ST_TEXT);
    CHECK_INT(search_type_parse("CATEGORY"), ST_CATEGORY);
    CHECK_INT(search_type_parse("0"), ST_IMAGE);
    CHECK_INT(search_type_parse("3"), ST_CATEGORY);
    CHECK_INT(search_type_parse("4"), 0);
    CHECK_INT(search_type_parse("image"), 0);
    CHECK_INT(search_type_parse(""), 0);
    CHECK_STR(search_type_name(ST_IMAGE), "IMAGE");
    CHECK_STR(search_type_name(ST_CATEGORY), "CATEGORY");
    CHECK_STR(search_type_name(ST_IMAGE | ST_TEXT), "?");
}

/* --- threads ---------------------------------------------------------------- */

struct thread_arg {
    struct db *db;
    pthread_barrier_t *barrier;
    sqlite3 *conn;
    int ok;
    int idx;
};

static void *thread_main(void *p)
{
    struct thread_arg *a = p;
    a->conn = db_conn(a->db);
    /* The same thread gets the same connection back. */
    int same = a->conn && db_conn(a->db) == a->conn;
    /* Hold the connection until both threads have theirs. */
    pthread_barrier_wait(a->barrier);
    char name[16];
    snprintf(name, sizeof name, "thr%d", a->idx);
    struct instance in = {.project_id = "threads", .name = name};
    struct instance got;
    a->ok = same && instances_create(a->db, &in) == DB_OK &&
            instances_get(a->db, "threads", name, &got) == DB_OK;
    if (a->ok)
        instance_free(&got);
    pthread_barrier_wait(a->barrier);
    return NULL;
}

static void test_conn_per_thread(void)
{
    struct db *db = open_fresh();
    if (!db)
        return;
    sqlite3 *mine = db_conn(db);
    CHECK(mine != NULL);
    CHECK(db_conn(db) == mine);
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, 2);
    struct thread_arg args[2] = {{db, &barrier, NULL, 0, 0}, {db, &barrier, NULL, 0, 1}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        CHECK_INT(pthread_create(&th[i], NULL, thread_main, &args[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&barrier);
    CHECK(args[0].conn != NULL && args[1].conn != NULL);
    CHECK(args[0].conn != args[1].conn);
    CHECK(args[0].conn != mine && args[1].conn != mine);
    CHECK(args[0].ok);
    CHECK(args[1].ok);
    /* Both writes are visible from the main thread's connection, and each
     * thread connection was set up like the first (WAL, foreign keys). */
    struct instance *list = NULL;
    size_t n = 0;
    CHECK_INT(instances_list(db, "threads", &list, &n), DB_OK);
    CHECK_INT(n, 2);
    instances_free(list, n);
    for (int i = 0; i < 2; i++)
        CHECK_INT(query_int(args[i].conn, "PRAGMA foreign_keys"), 1);
    db_close(db); /* closes the threads' connections too (ASan checks leaks) */
}

/* Writers queue on db.c's mutex: many threads creating instances at once all
 * succeed, and a failed COMMIT or a ROLLBACK leaves the next writer free to
 * go (a mutex left held would hang the writer thread below). */
static void *writer_main(void *p)
{
    struct thread_arg *a = p;
    a->ok = 1;
    for (int i = 0; i < 50; i++) {
        char name[32];
        snprintf(name, sizeof name, "w%d-%d", a->idx, i);
        struct instance in = {.project_id = "writers", .name = name};
        if (instances_create(a->db, &in) != DB_OK)
            a->ok = 0;
    }
    return NULL;
}

static int write_from_thread(struct db *db, int idx)
{
    struct thread_arg a = {db, NULL, NULL, 0, idx};
    pthread_t th;
    if (pthread_create(&th, NULL, writer_main, &a) != 0)
        return 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 30;
    if (pthread_timedjoin_np(th, NULL, &ts) != 0) {
        fprintf(stderr, "  a writer waited 30 s: the write mutex was left held\n");
        exit(1);
    }
    return a.ok;
}

static void test_writers_queue(void)
{
    struct db *db = open_fresh();
    if (!db)
        return;
    struct thread_arg args[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct thread_arg){db, NULL, NULL, 0, i};
        CHECK_INT(pthread_create(&th[i], NULL, writer_main, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(args[i].ok);
    }
    struct instance *list = NULL;
    size_t n = 0;
    CHECK_INT(instances_list(db, "writers", &list, &n), DB_OK);
    CHECK_INT(n, 200);
    instances_free(list, n);

    sqlite3 *c = db_conn(db);
    CHECK_INT(db_begin(c), 0);
    db_rollback(c);
    CHECK(write_from_thread(db, 10));

    /* A COMMIT that fails (a deferred foreign key left dangling) is rolled
     * back by db_commit itself. */
    CHECK_INT(sqlite3_exec(c,
                           "CREATE TABLE p(id INTEGER PRIMARY KEY);"
                           "CREATE TABLE ch(pid INTEGER REFERENCES p(id) "
                           "DEFERRABLE INITIALLY DEFERRED);",
                           NULL, NULL, NULL),
              SQLITE_OK);
    CHECK_INT(db_begin(c), 0);
    CHECK_INT(sqlite3_exec(c, "INSERT INTO ch VALUES (5)", NULL, NULL, NULL), SQLITE_OK);
    CHECK(db_commit(c) != 0);
    CHECK(sqlite3_get_autocommit(c));
    CHECK_INT(query_int(c, "SELECT count(*) FROM ch"), 0);
    db_rollback(c); /* what callers do after a failed commit: harmless now */
    CHECK(write_from_thread(db, 11));
    db_close(db);
}

/* db_write_times_take reports COMMIT time and the checkpoint the WAL hook
 * runs past 1000 pages (it replaces SQLite's auto-checkpoint, which must
 * still happen: the WAL is reset, not left growing), and resets. */
static void test_write_times(void)
{
    struct db *db = open_fresh();
    if (!db)
        return;
    sqlite3 *c = db_conn(db);
    struct db_write_times t;
    db_write_times_take(&t);
    CHECK_INT(sqlite3_exec(c, "CREATE TABLE big(b BLOB)", NULL, NULL, NULL), SQLITE_OK);
    CHECK_INT(db_begin(c), 0);
    CHECK_INT(sqlite3_exec(c,
                           "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                           "WHERE i < 1200) INSERT INTO big SELECT zeroblob(4000) FROM n",
                           NULL, NULL, NULL),
              SQLITE_OK);
    CHECK_INT(db_commit(c), 0);
    db_write_times_take(&t);
    CHECK(t.commit_ms > 0);
    CHECK(t.checkpoint_ms > 0);
    CHECK(t.wait_ms >= 0);
    db_write_times_take(&t);
    CHECK(t.commit_ms == 0 && t.checkpoint_ms == 0 && t.wait_ms == 0);
    /* Checkpointed: the next write starts the WAL over, so it stays small. */
    CHECK_INT(db_begin(c), 0);
    CHECK_INT(sqlite3_exec(c, "INSERT INTO big VALUES (x'00')", NULL, NULL, NULL), SQLITE_OK);
    CHECK_INT(db_commit(c), 0);
    int log = -1, ckpt = -1;
    CHECK_INT(sqlite3_wal_checkpoint_v2(c, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &ckpt),
              SQLITE_OK);
    CHECK(log >= 0 && log < 100);
    db_close(db);
}

static void cleanup(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/imgsearch-test-db-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_open_and_migrate);
    RUN(test_reopen_is_idempotent);
    RUN(test_newer_schema_refused);
    RUN(test_open_bad_path);
    RUN(test_pragmas);
    RUN(test_instance_crud);
    RUN(test_duplicate_and_projects);
    RUN(test_tag_keys_round_trip);
    RUN(test_search_types_round_trip);
    RUN(test_conn_per_thread);
    RUN(test_writers_queue);
    RUN(test_write_times);
    cleanup();
    return unit_report();
}
