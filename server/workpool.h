/* workpool.h: a fixed set of worker threads fed by a bounded queue. Image
 * requests (download, decode, extract, store) run here, so the HTTP threads
 * only read requests and write answers; a full queue is refused at once
 * (the caller answers 429) instead of growing without bound. */
#ifndef IMGSEARCH_WORKPOOL_H
#define IMGSEARCH_WORKPOOL_H

#include <stddef.h>

struct workpool;

typedef void (*work_fn)(void *arg);

/* `workers` threads; at most `queue_cap` jobs wait for one. The threads run
 * at `nice` as priority_lower_self takes it (0: the process's own priority,
 * 1-19 a nice value, IMAGE_NICE_IDLE SCHED_IDLE), so CPU-heavy jobs can
 * yield to the threads that answer cheap calls. 0 on success. */
int workpool_new(int workers, int queue_cap, int nice, struct workpool **out);

/* Queues fn(arg). 0 when queued, -1 when `queue_cap` jobs already wait or
 * the pool is stopping: the job was not taken and the caller still owns it. */
int workpool_submit(struct workpool *wp, work_fn fn, void *arg);

/* Runs fn(arg) on a worker and waits for it to finish: work that must run
 * at the pool's priority while the caller keeps its own. -1, having run
 * nothing, when the job is refused (queue full, pool stopping). Never from
 * a job of the same pool: with every worker waiting, nothing would run. */
int workpool_call(struct workpool *wp, work_fn fn, void *arg);

/* Jobs waiting and running right now; jobs refused since the start. */
void workpool_stats(struct workpool *wp, int *queued, int *running, unsigned long *refused);

/* Refuses new jobs and waits until every taken job has finished. */
void workpool_drain(struct workpool *wp);

/* Drains, then stops and joins the threads. NULL is a no-op. */
void workpool_free(struct workpool *wp);

#endif
