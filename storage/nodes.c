/* nodes.c: the nodes and node_applied tables (migration 8). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "storage/nodes.h"

/* The database's wall clock in ms: nodes compare heartbeats on one clock. */
static const char *now_ms_sql(struct sql_conn *c)
{
    return sql_backend_of(c) == SQL_POSTGRES
               ? "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
               : "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";
}

/* Prepares `fmt` with the now expression in place of every %s (up to 2). */
static struct sql_stmt *prep_now(struct sql_conn *c, const char *fmt)
{
    char sql[1024];
    const char *now = now_ms_sql(c);
    snprintf(sql, sizeof sql, fmt, now, now);
    return sql_prepare(c, sql);
}

/* One statement, no rows, outside any transaction (each is atomic). */
static int run_done(struct sql_stmt *st)
{
    int rc = st && sql_step(st) == SQL_DONE ? 0 : -1;
    sql_finalize(st);
    return rc;
}

int nodes_heartbeat(struct db *db, const char *node_id, const char *url)
{
    struct sql_conn *c = db_conn(db);
    if (!c)
        return -1;
    struct sql_stmt *st = prep_now(c, "INSERT INTO nodes(id, url, started_ms, heartbeat_ms)"
                                      " VALUES (?1, ?2, %s, %s) ON CONFLICT (id) DO UPDATE"
                                      " SET url = excluded.url,"
                                      " heartbeat_ms = excluded.heartbeat_ms");
    if (!st)
        return -1;
    sql_bind_text(st, 1, node_id);
    sql_bind_text(st, 2, url ? url : "");
    return run_done(st);
}

int nodes_forget(struct db *db, const char *node_id)
{
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st = c ? sql_prepare(c, "DELETE FROM nodes WHERE id = ?") : NULL;
    if (!st)
        return -1;
    sql_bind_text(st, 1, node_id);
    return run_done(st);
}

int nodes_reap(struct db *db, long long older_ms)
{
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st = c ? prep_now(c, "DELETE FROM nodes WHERE heartbeat_ms < %s - ?1") : NULL;
    if (!st)
        return -1;
    sql_bind_int64(st, 1, older_ms);
    return run_done(st);
}

enum db_status nodes_set_applied(struct db *db, const char *node_id, int64_t instance_id,
                                 int64_t seq)
{
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st =
        c ? sql_prepare(c, "INSERT INTO node_applied(node_id, instance_id, seq) VALUES (?,?,?)"
                           " ON CONFLICT (instance_id, node_id) DO UPDATE SET seq = excluded.seq")
          : NULL;
    if (!st)
        return DB_ERROR;
    sql_bind_text(st, 1, node_id);
    sql_bind_int64(st, 2, instance_id);
    sql_bind_int64(st, 3, seq);
    enum sql_rc s = sql_step(st);
    sql_finalize(st);
    /* The foreign key refuses the row of an instance deleted meanwhile (or
     * of this node, reaped while it was paused: the next heartbeat brings
     * it back, and this record with it). */
    return s == SQL_DONE ? DB_OK : s == SQL_CONSTRAINT ? DB_NOT_FOUND : DB_ERROR;
}

int nodes_min_applied(struct db *db, int64_t instance_id, long long timeout_ms, int64_t *min)
{
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st =
        c ? prep_now(c, "SELECT MIN(a.seq) FROM node_applied a JOIN nodes n ON n.id = a.node_id"
                        " WHERE a.instance_id = ?1 AND n.heartbeat_ms >= %s - ?2")
          : NULL;
    if (!st)
        return -1;
    sql_bind_int64(st, 1, instance_id);
    sql_bind_int64(st, 2, timeout_ms);
    int rc = -1;
    if (sql_step(st) == SQL_ROW) {
        *min = sql_column_is_null(st, 0) ? INT64_MAX : sql_column_int64(st, 0);
        rc = 0;
    }
    sql_finalize(st);
    return rc;
}

int nodes_requeue_orphan_jobs(struct db *db, long long timeout_ms)
{
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st =
        c ? prep_now(c, "UPDATE import_jobs SET status = 'QUEUED', claimed_by = NULL"
                        " WHERE status = 'RUNNING' AND (claimed_by IS NULL OR claimed_by NOT IN"
                        " (SELECT id FROM nodes WHERE heartbeat_ms >= %s - ?1))")
          : NULL;
    if (!st)
        return -1;
    sql_bind_int64(st, 1, timeout_ms);
    return run_done(st);
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

int nodes_list(struct db *db, struct node_info **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st = c ? prep_now(c, "SELECT id, url, started_ms, heartbeat_ms,"
                                          " %s - heartbeat_ms FROM nodes ORDER BY url, id")
                            : NULL;
    if (!st)
        return -1;
    size_t cap = 0;
    int s, rc = 0;
    while ((s = sql_step(st)) == SQL_ROW) {
        struct node_info *g = sql_grow(*out, *n, &cap, sizeof *g);
        if (!g) {
            rc = -1;
            break;
        }
        *out = g;
        struct node_info *ni = &(*out)[*n];
        ni->id = dup_or_empty(sql_column_text(st, 0));
        ni->url = dup_or_empty(sql_column_text(st, 1));
        ni->started_ms = sql_column_int64(st, 2);
        ni->heartbeat_ms = sql_column_int64(st, 3);
        ni->silent_ms = sql_column_int64(st, 4);
        (*n)++;
        if (!ni->id || !ni->url) {
            rc = -1;
            break;
        }
    }
    if (rc == 0 && s != SQL_DONE)
        rc = -1;
    sql_finalize(st);
    if (rc != 0) {
        nodes_list_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

void nodes_list_free(struct node_info *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].id);
        free(v[i].url);
    }
    free(v);
}

/* --- shards (migration 11) ------------------------------------------------------ */

int nodes_sharded_instances(struct db *db, int64_t **ids, int **shards, size_t *n)
{
    *ids = NULL;
    *shards = NULL;
    *n = 0;
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st =
        c ? sql_prepare(c, "SELECT id, shards FROM instances WHERE shards > 1 ORDER BY id") : NULL;
    if (!st)
        return -1;
    size_t cap_i = 0, cap_s = 0;
    int s, rc = 0;
    while ((s = sql_step(st)) == SQL_ROW) {
        int64_t *gi = sql_grow(*ids, *n, &cap_i, sizeof *gi);
        if (gi)
            *ids = gi;
        int *gs = gi ? sql_grow(*shards, *n, &cap_s, sizeof *gs) : NULL;
        if (!gs) {
            rc = -1;
            break;
        }
        *shards = gs;
        (*ids)[*n] = sql_column_int64(st, 0);
        (*shards)[(*n)++] = sql_column_int(st, 1);
    }
    if (rc == 0 && s != SQL_DONE)
        rc = -1;
    sql_finalize(st);
    if (rc != 0) {
        free(*ids);
        free(*shards);
        *ids = NULL;
        *shards = NULL;
        *n = 0;
    }
    return rc;
}

int nodes_claim_shard(struct db *db, int64_t instance_id, int shard, const char *node_id)
{
    struct sql_conn *c = db_conn(db);
    /* The epoch counts owners: it moves only when the owner does, so a
     * claim repeated every second writes nothing. */
    struct sql_stmt *st =
        c ? prep_now(c, "INSERT INTO shard_map(instance_id, shard, node_id, epoch, assigned_ms)"
                        " VALUES (?1, ?2, ?3, 1, %s) ON CONFLICT (instance_id, shard) DO UPDATE"
                        " SET node_id = excluded.node_id, epoch = shard_map.epoch + 1,"
                        " assigned_ms = excluded.assigned_ms"
                        " WHERE shard_map.node_id <> excluded.node_id")
          : NULL;
    if (!st)
        return -1;
    sql_bind_int64(st, 1, instance_id);
    sql_bind_int64(st, 2, shard);
    sql_bind_text(st, 3, node_id);
    enum sql_rc s = sql_step(st);
    sql_finalize(st);
    /* An instance deleted meanwhile: nothing to own. */
    return s == SQL_DONE || s == SQL_CONSTRAINT ? 0 : -1;
}

int nodes_shard_map(struct db *db, struct shard_row **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st =
        c ? sql_prepare(c, "SELECT m.instance_id, i.project_id, i.name, m.shard, m.node_id,"
                           " m.epoch, m.assigned_ms, i.shards FROM shard_map m JOIN instances i"
                           " ON i.id = m.instance_id ORDER BY m.instance_id, m.shard")
          : NULL;
    if (!st)
        return -1;
    size_t cap = 0;
    int s, rc = 0;
    while ((s = sql_step(st)) == SQL_ROW) {
        struct shard_row *g = sql_grow(*out, *n, &cap, sizeof *g);
        if (!g) {
            rc = -1;
            break;
        }
        *out = g;
        struct shard_row *r = &(*out)[(*n)++];
        r->instance_id = sql_column_int64(st, 0);
        r->project_id = dup_or_empty(sql_column_text(st, 1));
        r->instance = dup_or_empty(sql_column_text(st, 2));
        r->shard = sql_column_int(st, 3);
        r->node_id = dup_or_empty(sql_column_text(st, 4));
        r->epoch = sql_column_int64(st, 5);
        r->assigned_ms = sql_column_int64(st, 6);
        r->shards = sql_column_int(st, 7);
        if (!r->project_id || !r->instance || !r->node_id) {
            rc = -1;
            break;
        }
    }
    if (rc == 0 && s != SQL_DONE)
        rc = -1;
    sql_finalize(st);
    if (rc != 0) {
        nodes_shard_map_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

void nodes_shard_map_free(struct shard_row *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].project_id);
        free(v[i].instance);
        free(v[i].node_id);
    }
    free(v);
}
