/* req_timing.h: where a request's time went, for the access log. A slow
 * answer is a wait somewhere (the image queue, the instance's write lock,
 * the disk's fsync in COMMIT, the CPU run queue) more often than work; each
 * wait is measured where it happens and printed on the request's line. */
#ifndef IMGSEARCH_REQ_TIMING_H
#define IMGSEARCH_REQ_TIMING_H

#include "server/errors.h"

struct request;

struct req_timing {
    double queue_ms;   /* accepted -> a pool worker took it (image routes) */
    double lock_ms;    /* waiting for the instance's write lock */
    double index_ms;   /* index add/remove, including its lock wait */
    double handler_ms; /* the handler, wall clock */
    double cpu_ms;     /* CPU time of the handler's thread meanwhile */
    double runq_ms;    /* time that thread was runnable but not running */
    double db_wait_ms, commit_ms, checkpoint_ms; /* storage/db.h */
};

/* CLOCK_MONOTONIC in ms. */
double req_clock_ms(void);

/* Runs the request's handler on this thread, filling req->timing. */
enum err req_timed_handler(struct request *req);

#endif
