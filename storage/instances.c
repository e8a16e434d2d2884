/* instances.c: instance rows. Tag key lists are stored as JSON arrays. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "storage/instances.h"

long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *const type_names[] = {"IMAGE", "KEYWORD", "TEXT", "CATEGORY"};

unsigned search_type_parse(const char *s)
{
    for (unsigned i = 0; i < 4; i++) {
        char num[2] = {(char)('0' + i), 0};
        if (!strcmp(s, type_names[i]) || !strcmp(s, num))
            return 1u << i;
    }
    return 0;
}

const char *search_type_name(unsigned bit)
{
    for (unsigned i = 0; i < 4; i++)
        if (bit == 1u << i)
            return type_names[i];
    return "?";
}

static char *dup_col(struct sql_stmt *st, int col)
{
    const char *t = sql_column_text(st, col);
    return strdup(t ? t : "");
}

static json_t *keys_json(char **keys, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(keys[i]));
    return a;
}

static int keys_parse(const char *text, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    json_t *a = json_loads(text ? text : "[]", 0, NULL);
    if (!json_is_array(a)) {
        json_decref(a);
        return -1;
    }
    size_t cnt = json_array_size(a);
    *out = calloc(cnt ? cnt : 1, sizeof **out);
    for (size_t i = 0; *out && i < cnt; i++)
        (*out)[(*n)++] = strdup(json_string_value(json_array_get(a, i)) ?: "");
    json_decref(a);
    return *out ? 0 : -1;
}

static unsigned types_parse(const char *text)
{
    unsigned bits = 0;
    json_t *a = json_loads(text ? text : "[]", 0, NULL);
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) if (json_is_string(v)) bits |=
        search_type_parse(json_string_value(v));
    json_decref(a);
    return bits;
}

static char *types_text(unsigned bits)
{
    json_t *a = json_array();
    for (unsigned i = 0; i < 4; i++)
        if (bits & (1u << i))
            json_array_append_new(a, json_string(type_names[i]));
    char *s = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return s;
}

enum db_status instances_create(struct db *db, struct instance *inst)
{
    struct sql_conn *c = db_conn(db);
    if (!c)
        return DB_ERROR;
    enum db_status rc = DB_ERROR;
    struct sql_stmt *st = NULL;
    json_t *tk = keys_json(inst->tag_keys, inst->n_tag_keys);
    json_t *nk = keys_json(inst->num_tag_keys, inst->n_num_tag_keys);
    char *tks = json_dumps(tk, JSON_COMPACT), *nks = json_dumps(nk, JSON_COMPACT);
    char *types = types_text(inst->search_types);
    inst->created_ms = now_ms();
    if (db_begin(c) != 0)
        goto out;
    st = sql_prepare(c, "INSERT INTO projects(id, created_ms) VALUES (?, ?)"
                        " ON CONFLICT (id) DO NOTHING");
    if (!st)
        goto out;
    sql_bind_text(st, 1, inst->project_id);
    sql_bind_int64(st, 2, inst->created_ms);
    if (sql_step(st) != SQL_DONE)
        goto out;
    sql_finalize(st);
    st = sql_prepare(c, "INSERT INTO instances(project_id, name, description, model, level,"
                        " search_types, custom_tags, custom_num_tags, created_ms, status, regions,"
                        " views, projection, shards) VALUES (?,?,?,?,?,?,?,?,?,'NORMAL',?,?,?,?)"
                        " RETURNING id");
    if (!st)
        goto out;
    sql_bind_text(st, 1, inst->project_id);
    sql_bind_text(st, 2, inst->name);
    sql_bind_text(st, 3, inst->description ? inst->description : "");
    sql_bind_text(st, 4, inst->model ? inst->model : "common-search");
    sql_bind_int64(st, 5, inst->level ? inst->level : 30000000);
    sql_bind_text(st, 6, types);
    sql_bind_text(st, 7, tks);
    sql_bind_text(st, 8, nks);
    sql_bind_int64(st, 9, inst->created_ms);
    sql_bind_int64(st, 10, inst->regions ? 1 : 0);
    sql_bind_int64(st, 11, inst->views ? 1 : 0);
    sql_bind_text(st, 12, inst->projection); /* NULL: float vectors */
    sql_bind_int64(st, 13, inst->shards > 1 ? inst->shards : 1);
    int s = sql_step(st);
    if (s == SQL_CONSTRAINT) {
        rc = DB_EXISTS;
        goto out;
    }
    if (s != SQL_ROW)
        goto out;
    inst->id = sql_column_int64(st, 0);
    if (sql_step(st) != SQL_DONE)
        goto out;
    if (db_commit(c) == 0)
        rc = DB_OK;
out:
    if (rc != DB_OK)
        db_rollback(c);
    sql_finalize(st);
    json_decref(tk);
    json_decref(nk);
    free(tks);
    free(nks);
    free(types);
    return rc;
}

/* The item count costs a scan of the instance's items: only listings and
 * instances_count_items pay it; a lookup (every request) reads -1. */
#define INSTANCE_COLS_WITH(count)                                                                  \
    "i.id, i.project_id, i.name, i.description, i.model, i.level, i.search_types,"                 \
    " i.custom_tags, i.custom_num_tags, i.created_ms, i.status, " count ", i.regions, i.views,"    \
    " i.projection, i.shards"
#define INSTANCE_COLS INSTANCE_COLS_WITH("(SELECT count(*) FROM items WHERE instance_id = i.id)")
#define INSTANCE_COLS_UNCOUNTED INSTANCE_COLS_WITH("-1")

static int row_to_instance(struct sql_stmt *st, struct instance *out)
{
    memset(out, 0, sizeof *out);
    out->id = sql_column_int64(st, 0);
    out->project_id = dup_col(st, 1);
    out->name = dup_col(st, 2);
    out->description = dup_col(st, 3);
    out->model = dup_col(st, 4);
    out->level = sql_column_int64(st, 5);
    out->search_types = types_parse(sql_column_text(st, 6));
    int rc = keys_parse(sql_column_text(st, 7), &out->tag_keys, &out->n_tag_keys);
    rc |= keys_parse(sql_column_text(st, 8), &out->num_tag_keys, &out->n_num_tag_keys);
    out->created_ms = sql_column_int64(st, 9);
    out->status = dup_col(st, 10);
    out->item_count = sql_column_int64(st, 11);
    out->regions = sql_column_int(st, 12);
    out->views = sql_column_int(st, 13);
    out->shards = sql_column_int(st, 15);
    int compact = !sql_column_is_null(st, 14); /* NULL: float */
    if (compact)
        out->projection = dup_col(st, 14);
    /* Out of memory for the digest must not make a compact instance float. */
    if (rc || !out->project_id || !out->name || !out->description || !out->model || !out->status ||
        (compact && !out->projection)) {
        instance_free(out);
        return -1;
    }
    return 0;
}

enum db_status instances_get(struct db *db, const char *project_id, const char *name,
                             struct instance *out)
{
    struct sql_conn *c = db_conn(db);
    if (!c)
        return DB_ERROR;
    struct sql_stmt *st = sql_prepare(c, "SELECT " INSTANCE_COLS_UNCOUNTED
                                         " FROM instances i WHERE i.project_id = ? AND i.name = ?");
    if (!st)
        return DB_ERROR;
    sql_bind_text(st, 1, project_id);
    sql_bind_text(st, 2, name);
    enum db_status rc = DB_NOT_FOUND;
    int s = sql_step(st);
    if (s == SQL_ROW)
        rc = row_to_instance(st, out) == 0 ? DB_OK : DB_ERROR;
    else if (s != SQL_DONE)
        rc = DB_ERROR;
    sql_finalize(st);
    return rc;
}

enum db_status instances_count_items(struct db *db, struct instance *inst)
{
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st =
        c ? sql_prepare(c, "SELECT count(*) FROM items WHERE instance_id = ?") : NULL;
    if (!st)
        return DB_ERROR;
    sql_bind_int64(st, 1, inst->id);
    enum db_status rc = sql_step(st) == SQL_ROW ? DB_OK : DB_ERROR;
    if (rc == DB_OK)
        inst->item_count = sql_column_int64(st, 0);
    sql_finalize(st);
    return rc;
}

static enum db_status list_query(struct db *db, const char *project_id, struct instance **out,
                                 size_t *n)
{
    *out = NULL;
    *n = 0;
    struct sql_conn *c = db_conn(db);
    if (!c)
        return DB_ERROR;
    struct sql_stmt *st =
        sql_prepare(c, project_id ? "SELECT " INSTANCE_COLS
                                    " FROM instances i WHERE i.project_id = ? ORDER BY i.name"
                                  : "SELECT " INSTANCE_COLS " FROM instances i ORDER BY i.id");
    if (!st)
        return DB_ERROR;
    if (project_id)
        sql_bind_text(st, 1, project_id);
    enum db_status rc = DB_OK;
    size_t cap = 0;
    int s;
    while ((s = sql_step(st)) == SQL_ROW) {
        struct instance *g = sql_grow(*out, *n, &cap, sizeof *g);
        if (!g) {
            rc = DB_ERROR;
            break;
        }
        *out = g;
        if (row_to_instance(st, &(*out)[*n]) != 0) {
            rc = DB_ERROR;
            break;
        }
        (*n)++;
    }
    if (rc == DB_OK && s != SQL_DONE)
        rc = DB_ERROR;
    sql_finalize(st);
    if (rc != DB_OK) {
        instances_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

enum db_status instances_list(struct db *db, const char *project_id, struct instance **out,
                              size_t *n)
{
    return list_query(db, project_id, out, n);
}

enum db_status instances_all(struct db *db, struct instance **out, size_t *n)
{
    return list_query(db, NULL, out, n);
}

enum db_status instances_delete(struct db *db, const char *project_id, const char *name,
                                int64_t *id)
{
    struct sql_conn *c = db_conn(db);
    if (!c || db_begin(c) != 0)
        return DB_ERROR;
    /* Items, tags and keywords go by cascade; import jobs are keyed by name
     * (a re-created instance must not inherit them), so they go here. A
     * worker still running one finds its row gone and stops. */
    static const char *const sql[] = {
        "DELETE FROM instances WHERE project_id = ? AND name = ? RETURNING id",
        "DELETE FROM import_jobs WHERE project_id = ? AND instance = ?"};
    enum db_status rc = DB_NOT_FOUND;
    for (int k = 0; k < 2 && rc != DB_ERROR; k++) {
        struct sql_stmt *st = sql_prepare(c, sql[k]);
        if (!st) {
            rc = DB_ERROR;
            break;
        }
        sql_bind_text(st, 1, project_id);
        sql_bind_text(st, 2, name);
        int s = sql_step(st);
        if (k == 0 && s == SQL_ROW) {
            *id = sql_column_int64(st, 0);
            rc = DB_OK;
            s = sql_step(st);
        }
        if (s != SQL_DONE)
            rc = DB_ERROR;
        sql_finalize(st);
        if (rc == DB_NOT_FOUND)
            break;
    }
    if (rc == DB_OK && db_commit(c) != 0)
        rc = DB_ERROR;
    if (rc != DB_OK)
        db_rollback(c);
    return rc;
}

enum db_status instances_created_ms(struct db *db, int64_t id, long long *ms)
{
    struct sql_conn *c = db_conn(db);
    struct sql_stmt *st =
        c ? sql_prepare(c, "SELECT created_ms FROM instances WHERE id = ?") : NULL;
    if (!st)
        return DB_ERROR;
    sql_bind_int64(st, 1, id);
    int s = sql_step(st);
    enum db_status rc = s == SQL_ROW ? DB_OK : s == SQL_DONE ? DB_NOT_FOUND : DB_ERROR;
    if (rc == DB_OK)
        *ms = sql_column_int64(st, 0);
    sql_finalize(st);
    return rc;
}

void instance_free(struct instance *inst)
{
    if (!inst)
        return;
    free(inst->project_id);
    free(inst->name);
    free(inst->description);
    free(inst->model);
    free(inst->status);
    free(inst->projection);
    for (size_t i = 0; i < inst->n_tag_keys; i++)
        free(inst->tag_keys[i]);
    free(inst->tag_keys);
    for (size_t i = 0; i < inst->n_num_tag_keys; i++)
        free(inst->num_tag_keys[i]);
    free(inst->num_tag_keys);
    memset(inst, 0, sizeof *inst);
}

void instances_free(struct instance *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        instance_free(&list[i]);
    free(list);
}

static int in_list(char **keys, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(keys[i], key))
            return 1;
    return 0;
}

int instance_has_tag_key(const struct instance *inst, const char *key)
{
    return in_list(inst->tag_keys, inst->n_tag_keys, key);
}

int instance_has_num_tag_key(const struct instance *inst, const char *key)
{
    return in_list(inst->num_tag_keys, inst->n_num_tag_keys, key);
}
