/* test_db.c: storage/db.c and storage/instances.c on a temporary database
 * (SQLite, or PostgreSQL with IMGSEARCH_TEST_PG_DSN: tests/storage/testdb.h).
 * Migrations bring the schema to schema_count() and re-opening runs none
 * again; a database from a newer server is refused; SQLite's WAL and
 * foreign keys are on for every connection, and both back ends enforce
 * foreign keys; instances create/get/list/delete, DB_EXISTS on a
 * duplicate, projects kept apart, tag key lists and search type bits stored
 * and read back; db_conn gives each thread its own working connection;
 * concurrent writers queue and a failed COMMIT does not block the next;
 * commit and checkpoint times are reported; on PostgreSQL, a connection the
 * server dropped is reopened, and an unreachable server fails db_open with
 * a clear error. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "storage/db.h"
#include "storage/instances.h"
#include "storage/schema.h"
#include "tests/storage/testdb.h"
#include "tests/unit.h"

static char target[512];
static int seq;

/* A fresh database; its target (path or DSN) stays in `target`. */
static struct db *open_fresh(void)
{
    char name[32];
    snprintf(name, sizeof name, "meta-%d", ++seq);
    struct db *db = NULL;
    char err[512] = "";
    const char *t = testdb_target(name, target, sizeof target);
    int rc = t ? db_open_backend(testdb_backend(), t, &db, err, sizeof err) : -1;
    CHECK_INT(rc, 0);
    if (rc)
        fprintf(stderr, "  db_open: %s\n", err);
    return rc == 0 ? db : NULL;
}

#define query_text testdb_query_text
#define query_int testdb_query_int

/* Tables and indexes of the schema, by the back end's catalogue. */
static long long schema_objects(struct sql_conn *c)
{
    return query_int(c, testdb_pg() ? "SELECT count(*) FROM pg_class WHERE relkind IN ('r', 'i')"
                                      " AND relnamespace = 'public'::regnamespace"
                                    : "SELECT count(*) FROM sqlite_master WHERE type IN"
                                      " ('table','index')");
}

static void test_open_and_migrate(void)
{
    struct db *db = open_fresh();
    if (!db)
        return;
    CHECK(schema_count() > 0);
    CHECK_INT(schema_pg_count(), schema_count());
    CHECK_INT(db_schema_version(db), schema_count());
    CHECK_INT(db_backend(db), testdb_backend());
    struct sql_conn *c = db_conn(db);
    CHECK(c != NULL);
    CHECK_INT(query_int(c, testdb_pg() ? "SELECT count(*) FROM information_schema.tables WHERE"
                                         " table_schema = 'public' AND"
                                         " table_name IN ('projects','instances','items')"
                                       : "SELECT count(*) FROM sqlite_master WHERE type='table'"
                                         " AND name IN ('projects','instances','items')"),
              3);
    if (testdb_pg()) /* one row per migration, each applied once */
        CHECK_INT(query_int(c, "SELECT count(*) FROM schema_migrations"), schema_count());
    db_close(db);
}

static void test_reopen_is_idempotent(void)
{
    char err[512] = "";
    struct db *db = open_fresh();
    if (!db)
        return;
    char t[512];
    snprintf(t, sizeof t, "%s", target);
    struct instance in = {.project_id = "proj", .name = "keep", .search_types = ST_IMAGE};
    CHECK_INT(instances_create(db, &in), DB_OK);
    long long objects = schema_objects(db_conn(db));
    CHECK(objects > 10);
    db_close(db);

    for (int round = 0; round < 2; round++) {
        db = NULL;
        CHECK_INT(db_open_backend(testdb_backend(), t, &db, err, sizeof err), 0);
        if (!db)
            return;
        CHECK_INT(db_schema_version(db), schema_count());
        CHECK_INT(schema_objects(db_conn(db)), objects);
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
    char t[512], sql[128], err[512] = "";
    snprintf(t, sizeof t, "%s", target);
    if (testdb_pg())
        snprintf(sql, sizeof sql, "INSERT INTO schema_migrations VALUES (%zu, 0)",
                 schema_count() + 1);
    else
        snprintf(sql, sizeof sql, "PRAGMA user_version=%zu", schema_count() + 1);
    CHECK_INT(sql_exec(db_conn(db), sql), 0);
    db_close(db);
    db = NULL;
    CHECK_INT(db_open_backend(testdb_backend(), t, &db, err, sizeof err), -1);
    CHECK(db == NULL);
    CHECK(strstr(err, "newer") != NULL);
    /* Names the database; a DSN is never echoed (it may hold a password). */
    CHECK(strstr(err, testdb_pg() ? "PostgreSQL" : t) != NULL);
}

static void test_open_bad_path(void)
{
    struct db *db = NULL;
    char err[512] = "";
    CHECK_INT(db_open("/nonexistent-dir/x/meta.db", &db, err, sizeof err), -1);
    CHECK(db == NULL);
    CHECK(strstr(err, "/nonexistent-dir/x/meta.db") != NULL);
    /* No server there (port 1): a clear error, no hang. */
    CHECK_INT(db_open_backend(SQL_POSTGRES, "host=127.0.0.1 port=1 dbname=x connect_timeout=5", &db,
                              err, sizeof err),
              -1);
    CHECK(db == NULL);
    CHECK(strstr(err, "cannot connect to PostgreSQL") != NULL);
}

static void test_connection_setup(void)
{
    struct db *db = open_fresh();
    if (!db)
        return;
    struct sql_conn *c = db_conn(db);
    if (!testdb_pg()) {
        CHECK_STR(query_text(c, "PRAGMA journal_mode"), "wal");
        CHECK_INT(query_int(c, "PRAGMA foreign_keys"), 1);
    } else {
        CHECK_STR(query_text(c, "SHOW client_encoding"), "UTF8");
    }
    /* Foreign keys are enforced, not just declared. */
    CHECK(sql_exec(c, "INSERT INTO instances(project_id, name, created_ms)"
                      " VALUES ('no-such-project', 'x', 0)") != 0);
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
    CHECK_INT(got.item_count, -1); /* a lookup does not count */
    CHECK_INT(instances_count_items(db, &got), DB_OK);
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
    struct sql_conn *conn;
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

/* A background thread closes its connection as it exits (db_thread_done):
 * gone from the server's sessions on PostgreSQL, and a later db_conn on the
 * same thread opens a working one again. ASan checks db_close after it. */
static int sessions(struct sql_conn *c)
{
    return query_int(c, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()");
}

struct done_arg {
    struct db *db;
    struct sql_conn *main_conn;
    int during, after, reopened_ok;
};

static void *done_main(void *p)
{
    struct done_arg *a = p;
    struct sql_conn *c = db_conn(a->db);
    if (c && testdb_pg())
        a->during = sessions(a->main_conn);
    db_thread_done(a->db);
    /* The server's backend leaves pg_stat_activity a moment after the
     * client hangs up: wait for it (up to 5 s). */
    for (int i = 0; testdb_pg() && i < 100; i++) {
        a->after = sessions(a->main_conn);
        if (a->after < a->during)
            break;
        usleep(50 * 1000);
    }
    struct sql_conn *again = db_conn(a->db);
    a->reopened_ok =
        again && query_int(again, testdb_pg() ? "SELECT 1" : "PRAGMA foreign_keys") == 1;
    db_thread_done(a->db);
    db_thread_done(a->db); /* none left: nothing happens */
    return NULL;
}

static void test_thread_done(void)
{
    struct db *db = open_fresh();
    if (!db)
        return;
    struct done_arg a = {.db = db, .main_conn = db_conn(db)};
    int before = testdb_pg() ? sessions(a.main_conn) : 0;
    pthread_t th;
    CHECK_INT(pthread_create(&th, NULL, done_main, &a), 0);
    pthread_join(th, NULL);
    CHECK(a.reopened_ok);
    if (testdb_pg()) {
        CHECK_INT(a.during, before + 1);
        CHECK_INT(a.after, before);
        /* The reopened connection's backend, closed last, also leaves a
         * moment after the hang-up (CI once counted it still there). */
        int end = sessions(a.main_conn);
        for (int i = 0; end != before && i < 100; i++) {
            usleep(50 * 1000);
            end = sessions(a.main_conn);
        }
        CHECK_INT(end, before);
    }
    db_close(db);
}

static void test_conn_per_thread(void)
{
    struct db *db = open_fresh();
    if (!db)
        return;
    struct sql_conn *mine = db_conn(db);
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
        CHECK_INT(query_int(args[i].conn, testdb_pg() ? "SELECT 1" : "PRAGMA foreign_keys"), 1);
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

    struct sql_conn *c = db_conn(db);
    CHECK_INT(db_begin(c), 0);
    db_rollback(c);
    CHECK(write_from_thread(db, 10));

    /* A COMMIT that fails (a deferred foreign key left dangling) is rolled
     * back by db_commit itself. */
    CHECK_INT(sql_exec(c, "CREATE TABLE p(id INTEGER PRIMARY KEY);"
                          "CREATE TABLE ch(pid INTEGER REFERENCES p(id) "
                          "DEFERRABLE INITIALLY DEFERRED);"),
              0);
    CHECK_INT(db_begin(c), 0);
    CHECK_INT(sql_exec(c, "INSERT INTO ch VALUES (5)"), 0);
    CHECK(db_commit(c) != 0);
    CHECK(!sql_in_txn(c));
    CHECK(strcmp(db_last_error(), "no error") != 0);
    CHECK_INT(query_int(c, "SELECT count(*) FROM ch"), 0);
    db_rollback(c); /* what callers do after a failed commit: harmless now */
    CHECK(write_from_thread(db, 11));
    db_close(db);
}

/* Inserts rows of 4000 bytes in one write transaction (about a WAL page
 * each on SQLite). */
static void write_big(struct sql_conn *c, int rows)
{
    char sql[256];
    if (testdb_pg())
        snprintf(sql, sizeof sql,
                 "INSERT INTO big SELECT decode(repeat('00', 4000), 'hex')"
                 " FROM generate_series(1, %d)",
                 rows);
    else
        snprintf(sql, sizeof sql,
                 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
                 " WHERE i < %d) INSERT INTO big SELECT zeroblob(4000) FROM n",
                 rows);
    CHECK_INT(db_begin(c), 0);
    CHECK_INT(sql_exec(c, sql), 0);
    CHECK_INT(db_commit(c), 0);
}

/* Pages in the WAL after a PASSIVE checkpoint, or -1 when it was busy. */
static int wal_pages_after_checkpoint(struct sql_conn *c)
{
    struct sql_stmt *st = sql_prepare(c, "PRAGMA wal_checkpoint(PASSIVE)");
    int pages = -1;
    CHECK(st && sql_step(st) == SQL_ROW);
    if (st && sql_column_int(st, 0) == 0)
        pages = sql_column_int(st, 1);
    sql_finalize(st);
    return pages;
}

/* db_write_times_take reports COMMIT time and resets. On SQLite a commit
 * past 1000 WAL pages wakes the checkpointer thread instead of
 * checkpointing itself (the checkpoint must still happen: the WAL is
 * reset, not left growing); one past SQL_WAL_BACKLOG pages checkpoints in
 * the committing thread too, timed. PostgreSQL checkpoints in its server:
 * none counted here. */
static void test_write_times(void)
{
    struct db *db = open_fresh();
    if (!db)
        return;
    struct sql_conn *c = db_conn(db);
    struct db_write_times t;
    db_write_times_take(&t);
    CHECK_INT(sql_exec(c, testdb_pg() ? "CREATE TABLE big(b BYTEA)" : "CREATE TABLE big(b BLOB)"),
              0);
    long before = db_background_checkpoints(db);
    write_big(c, 1200);
    db_write_times_take(&t);
    CHECK(t.commit_ms > 0);
    CHECK(t.checkpoint_ms == 0); /* not in this thread */
    CHECK(t.wait_ms >= 0);
    db_write_times_take(&t);
    CHECK(t.commit_ms == 0 && t.checkpoint_ms == 0 && t.wait_ms == 0);
    if (!testdb_pg()) {
        /* The checkpointer ran it (bounded wait: it was woken at COMMIT). */
        for (int i = 0; i < 500 && db_background_checkpoints(db) == before; i++)
            usleep(10000);
        CHECK(db_background_checkpoints(db) > before);
        /* Checkpointed: the next write starts the WAL over, so it stays small. */
        CHECK_INT(db_begin(c), 0);
        CHECK_INT(sql_exec(c, "INSERT INTO big VALUES (x'00')"), 0);
        CHECK_INT(db_commit(c), 0);
        int pages = wal_pages_after_checkpoint(c);
        CHECK(pages >= 0 && pages < 100);
        /* Past the backlog the committing thread checkpoints as well. */
        write_big(c, SQL_WAL_BACKLOG + 200);
        db_write_times_take(&t);
        CHECK(t.checkpoint_ms > 0);
    } else {
        CHECK_INT((int)db_background_checkpoints(db), 0);
    }
    db_close(db);
}

/* A statement runs while another one's rows are still being read, on the
 * same connection (PostgreSQL reads the rest of the first ahead for it):
 * both give all their rows, and the second's success is not marred by the
 * first. Bindings survive sql_reset, and stepping past the end runs a
 * statement again, as SQLite does. */
static void test_interleaved_statements(void)
{
    struct db *db = open_fresh();
    if (!db)
        return;
    const char *names[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        struct instance in = {.project_id = "p", .name = (char *)names[i]};
        CHECK_INT(instances_create(db, &in), DB_OK);
    }
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *outer = sql_prepare(c, "SELECT name FROM instances WHERE project_id = ?"
                                            " ORDER BY name");
    if (!outer) {
        CHECK(0);
        db_close(db);
        return;
    }
    CHECK_INT(sql_bind_text(outer, 1, "p"), 0);
    CHECK_INT(sql_bind_text(outer, 2, "too many"), -1);
    CHECK_INT(sql_step(outer), SQL_ROW);
    CHECK_STR(sql_column_text(outer, 0), "a");
    struct sql_stmt *inner = sql_prepare(c, "SELECT count(*) FROM projects");
    CHECK(inner && sql_step(inner) == SQL_ROW && sql_column_int(inner, 0) == 1);
    sql_finalize(inner);
    CHECK(sql_errmsg(c) == NULL);
    CHECK_INT(sql_step(outer), SQL_ROW);
    CHECK_STR(sql_column_text(outer, 0), "b");
    CHECK_INT(sql_step(outer), SQL_ROW);
    CHECK_STR(sql_column_text(outer, 0), "c");
    CHECK_INT(sql_step(outer), SQL_DONE);
    sql_reset(outer);
    CHECK_INT(sql_step(outer), SQL_ROW);
    CHECK_STR(sql_column_text(outer, 0), "a");
    sql_finalize(outer);
    db_close(db);
}

/* PostgreSQL: the server drops this thread's connection (a restart, an
 * admin's pg_terminate_backend); the next call reopens it, inside a write
 * and for a read alike, and a write in a transaction that loses its
 * connection fails cleanly instead of half-applying. */
static void test_reconnect(void)
{
    if (!testdb_pg())
        return;
    struct db *db = open_fresh();
    struct sql_conn *admin = testdb_admin();
    if (!db || !admin)
        goto out;
    struct sql_conn *c = db_conn(db);
    long long pid = query_int(c, "SELECT pg_backend_pid()");
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%lld)", pid);
    CHECK_INT(query_int(admin, sql), 1); /* true */
    struct instance in = {.project_id = "p", .name = "after-drop"};
    CHECK_INT(instances_create(db, &in), DB_OK); /* BEGIN reconnects */
    CHECK(db_conn(db) == c);                     /* the same handle, reset */
    long long pid2 = query_int(c, "SELECT pg_backend_pid()");
    CHECK(pid2 != pid && pid2 > 0);

    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%lld)", pid2);
    CHECK_INT(query_int(admin, sql), 1); /* true */
    struct instance got;
    CHECK_INT(instances_get(db, "p", "after-drop", &got), DB_OK); /* a read reconnects */
    instance_free(&got);

    /* Lost inside a transaction: the write fails, nothing of it stays. */
    CHECK_INT(db_begin(c), 0);
    CHECK_INT(sql_exec(c, "INSERT INTO projects(id, created_ms) VALUES ('half', 0)"), 0);
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%lld)",
             query_int(c, "SELECT pg_backend_pid()"));
    CHECK_INT(query_int(admin, sql), 1); /* true */
    CHECK(db_commit(c) != 0);
    CHECK(strcmp(db_last_error(), "no error") != 0);
    db_rollback(c); /* harmless */
    CHECK_INT(query_int(c, "SELECT count(*) FROM projects WHERE id = 'half'"), 0);
    CHECK(write_from_thread(db, 12));
out:
    sql_close(admin);
    db_close(db);
}

/* PostgreSQL: two nodes starting at once on an empty database queue on the
 * migration lock; each migration is applied once and both open. */
struct opener {
    const char *target;
    pthread_barrier_t *barrier;
    int rc;
    char err[512];
};

static void *open_main(void *p)
{
    struct opener *o = p;
    struct db *db = NULL;
    pthread_barrier_wait(o->barrier);
    o->rc = db_open_backend(SQL_POSTGRES, o->target, &db, o->err, sizeof o->err);
    db_close(db);
    return NULL;
}

static void test_concurrent_migrations(void)
{
    if (!testdb_pg())
        return;
    char t[512];
    if (!testdb_target("race", t, sizeof t)) {
        CHECK(0);
        return;
    }
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, 4);
    struct opener o[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        o[i] = (struct opener){.target = t, .barrier = &barrier};
        CHECK_INT(pthread_create(&th[i], NULL, open_main, &o[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_INT(o[i].rc, 0);
        if (o[i].rc)
            fprintf(stderr, "  opener %d: %s\n", i, o[i].err);
    }
    pthread_barrier_destroy(&barrier);
    struct db *db = NULL;
    char err[512];
    CHECK_INT(db_open_backend(SQL_POSTGRES, t, &db, err, sizeof err), 0);
    if (db) {
        CHECK_INT(query_int(db_conn(db), "SELECT count(*) FROM schema_migrations"), schema_count());
        CHECK_INT(db_schema_version(db), schema_count());
    }
    db_close(db);
}

int main(void)
{
    if (testdb_init("test-db") != 0)
        return 1;
    RUN(test_open_and_migrate);
    RUN(test_reopen_is_idempotent);
    RUN(test_newer_schema_refused);
    RUN(test_open_bad_path);
    RUN(test_connection_setup);
    RUN(test_instance_crud);
    RUN(test_duplicate_and_projects);
    RUN(test_tag_keys_round_trip);
    RUN(test_search_types_round_trip);
    RUN(test_conn_per_thread);
    RUN(test_writers_queue);
    RUN(test_write_times);
    RUN(test_interleaved_statements);
    RUN(test_reconnect);
    RUN(test_concurrent_migrations);
    RUN(test_thread_done);
    testdb_cleanup();
    return unit_report();
}
