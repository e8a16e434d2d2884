/* fuzz_manifest.c: libFuzzer target for import manifests. The manifest
 * parser (manifest_keys in server/h_imports.c) is static, so the input is
 * stored as an object in a local bucket and the real handler,
 * h_admin_import_start, imports it: object read, line split, JSON per line,
 * key check, object URL join and job creation in SQLite. Invariants: an
 * accepted manifest makes one job key per non-blank line, in order, each a
 * valid key whose URL parses back to it under the source's base and whose
 * stored line is a JSON object naming that key; a rejected one says
 * "manifest" or the line number. Everything lives in /dev/shm (SQLite
 * fsyncs per commit); the database is replaced every RESET_JOBS jobs so it
 * cannot grow through a long run. No worker runs: the extractor pointer is
 * a dummy only checked for NULL. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "config/config.h"
#include "server/handlers.h"
#include "server/server.h"
#include "storage/db.h"
#include "storage/instances.h"
#include "storage/jobs.h"
#include "storage/objurl.h"
#include "storage/source.h"
#include "tests/fuzz/fuzz_source.h"

#define RESET_JOBS 2000

static struct server srv;
static char dir[64], db_path[96], manifest_path[96];
static int dummy_extractor, jobs_made;
static json_t *bodies[2];

static void open_db(void)
{
    char err[256], p[128];
    if (srv.db)
        db_close(srv.db);
    srv.db = NULL;
    static const char *suffix[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", db_path, suffix[i]);
        unlink(p);
    }
    struct instance in = {.project_id = "p1", .name = "inst1", .search_types = ST_IMAGE};
    if (db_open(db_path, &srv.db, err, sizeof err) || instances_create(srv.db, &in) != DB_OK)
        abort();
    jobs_made = 0;
}

/* At exit, so long runs leave nothing in /dev/shm. */
static void cleanup(void)
{
    char p[128];
    static const char *const files[] = {"meta.db", "meta.db-wal", "meta.db-shm", "m.jsonl"};
    db_close(srv.db);
    source_free(srv.source);
    json_decref(bodies[0]);
    json_decref(bodies[1]);
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/dev/shm/fuzz_manifest.XXXXXX");
    if (!mkdtemp(dir))
        abort();
    atexit(cleanup);
    snprintf(db_path, sizeof db_path, "%s/meta.db", dir);
    snprintf(manifest_path, sizeof manifest_path, "%s/m.jsonl", dir);

    fuzz_local_source(dir, &srv.source);
    srv.extractor = (struct extractor *)&dummy_extractor;
    open_db();
    /* Both URL forms, so keys are joined onto both kinds of base. */
    bodies[0] = json_pack("{s:s, s:s}", "source", "obs://b1/", "manifest", "obs://b1/m.jsonl");
    bodies[1] = json_pack("{s:s, s:s}", "source", "https://B1.obs.r-1.myhuaweicloud.com/pre/",
                          "manifest", "https://b1.obs.r-1.myhuaweicloud.com/m.jsonl");
    if (!bodies[0] || !bodies[1])
        abort();
}

/* Non-blank lines as manifest_keys sees them: split on '\n', leading
 * blanks skipped. An embedded NUL ends the text (it is read as a C string). */
static long count_lines(const uint8_t *data, size_t size)
{
    long n = 0;
    int blank = 1;
    for (size_t i = 0; i < size && data[i]; i++) {
        if (data[i] == '\n') {
            n += !blank;
            blank = 1;
        } else if (blank && data[i] != ' ' && data[i] != '\t' && data[i] != '\r') {
            blank = 0;
        }
    }
    return n + !blank;
}

/* Lines of the file. manifest_keys numbers non-empty lines only (strtok_r
 * folds "\n\n"), so its "line N" is checked against this bound, not equality. */
static long count_physical(const uint8_t *data, size_t size)
{
    long n = 1;
    for (size_t i = 0; i < size && data[i]; i++)
        n += data[i] == '\n';
    return n;
}

static void check_job(const char *job_id, long long total, const char *base)
{
    struct job j;
    struct job_key *keys = NULL;
    size_t n = 0;
    if (jobs_get(srv.db, "p1", "inst1", job_id, &j) != DB_OK ||
        jobs_pending(srv.db, j.id, (size_t)total + 1, &keys, &n) != DB_OK || (long long)n != total)
        abort();
    for (size_t i = 0; i < n; i++) {
        struct objurl u;
        json_t *meta = json_loads(keys[i].meta ? keys[i].meta : "", 0, NULL);
        const char *named = json_string_value(json_object_get(meta, "key"));
        if (!objurl_key_valid(keys[i].key) || objurl_parse(keys[i].url, &u) != OBJURL_OK ||
            strcmp(u.key, keys[i].key) || strcmp(u.bucket, "b1") ||
            strncmp(keys[i].url, base, strlen(base)) || !json_is_object(meta) || !named ||
            strcmp(named, keys[i].key))
            abort();
        json_decref(meta);
        objurl_free(&u);
    }
    job_keys_free(keys, n);
    job_free(&j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!srv.db)
        setup();
    if (jobs_made >= RESET_JOBS)
        open_db();
    FILE *f = fopen(manifest_path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();

    int form = size && (data[size - 1] & 1);
    const char *base = form ? "https://b1.obs.r-1.myhuaweicloud.com/" : "obs://b1/";
    struct request req;
    memset(&req, 0, sizeof req);
    req.srv = &srv;
    req.family = API_ADMIN;
    req.method = "POST";
    req.path = "/fuzz";
    req.project_id = "p1";
    req.params[0] = "p1";
    req.params[1] = "inst1";
    req.json = bodies[form];

    enum err e = h_admin_import_start(&req);
    long lines = count_lines(data, size);
    if (e == E_OK) {
        long long total = json_integer_value(json_object_get(req.reply, "total"));
        const char *job_id = json_string_value(json_object_get(req.reply, "job_id"));
        if (req.status != 202 || total != lines || !job_id)
            abort();
        check_job(job_id, total, base);
        jobs_made++;
    } else {
        int line = 0;
        if (e != E_BAD_PARAM)
            abort(); /* a manifest must never make the store or memory fail */
        if (strcmp(req.detail, "manifest") && (sscanf(req.detail, "manifest line %d", &line) != 1 ||
                                               line < 1 || line > count_physical(data, size)))
            abort();
    }
    json_decref(req.reply);
    return 0;
}
