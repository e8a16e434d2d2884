/* http_log.c: plain-text logging to stderr, one line per event. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "server/http_log.h"

static void stamp(char *buf, size_t len)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int quiet(void)
{
    const char *q = getenv("IMGSEARCH_QUIET");
    return q && *q == '1';
}

void http_log_access(const struct request *req, double ms)
{
    if (quiet())
        return;
    char ts[32];
    stamp(ts, sizeof ts);
    const struct req_timing *t = &req->timing;
    fprintf(stderr,
            "%s %s %s %d %.1fms %s queue=%.2f lock=%.2f dbwait=%.2f commit=%.2f ckpt=%.2f "
            "index=%.2f handler=%.2f cpu=%.2f runq=%.2f\n",
            ts, req->method ? req->method : "-", req->path ? req->path : "-", req->status, ms,
            req->request_id, t->queue_ms, t->lock_ms, t->db_wait_ms, t->commit_ms, t->checkpoint_ms,
            t->index_ms, t->handler_ms, t->cpu_ms, t->runq_ms);
}

void http_log_error(const struct request *req, const char *code, const char *msg)
{
    if (quiet())
        return;
    char ts[32];
    stamp(ts, sizeof ts);
    fprintf(stderr, "%s error %s %s: %s (%s) %s\n", ts, req->request_id, code, msg,
            req->detail[0] ? req->detail : "-", req->path ? req->path : "-");
}

void log_info(const char *fmt, ...)
{
    char ts[32];
    stamp(ts, sizeof ts);
    fprintf(stderr, "%s ", ts);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}
