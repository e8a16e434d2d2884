/* test_workpool.c: the bounded work pool: jobs run, a full queue refuses
 * at once, drain waits for every taken job, and nothing runs twice. */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "server/priority.h"
#include "server/workpool.h"
#include "tests/unit.h"

/* Jobs block on a gate the test opens, so the queue can be filled. */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open;
    atomic_int started, finished;
};

static void gated_job(void *arg)
{
    struct gate *g = arg;
    atomic_fetch_add(&g->started, 1);
    pthread_mutex_lock(&g->mu);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    atomic_fetch_add(&g->finished, 1);
}

static void gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void wait_started(struct gate *g, int n)
{
    for (int i = 0; i < 5000 && atomic_load(&g->started) < n; i++)
        usleep(1000);
}

static void test_full_queue_refuses(void)
{
    struct gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};
    struct workpool *wp;
    CHECK_INT(workpool_new(2, 3, 0, &wp), 0);
    /* Two run (blocked on the gate), three wait, the sixth is refused. */
    CHECK_INT(workpool_submit(wp, gated_job, &g), 0);
    CHECK_INT(workpool_submit(wp, gated_job, &g), 0);
    wait_started(&g, 2);
    CHECK_INT(atomic_load(&g.started), 2);
    for (int i = 0; i < 3; i++)
        CHECK_INT(workpool_submit(wp, gated_job, &g), 0);
    CHECK_INT(workpool_submit(wp, gated_job, &g), -1);
    CHECK_INT(workpool_submit(wp, gated_job, &g), -1);
    int queued, running;
    unsigned long refused;
    workpool_stats(wp, &queued, &running, &refused);
    CHECK_INT(queued, 3);
    CHECK_INT(running, 2);
    CHECK_INT(refused, 2);
    gate_open(&g);
    workpool_drain(wp);
    CHECK_INT(atomic_load(&g.finished), 5);
    workpool_stats(wp, &queued, &running, &refused);
    CHECK_INT(queued, 0);
    CHECK_INT(running, 0);
    /* Drained: it takes nothing more. */
    CHECK_INT(workpool_submit(wp, gated_job, &g), -1);
    workpool_free(wp);
    CHECK_INT(atomic_load(&g.finished), 5);
}

static atomic_long sum;

static void add_job(void *arg)
{
    atomic_fetch_add(&sum, (long)(intptr_t)arg);
}

/* Many submitters against a small ring: every accepted job runs exactly
 * once (the sum of accepted values equals the sum of run values). */
static void *submitter(void *arg)
{
    struct workpool *wp = arg;
    long accepted = 0;
    for (long i = 1; i <= 20000; i++) {
        if (workpool_submit(wp, add_job, (void *)(intptr_t)i) == 0)
            accepted += i;
        else
            sched_yield();
    }
    return (void *)(intptr_t)accepted;
}

static void test_every_accepted_job_runs_once(void)
{
    struct workpool *wp;
    CHECK_INT(workpool_new(3, 4, 0, &wp), 0);
    atomic_store(&sum, 0);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, submitter, wp);
    long expect = 0;
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        expect += (long)(intptr_t)r;
    }
    workpool_free(wp);
    CHECK(expect > 0);
    CHECK_INT(atomic_load(&sum), expect);
}

static atomic_int seen_nice;

static void nice_job(void *arg)
{
    (void)arg;
    atomic_store(&seen_nice, getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid)));
}

/* The workers run at the process's nice value plus the pool's. */
static void test_worker_nice(void)
{
    int base = getpriority(PRIO_PROCESS, 0);
    struct workpool *wp;
    CHECK_INT(workpool_new(1, 1, 3, &wp), 0);
    atomic_store(&seen_nice, -100);
    CHECK_INT(workpool_submit(wp, nice_job, NULL), 0);
    workpool_drain(wp);
    CHECK_INT(atomic_load(&seen_nice), base + 3 > 19 ? 19 : base + 3);
    workpool_free(wp);
    CHECK_INT(getpriority(PRIO_PROCESS, 0), base); /* the caller's own is unchanged */
}

static atomic_int seen_policy;

static void policy_job(void *arg)
{
    (void)arg;
    atomic_store(&seen_policy, sched_getscheduler(0));
}

/* image_nice = idle: the workers run SCHED_IDLE, so any normal thread that
 * wakes (a COMMIT's, a check's) preempts them at once; the caller's own
 * policy is unchanged. */
static void test_worker_idle(void)
{
    int mine = sched_getscheduler(0);
    struct workpool *wp;
    CHECK_INT(workpool_new(1, 1, IMAGE_NICE_IDLE, &wp), 0);
    atomic_store(&seen_policy, -100);
    CHECK_INT(workpool_submit(wp, policy_job, NULL), 0);
    workpool_drain(wp);
    CHECK_INT(atomic_load(&seen_policy), SCHED_IDLE);
    workpool_free(wp);
    CHECK_INT(sched_getscheduler(0), mine);
}

struct where {
    pid_t tid;
    int policy;
    atomic_int ran;
};

static void where_job(void *arg)
{
    struct where *w = arg;
    w->tid = (pid_t)syscall(SYS_gettid);
    w->policy = sched_getscheduler(0);
    usleep(20000); /* the caller must wait for this, not return early */
    atomic_fetch_add(&w->ran, 1);
}

/* workpool_call runs the job on a worker, at the pool's policy, and returns
 * only when it is done; a stopping pool refuses it without running it. */
static void test_call_waits_on_a_worker(void)
{
    int mine = sched_getscheduler(0);
    struct workpool *wp;
    CHECK_INT(workpool_new(2, 4, IMAGE_NICE_IDLE, &wp), 0);
    struct where w = {.tid = 0};
    CHECK_INT(workpool_call(wp, where_job, &w), 0);
    CHECK_INT(atomic_load(&w.ran), 1);
    CHECK(w.tid != (pid_t)syscall(SYS_gettid));
    CHECK_INT(w.policy, SCHED_IDLE);
    CHECK_INT(sched_getscheduler(0), mine);
    workpool_drain(wp);
    CHECK_INT(workpool_call(wp, where_job, &w), -1);
    CHECK_INT(atomic_load(&w.ran), 1);
    workpool_free(wp);
}

static void test_bad_sizes(void)
{
    struct workpool *wp = (struct workpool *)1;
    CHECK_INT(workpool_new(0, 4, 0, &wp), -1);
    CHECK(wp == NULL);
    CHECK_INT(workpool_new(2, 0, 0, &wp), -1);
    workpool_free(NULL);
}

int main(void)
{
    RUN(test_full_queue_refuses);
    RUN(test_every_accepted_job_runs_once);
    RUN(test_worker_nice);
    RUN(test_worker_idle);
    RUN(test_call_waits_on_a_worker);
    RUN(test_bad_sizes);
    return unit_report();
}
