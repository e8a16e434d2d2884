/* migrate.c: the migration runners. SQLite keeps its version in PRAGMA
 * user_version and applies each migration in its own transaction (a second
 * process waits on the write lock BEGIN IMMEDIATE takes). PostgreSQL keeps
 * one row per applied migration in schema_migrations, and applies all that
 * are missing in one transaction under an advisory lock: nodes that start
 * at once on one empty database queue there, and the later ones find the
 * work done. The advisory lock also covers creating schema_migrations,
 * which CREATE TABLE IF NOT EXISTS alone does not make safe. */
#include <stdio.h>
#include "storage/instances.h"
#include "storage/migrate.h"
#include "storage/schema.h"

/* pg_advisory_xact_lock's key: any constant no other tool on the database
 * uses; these are the bytes of "imgsrch1". */
#define MIGRATE_LOCK "7596841891981912113"

static long long query_int(struct sql_conn *c, const char *sql)
{
    struct sql_stmt *st = sql_prepare(c, sql);
    long long v = -1;
    if (st && sql_step(st) == SQL_ROW)
        v = sql_column_int64(st, 0);
    sql_finalize(st);
    return v;
}

int migrate_version(struct sql_conn *c)
{
    if (sql_backend_of(c) == SQL_SQLITE)
        return (int)query_int(c, "PRAGMA user_version");
    return (int)query_int(c, "SELECT coalesce(max(version), 0) FROM schema_migrations");
}

static int too_new(int v, size_t count, const char *label, char *errbuf, size_t errlen)
{
    if ((size_t)v <= count)
        return 0;
    snprintf(errbuf, errlen, "%s: schema version %d is newer than this server (%zu)", label, v,
             count);
    return 1;
}

static int run_sqlite(struct sql_conn *c, const char *label, char *errbuf, size_t errlen)
{
    int v = migrate_version(c);
    if (v < 0) {
        snprintf(errbuf, errlen, "%s: cannot read the schema version", label);
        return -1;
    }
    if (too_new(v, schema_count(), label, errbuf, errlen))
        return -1;
    for (size_t i = (size_t)v; i < schema_count(); i++) {
        char pragma[64];
        snprintf(pragma, sizeof pragma, "PRAGMA user_version=%zu;", i + 1);
        if (sql_begin(c) != 0 || sql_exec(c, schema_migration(i)) != 0 ||
            sql_exec(c, pragma) != 0 || sql_commit(c) != 0) {
            snprintf(errbuf, errlen, "%s: migration %zu failed: %s", label, i + 1,
                     sql_errmsg(c) ? sql_errmsg(c) : "?");
            sql_rollback(c);
            return -1;
        }
    }
    return 0;
}

static int record(struct sql_conn *c, size_t version)
{
    struct sql_stmt *st =
        sql_prepare(c, "INSERT INTO schema_migrations(version, applied_ms) VALUES (?, ?)");
    int rc = -1;
    if (st && sql_bind_int64(st, 1, (int64_t)version) == 0 && sql_bind_int64(st, 2, now_ms()) == 0)
        rc = sql_step(st) == SQL_DONE ? 0 : -1;
    sql_finalize(st);
    return rc;
}

static int run_pg(struct sql_conn *c, const char *label, char *errbuf, size_t errlen)
{
    if (sql_begin(c) != 0 || sql_exec(c, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK ")") != 0 ||
        sql_exec(c, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)") != 0)
        goto fail;
    int v = migrate_version(c);
    if (v < 0)
        goto fail;
    if (too_new(v, schema_pg_count(), label, errbuf, errlen)) {
        sql_rollback(c);
        return -1;
    }
    for (size_t i = (size_t)v; i < schema_pg_count(); i++)
        if (sql_exec(c, schema_pg_migration(i)) != 0 || record(c, i + 1) != 0)
            goto fail;
    if (sql_commit(c) == 0)
        return 0;
fail:
    snprintf(errbuf, errlen, "%s: migration failed: %s", label,
             sql_errmsg(c) ? sql_errmsg(c) : "?");
    sql_rollback(c);
    return -1;
}

int migrate_run(struct sql_conn *c, const char *label, char *errbuf, size_t errlen)
{
    return sql_backend_of(c) == SQL_SQLITE ? run_sqlite(c, label, errbuf, errlen)
                                           : run_pg(c, label, errbuf, errlen);
}
