/* workpool.c: worker threads over a ring buffer of jobs, one mutex and two
 * condition variables. The ring has exactly queue_cap slots: a job beyond
 * that is refused, never queued, so memory and waiting time stay bounded. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "server/priority.h"
#include "server/workpool.h"

struct job {
    work_fn fn;
    void *arg;
};

struct workpool {
    pthread_mutex_t mu;
    pthread_cond_t has_work; /* a job was queued, or the pool stops */
    pthread_cond_t idle;     /* a job finished */
    struct job *ring;
    int cap, head, count; /* queued jobs are ring[head .. head+count) mod cap */
    int running;
    int accepting;
    int stopping;
    unsigned long refused;
    pthread_t *threads;
    int n_threads;
    int nice;
};

static void *worker_main(void *p)
{
    struct workpool *wp = p;
    static atomic_int warned;
    if (priority_lower_self(wp->nice) != 0 && !atomic_exchange(&warned, 1))
        fprintf(stderr,
                "imgsearchd: cannot lower the priority of pool threads (%s); they keep "
                "the process's\n",
                strerror(errno));
    pthread_mutex_lock(&wp->mu);
    for (;;) {
        while (!wp->count && !wp->stopping)
            pthread_cond_wait(&wp->has_work, &wp->mu);
        if (!wp->count)
            break; /* stopping and nothing left */
        struct job j = wp->ring[wp->head];
        wp->head = (wp->head + 1) % wp->cap;
        wp->count--;
        wp->running++;
        pthread_mutex_unlock(&wp->mu);
        j.fn(j.arg);
        pthread_mutex_lock(&wp->mu);
        wp->running--;
        pthread_cond_broadcast(&wp->idle);
    }
    pthread_mutex_unlock(&wp->mu);
    return NULL;
}

int workpool_new(int workers, int queue_cap, int nice, struct workpool **out)
{
    *out = NULL;
    if (workers < 1 || queue_cap < 1)
        return -1;
    struct workpool *wp = calloc(1, sizeof *wp);
    if (!wp)
        return -1;
    wp->ring = calloc((size_t)queue_cap, sizeof *wp->ring);
    wp->threads = calloc((size_t)workers, sizeof *wp->threads);
    if (!wp->ring || !wp->threads) {
        free(wp->ring);
        free(wp->threads);
        free(wp);
        return -1;
    }
    pthread_mutex_init(&wp->mu, NULL);
    pthread_cond_init(&wp->has_work, NULL);
    pthread_cond_init(&wp->idle, NULL);
    wp->cap = queue_cap;
    wp->nice = nice;
    wp->accepting = 1;
    for (; wp->n_threads < workers; wp->n_threads++)
        if (pthread_create(&wp->threads[wp->n_threads], NULL, worker_main, wp) != 0)
            break;
    if (wp->n_threads == 0) {
        workpool_free(wp);
        return -1;
    }
    *out = wp;
    return 0;
}

int workpool_submit(struct workpool *wp, work_fn fn, void *arg)
{
    pthread_mutex_lock(&wp->mu);
    if (!wp->accepting || wp->count == wp->cap) {
        wp->refused++;
        pthread_mutex_unlock(&wp->mu);
        return -1;
    }
    wp->ring[(wp->head + wp->count) % wp->cap] = (struct job){fn, arg};
    wp->count++;
    pthread_cond_signal(&wp->has_work);
    pthread_mutex_unlock(&wp->mu);
    return 0;
}

/* One synchronous call: the caller sleeps on `cv` until the worker is done. */
struct call {
    work_fn fn;
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
};

static void call_job(void *p)
{
    struct call *c = p;
    c->fn(c->arg);
    pthread_mutex_lock(&c->mu);
    c->done = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu); /* c lives on the caller's stack: last touch */
}

int workpool_call(struct workpool *wp, work_fn fn, void *arg)
{
    struct call c = {.fn = fn, .arg = arg};
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    int rc = workpool_submit(wp, call_job, &c);
    if (rc == 0) {
        pthread_mutex_lock(&c.mu);
        while (!c.done)
            pthread_cond_wait(&c.cv, &c.mu);
        pthread_mutex_unlock(&c.mu);
    }
    pthread_cond_destroy(&c.cv);
    pthread_mutex_destroy(&c.mu);
    return rc;
}

void workpool_stats(struct workpool *wp, int *queued, int *running, unsigned long *refused)
{
    pthread_mutex_lock(&wp->mu);
    *queued = wp->count;
    *running = wp->running;
    *refused = wp->refused;
    pthread_mutex_unlock(&wp->mu);
}

void workpool_drain(struct workpool *wp)
{
    pthread_mutex_lock(&wp->mu);
    wp->accepting = 0;
    while (wp->count || wp->running)
        pthread_cond_wait(&wp->idle, &wp->mu);
    pthread_mutex_unlock(&wp->mu);
}

void workpool_free(struct workpool *wp)
{
    if (!wp)
        return;
    workpool_drain(wp);
    pthread_mutex_lock(&wp->mu);
    wp->stopping = 1;
    pthread_cond_broadcast(&wp->has_work);
    pthread_mutex_unlock(&wp->mu);
    for (int i = 0; i < wp->n_threads; i++)
        pthread_join(wp->threads[i], NULL);
    pthread_mutex_destroy(&wp->mu);
    pthread_cond_destroy(&wp->has_work);
    pthread_cond_destroy(&wp->idle);
    free(wp->ring);
    free(wp->threads);
    free(wp);
}
