/* testdb.h: the back end the storage tests run on. Without
 * IMGSEARCH_TEST_PG_DSN, SQLite files in a temp dir; with it (a key=value
 * conninfo for a server where that user may create databases, e.g. the
 * throwaway cluster tests/pg_cluster.sh starts), PostgreSQL: each fresh
 * target is a new database on that server, dropped at testdb_cleanup.
 * tests/run.sh runs the storage tests once each way. */
#ifndef IMGSEARCH_TESTDB_H
#define IMGSEARCH_TESTDB_H

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "storage/db.h"
#include "storage/sql.h"

static char testdb_dir[64];
static char testdb_names[64][64]; /* PostgreSQL databases to drop */
static int testdb_n;

static inline const char *testdb_dsn(void)
{
    const char *d = getenv("IMGSEARCH_TEST_PG_DSN");
    return d && *d ? d : NULL;
}

static inline int testdb_pg(void)
{
    return testdb_dsn() != NULL;
}

static inline enum sql_backend testdb_backend(void)
{
    return testdb_pg() ? SQL_POSTGRES : SQL_SQLITE;
}

/* Makes the temp dir (the tests keep other files there too); 0 or -1. */
static inline int testdb_init(const char *tag)
{
    snprintf(testdb_dir, sizeof testdb_dir, "/tmp/imgsearch-%s-XXXXXX", tag);
    if (!mkdtemp(testdb_dir)) {
        perror("mkdtemp");
        return -1;
    }
    fprintf(stderr, "# storage back end: %s\n", testdb_pg() ? "postgres" : "sqlite");
    return 0;
}

/* An admin connection to the test server (the DSN's own database). */
static inline struct sql_conn *testdb_admin(void)
{
    struct sql_conn *c = NULL;
    char err[512];
    if (sql_open(SQL_POSTGRES, testdb_dsn(), &c, err, sizeof err) != 0)
        fprintf(stderr, "  testdb: %s\n", err);
    return c;
}

/* The PostgreSQL database name for a test's `name`. */
static inline void testdb_pgname(const char *name, char *db, size_t len)
{
    int n = snprintf(db, len, "t%d_", (int)getpid());
    for (const char *p = name; *p && n < (int)len - 1; p++)
        db[n++] = isalnum((unsigned char)*p) ? (char)tolower((unsigned char)*p) : '_';
    db[n] = '\0';
}

static inline int testdb_made(const char *db)
{
    for (int i = 0; i < testdb_n; i++)
        if (!strcmp(testdb_names[i], db))
            return 1;
    return 0;
}

/* The database `name` (unique within the test binary), empty the first
 * time it is asked for: its file path or DSN into buf. NULL when it cannot
 * be made. */
static inline const char *testdb_target(const char *name, char *buf, size_t len)
{
    if (!testdb_pg()) {
        snprintf(buf, len, "%s/%s.db", testdb_dir, name);
        return buf;
    }
    char db[64];
    testdb_pgname(name, db, sizeof db);
    if (!testdb_made(db)) {
        if (testdb_n == (int)(sizeof testdb_names / sizeof testdb_names[0]))
            return NULL;
        struct sql_conn *c = testdb_admin();
        char sql[128];
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", db);
        int ok = c && sql_exec(c, sql) == 0;
        snprintf(sql, sizeof sql, "CREATE DATABASE %s", db);
        ok = ok && sql_exec(c, sql) == 0;
        sql_close(c);
        if (!ok)
            return NULL;
        snprintf(testdb_names[testdb_n++], sizeof testdb_names[0], "%s", db);
    }
    snprintf(buf, len, "%s dbname=%s", testdb_dsn(), db);
    return buf;
}

/* Opens (and migrates) the database `name` on the test back end. */
static inline int testdb_open(const char *name, struct db **out)
{
    char target[512], err[512] = "";
    const char *t = testdb_target(name, target, sizeof target);
    *out = NULL;
    if (!t || db_open_backend(testdb_backend(), t, out, err, sizeof err) != 0) {
        fprintf(stderr, "  testdb_open %s: %s\n", name, t ? err : "cannot create it");
        return -1;
    }
    return 0;
}

/* Removes the temp dir and drops the databases made. */
static inline void testdb_cleanup(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", testdb_dir);
    if (testdb_dir[0] && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", testdb_dir);
    if (!testdb_pg() || !testdb_n)
        return;
    struct sql_conn *c = testdb_admin();
    for (int i = 0; c && i < testdb_n; i++) {
        char sql[128];
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", testdb_names[i]);
        sql_exec(c, sql);
    }
    sql_close(c);
}

/* First column of the first row of `sql` as text (static buffer), or "". */
static inline const char *testdb_query_text(struct sql_conn *c, const char *sql)
{
    static char buf[256];
    buf[0] = 0;
    struct sql_stmt *st = c ? sql_prepare(c, sql) : NULL;
    if (st && sql_step(st) == SQL_ROW && sql_column_text(st, 0))
        snprintf(buf, sizeof buf, "%s", sql_column_text(st, 0));
    sql_finalize(st);
    return buf;
}

static inline long long testdb_query_int(struct sql_conn *c, const char *sql)
{
    return atoll(testdb_query_text(c, sql));
}

#endif
