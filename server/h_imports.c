/* h_imports.c: ours: offline import jobs of an instance (the cloud's
 * console "离线数据导入"). POST checks the request and answers at once: a
 * bucket prefix is only probed (reachable, not empty) and listed in the
 * background by server/lister.c; a manifest is read and stored with the
 * job. The import itself runs in server/imports.c. */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "server/handlers.h"
#include "server/http_log.h"
#include "server/imports.h"
#include "server/json_util.h"
#include "server/lister.h"
#include "server/server.h"
#include "storage/jobs.h"
#include "storage/objurl.h"
#include "storage/source.h"

#define MANIFEST_MAX_BYTES (64u << 20)
#define ERRORS_LIMIT_DEFAULT 100
#define ERRORS_LIMIT_MAX 1000

/* A growable list of keys to import. */
struct key_list {
    struct job_key *k;
    size_t n, cap;
    int nomem;
};

static int key_push(struct key_list *l, const char *key, const char *url, char *meta)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        struct job_key *g = realloc(l->k, cap * sizeof *g);
        if (!g)
            return l->nomem = 1, -1;
        l->k = g;
        l->cap = cap;
    }
    struct job_key *k = &l->k[l->n];
    memset(k, 0, sizeof *k);
    k->key = strdup(key);
    k->url = url ? strdup(url) : NULL;
    k->meta = meta;
    l->n++;
    if (!k->key || (url && !k->url))
        return l->nomem = 1, -1;
    return 0;
}

/* Stops the probe at the first key an import would take. */
static int probe_cb(void *arg, const char *object_url, const char *key, size_t size)
{
    (void)object_url;
    (void)size;
    if (!lister_key_wanted(key))
        return 0;
    *(int *)arg = 1;
    return 1;
}

/* The cheap check before a background listing: the store answers (one
 * page at most) and the prefix holds at least one key. */
static enum err probe_source(struct request *req, const char *source)
{
    int found = 0;
    char detail[256] = "";
    enum source_status st =
        source_list_after(req->srv->source, source, NULL, probe_cb, &found, detail, sizeof detail);
    if (st == SRC_NOMEM)
        return req_fail(req, E_INTERNAL, "out of memory");
    if (st != SRC_OK || !found) {
        if (*detail)
            log_info("import source %s refused: %s", source, detail);
        return req_fail(req, E_BAD_PARAM, "source");
    }
    return E_OK;
}

/* One JSON object per line with at least "key"; blank lines are skipped. */
static enum err manifest_keys(struct request *req, const char *manifest, const char *base,
                              struct key_list *l)
{
    struct bytes b = {0};
    char detail[256] = "";
    if (!source_is_object_url(req->srv->source, manifest) ||
        source_get(req->srv->source, manifest, MANIFEST_MAX_BYTES, &b, detail, sizeof detail) !=
            SRC_OK)
        return req_fail(req, E_BAD_PARAM, "manifest");
    enum err e = E_OK;
    char *text = malloc(b.len + 1);
    if (!text) {
        e = req_fail(req, E_INTERNAL, "out of memory");
        goto out;
    }
    memcpy(text, b.data, b.len);
    text[b.len] = 0;
    int line_no = 0;
    /* Every line counts, blank ones too, so an error names the file's line. */
    for (char *line = text, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        line_no++;
        char *p = line;
        while (*p == ' ' || *p == '\t' || *p == '\r')
            p++;
        if (!*p)
            continue;
        json_t *o = json_loads(p, JSON_DISABLE_EOF_CHECK, NULL);
        const char *key = json_string_value(json_object_get(o, "key"));
        if (!json_is_object(o) || !key || !objurl_key_valid(key)) {
            json_decref(o);
            char d[64];
            snprintf(d, sizeof d, "manifest line %d", line_no);
            e = req_fail(req, E_BAD_PARAM, d);
            goto out;
        }
        char *url = objurl_join(base, key);
        char *meta = json_dumps(o, JSON_COMPACT);
        int rc = url && meta ? key_push(l, key, url, meta) : -1;
        json_decref(o); /* after the push: key is borrowed from it */
        free(url);
        if (rc != 0) {
            if (!url || !meta)
                free(meta);
            e = req_fail(req, E_INTERNAL, "out of memory");
            goto out;
        }
    }
out:
    free(text);
    bytes_free(&b);
    return e;
}

static json_t *iso_or_null(long long ms)
{
    if (ms <= 0)
        return json_null();
    char iso[32];
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(iso);
}

static json_t *job_json(const struct job *j)
{
    double rate =
        j->active_ms > 0 ? (double)(j->done + j->failed) * 1000.0 / (double)j->active_ms : 0.0;
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:I, s:b, s:I, s:I, s:f, s:o, s:o, s:o}", "job_id",
        j->job_id, "project_id", j->project_id, "instance", j->instance, "source", j->source,
        "item_id_from", j->item_id_from, "force", j->force, "status", j->status, "total",
        (json_int_t)j->total, "listing_done", j->listing_done, "done", (json_int_t)j->done,
        "failed", (json_int_t)j->failed, "images_per_second",
        (double)(long long)(rate * 10 + 0.5) / 10, "created_at", iso_or_null(j->created_ms),
        "started_at", iso_or_null(j->started_ms), "finished_at", iso_or_null(j->finished_ms));
    json_object_set_new(o, "manifest", j->manifest ? json_string(j->manifest) : json_null());
    if (j->error)
        json_object_set_new(o, "error", json_string(j->error));
    return o;
}

enum err h_admin_import_start(struct request *req)
{
    /* Without the model every image would fail: say so once, up front. */
    if (!req->srv->extractor)
        return req_fail(req, E_MA_4508, "no model loaded");
    struct instance inst;
    enum err e = req_instance(req, req->params[1], &inst);
    if (e)
        return e;
    const char *source = NULL, *from = "key", *manifest = NULL;
    int force = 0;
    struct key_list l = {0};
    struct objurl u = {0};
    if ((e = jget_string(req, req->json, "source", JREQ, 1, 4096, &source)) ||
        (e = jget_string(req, req->json, "item_id_from", JOPT, 1, 16, &from)) ||
        (e = jget_string(req, req->json, "manifest", JOPT, 1, 4096, &manifest)) ||
        (e = jget_bool(req, req->json, "force", JOPT, &force)))
        goto out;
    if (strcmp(from, "key") && strcmp(from, "path")) {
        e = req_fail(req, E_BAD_PARAM, "item_id_from");
        goto out;
    }
    if (!source_is_object_url(req->srv->source, source) || objurl_parse(source, &u) != OBJURL_OK ||
        !objurl_prefix_valid(u.key)) {
        e = req_fail(req, E_BAD_PARAM, "source");
        goto out;
    }
    if (manifest) {
        if ((e = manifest_keys(req, manifest, u.base, &l)))
            goto out;
        if (l.n == 0) {
            e = req_fail(req, E_BAD_PARAM, "manifest");
            goto out;
        }
    } else if ((e = probe_source(req, source))) {
        goto out;
    }
    struct job j = {.project_id = (char *)req->project_id,
                    .instance = inst.name,
                    .source = (char *)source,
                    .manifest = (char *)manifest,
                    .item_id_from = (char *)from,
                    .force = force};
    /* A manifest is all the keys; a prefix is listed by the lister. */
    if ((manifest ? jobs_create(req->srv->db, &j, l.k, l.n)
                  : jobs_create_listing(req->srv->db, &j)) != DB_OK) {
        e = req_fail(req, E_STORE_FAILED, "import job");
        goto out;
    }
    imports_notify(req->srv->imports);
    req->reply = json_pack("{s:s, s:s, s:I, s:b}", "job_id", j.job_id, "status", "QUEUED", "total",
                           (json_int_t)j.total, "listing_done", j.listing_done);
    req->status = 202;
out:
    job_keys_free(l.k, l.n);
    objurl_free(&u);
    instance_free(&inst);
    return e;
}

/* The job of the path, in this project and instance. */
static enum err path_job(struct request *req, struct job *j)
{
    struct instance inst;
    enum err e = req_instance(req, req->params[1], &inst);
    if (e)
        return e;
    instance_free(&inst);
    enum db_status s = jobs_get(req->srv->db, req->project_id, req->params[1], req->params[2], j);
    if (s == DB_NOT_FOUND)
        return req_fail(req, E_MMS_ITEM_NOT_FOUND, req->params[2]);
    if (s != DB_OK)
        return req_fail(req, E_STORE_FAILED, "import job");
    return E_OK;
}

/* A non-negative integer query argument. */
static enum err query_int(struct request *req, const char *name, long long max, long long *out)
{
    const char *v = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
    if (!v)
        return E_OK;
    char *end;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || x < 0 || x > max)
        return req_fail(req, E_BAD_PARAM, name);
    *out = x;
    return E_OK;
}

enum err h_admin_import_get(struct request *req)
{
    long long offset = 0, limit = ERRORS_LIMIT_DEFAULT;
    enum err e;
    if ((e = query_int(req, "errors_offset", 1LL << 40, &offset)) ||
        (e = query_int(req, "errors_limit", ERRORS_LIMIT_MAX, &limit)))
        return e;
    struct job j;
    if ((e = path_job(req, &j)))
        return e;
    json_t *errors = NULL;
    if (jobs_errors(req->srv->db, j.id, offset, limit, &errors) != DB_OK) {
        job_free(&j);
        return req_fail(req, E_STORE_FAILED, "import errors");
    }
    req->reply = job_json(&j);
    json_object_set_new(req->reply, "errors", errors);
    json_object_set_new(req->reply, "errors_total", json_integer(j.failed));
    json_object_set_new(req->reply, "errors_offset", json_integer(offset));
    job_free(&j);
    return E_OK;
}

enum err h_admin_import_list(struct request *req)
{
    struct instance inst;
    enum err e = req_instance(req, req->params[1], &inst);
    if (e)
        return e;
    instance_free(&inst);
    struct job *list;
    size_t n;
    if (jobs_list(req->srv->db, req->project_id, req->params[1], NULL, &list, &n) != DB_OK)
        return req_fail(req, E_STORE_FAILED, "import jobs");
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, job_json(&list[i]));
    jobs_free(list, n);
    req->reply = json_pack("{s:o, s:I}", "jobs", a, "count", (json_int_t)n);
    return E_OK;
}

enum err h_admin_import_cancel(struct request *req)
{
    struct job j;
    enum err e = path_job(req, &j);
    if (e)
        return e;
    int64_t id = j.id;
    job_free(&j);
    if (jobs_cancel(req->srv->db, id) != DB_OK || jobs_get_row(req->srv->db, id, &j) != DB_OK)
        return req_fail(req, E_STORE_FAILED, "import cancel");
    req->reply = job_json(&j);
    job_free(&j);
    return E_OK;
}
