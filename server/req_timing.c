/* req_timing.c: the handler's wall, CPU and run-queue time, and the
 * storage layer's write waits, measured on the thread that runs it. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include "server/req_timing.h"
#include "server/request.h"
#include "server/router.h"
#include "storage/db.h"

double req_clock_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* The thread's run-queue delay so far (ns, the second field of schedstat),
 * read through one descriptor per thread: a pread costs a few microseconds,
 * an fopen per request would cost ten times that. -1 when the kernel has no
 * schedstat. */
static double runq_so_far_ms(void)
{
    static _Thread_local int fd = -2;
    if (fd == -2)
        fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char buf[96];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    char *p;
    strtoull(buf, &p, 10);
    return (double)strtoull(p, NULL, 10) / 1e6;
}

static double cpu_so_far_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

enum err req_timed_handler(struct request *req)
{
    struct db_write_times dbt;
    db_write_times_take(&dbt); /* drop what an earlier request left */
    double rq0 = runq_so_far_ms(), cpu0 = cpu_so_far_ms(), t0 = req_clock_ms();
    enum err e = req->route->fn(req);
    struct req_timing *t = &req->timing;
    t->handler_ms = req_clock_ms() - t0;
    t->cpu_ms = cpu_so_far_ms() - cpu0;
    double rq1 = runq_so_far_ms();
    t->runq_ms = rq0 >= 0 && rq1 >= 0 ? rq1 - rq0 : 0;
    db_write_times_take(&dbt);
    t->db_wait_ms = dbt.wait_ms;
    t->commit_ms = dbt.commit_ms;
    t->checkpoint_ms = dbt.checkpoint_ms;
    return e;
}
