/* cmd_import.c: imgsearch import start|status|list|cancel. With --wait (or
 * `status --wait`) it polls the job: on a terminal one progress bar redrawn
 * in place, otherwise one line per poll (logs stay readable). While the
 * server still lists the source, total grows: it is shown as "N+" and the
 * percentage is of the keys listed so far. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cli/cli.h"

static const char *const help =
    "usage: imgsearch import start INSTANCE SOURCE [--manifest URL] [--item-id-from key|path]\n"
    "                             [--force] [--wait]\n"
    "       imgsearch import status INSTANCE JOB_ID [--wait]\n"
    "       imgsearch import list INSTANCE\n"
    "       imgsearch import cancel INSTANCE JOB_ID\n"
    "SOURCE is a bucket folder: obs://BUCKET/PREFIX/ or the https OBS form.\n"
    "With --wait, exits 0 when the job SUCCEEDED, 1 otherwise.\n";

static char *job_path(const struct client *cl, const char *inst, const char *job)
{
    char *p = client_escape(cl->project), *i = client_escape(inst);
    char *j = job ? client_escape(job) : NULL, *out = NULL;
    if (p && i && (!job || j) &&
        asprintf(&out, "/admin/v1/%s/instances/%s/imports%s%s", p, i, job ? "/" : "",
                 job ? j : "") < 0)
        out = NULL;
    free(p);
    free(i);
    free(j);
    return out;
}

static long long jint(json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

/* Servers before background listing have no listing_done: all listed. */
static int listing(json_t *j)
{
    json_t *d = json_object_get(j, "listing_done");
    return json_is_boolean(d) && !json_boolean_value(d);
}

static void progress(json_t *j, int tty)
{
    long long total = jint(j, "total"), done = jint(j, "done"), failed = jint(j, "failed");
    long long n = done + failed;
    double rate = json_number_value(json_object_get(j, "images_per_second"));
    int more = listing(j);
    int pct = total > 0 ? (int)(n * 100 / total) : more ? 0 : 100;
    const char *status = json_string_value(json_object_get(j, "status"));
    if (tty) {
        char bar[31];
        int fill = pct * 30 / 100;
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : ' ';
        bar[30] = 0;
        printf("\r[%s] %3d%% %lld/%lld%s %.1f img/s %s%s%s", bar, pct, n, total, more ? "+" : "",
               rate, status, more ? " (listing)" : "", failed ? " (some failed)" : "");
    } else {
        printf("%s %d%% %lld/%lld%s done=%lld failed=%lld %.1f img/s%s\n", status, pct, n, total,
               more ? "+" : "", done, failed, rate, more ? " listing" : "");
    }
    fflush(stdout);
}

static void print_errors(json_t *j)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(j, "errors"), i, e)
    {
        printf("  %s: %s: %s\n", json_string_value(json_object_get(e, "key")),
               json_string_value(json_object_get(e, "error_code")),
               json_string_value(json_object_get(e, "error_msg")));
    }
    long long shown = (long long)json_array_size(json_object_get(j, "errors"));
    if (jint(j, "errors_total") > shown)
        printf("  ... %lld more\n", jint(j, "errors_total") - shown);
}

static int is_final(const char *s)
{
    return s && (!strcmp(s, "SUCCEEDED") || !strcmp(s, "FAILED") || !strcmp(s, "CANCELLED"));
}

static int watch(const struct client *cl, const char *path, int wait)
{
    int tty = isatty(STDOUT_FILENO);
    for (;;) {
        json_t *j = NULL;
        if (client_api(cl, "GET", path, NULL, &j))
            return CLI_API;
        const char *s = json_string_value(json_object_get(j, "status"));
        int final = is_final(s);
        if (wait || !final)
            progress(j, tty);
        if (!wait || final) {
            if (tty && wait)
                putchar('\n');
            printf("job %s: %s total=%lld done=%lld failed=%lld\n",
                   json_string_value(json_object_get(j, "job_id")), s, jint(j, "total"),
                   jint(j, "done"), jint(j, "failed"));
            if (json_object_get(j, "error"))
                printf("error: %s\n", json_string_value(json_object_get(j, "error")));
            print_errors(j);
            int rc = !wait || (s && !strcmp(s, "SUCCEEDED")) ? CLI_OK : CLI_API;
            json_decref(j);
            return rc;
        }
        json_decref(j);
        struct timespec ts = {0, 300 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static int start(const struct client *cl, struct args *a)
{
    const char *manifest = arg_take(a, "--manifest"), *from = arg_take(a, "--item-id-from");
    int force = arg_flag(a, "--force"), wait = arg_flag(a, "--wait");
    if (arg_unknown(a) || a->n != 2) {
        fputs(help, stderr);
        return CLI_USAGE;
    }
    json_t *body = json_pack("{s:s, s:b}", "source", a->v[1], "force", force);
    if (manifest)
        json_object_set_new(body, "manifest", json_string(manifest));
    if (from)
        json_object_set_new(body, "item_id_from", json_string(from));
    char *path = job_path(cl, a->v[0], NULL);
    json_t *r = NULL;
    int rc = client_api(cl, "POST", path, body, &r);
    json_decref(body);
    free(path);
    if (rc)
        return rc;
    const char *id = json_string_value(json_object_get(r, "job_id"));
    if (listing(r))
        printf("job %s queued (listing the source)\n", id);
    else
        printf("job %s queued (%lld images)\n", id, jint(r, "total"));
    fflush(stdout);
    if (wait) {
        path = job_path(cl, a->v[0], id);
        rc = watch(cl, path, 1);
        free(path);
    }
    json_decref(r);
    return rc;
}

static int list(const struct client *cl, struct args *a)
{
    if (arg_unknown(a) || a->n != 1) {
        fputs(help, stderr);
        return CLI_USAGE;
    }
    char *path = job_path(cl, a->v[0], NULL);
    json_t *r = NULL;
    int rc = client_api(cl, "GET", path, NULL, &r);
    free(path);
    if (rc)
        return rc;
    size_t i;
    json_t *j;
    printf("%-28s %-10s %8s %8s %8s  %s\n", "JOB", "STATUS", "TOTAL", "DONE", "FAILED", "SOURCE");
    json_array_foreach(json_object_get(r, "jobs"), i, j)
    {
        char total[32];
        snprintf(total, sizeof total, "%lld%s", jint(j, "total"), listing(j) ? "+" : "");
        printf("%-28s %-10s %8s %8lld %8lld  %s\n", json_string_value(json_object_get(j, "job_id")),
               json_string_value(json_object_get(j, "status")), total, jint(j, "done"),
               jint(j, "failed"), json_string_value(json_object_get(j, "source")));
    }
    json_decref(r);
    return 0;
}

int cmd_import(const struct client *cl, struct args *a)
{
    const char *sub = NULL;
    int rc = arg_subcommand(a, help, &sub);
    if (rc >= 0)
        return rc;
    if (!strcmp(sub, "start"))
        return start(cl, a);
    if (!strcmp(sub, "list"))
        return list(cl, a);
    int wait = !strcmp(sub, "status") && arg_flag(a, "--wait");
    if ((strcmp(sub, "status") && strcmp(sub, "cancel")) || arg_unknown(a) || a->n != 2) {
        fputs(help, stderr);
        return CLI_USAGE;
    }
    char *path = job_path(cl, a->v[0], a->v[1]);
    if (!strcmp(sub, "status")) {
        rc = watch(cl, path, wait);
    } else {
        json_t *r = NULL;
        rc = client_api(cl, "DELETE", path, NULL, &r);
        if (rc == 0)
            printf("job %s: %s\n", a->v[1], json_string_value(json_object_get(r, "status")));
        json_decref(r);
    }
    free(path);
    return rc;
}
