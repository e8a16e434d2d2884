/* priority.c: see priority.h.
 *
 * Why SCHED_IDLE beside nice 19: in a soak (docs/benchmarks.md), with the
 * CNN at nice 19 the slowest updates still waited about 3 ms for a core (the
 * scheduler lets a running thread finish its slice); a SCHED_IDLE thread is
 * preempted by any normal one as it wakes. Neither needs privilege, and
 * neither can be undone without it (RLIMIT_NICE), so the policy is set once
 * on threads that hold no lock: a low-priority thread preempted inside a
 * lock would stall every normal one waiting for it. The cost: on a box whose
 * other processes keep the cores busy, the CNN gets only what they leave. */
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "server/priority.h"

int priority_lower_self(int image_nice)
{
    if (image_nice <= 0)
        return 0;
    if (image_nice >= IMAGE_NICE_IDLE) {
        struct sched_param sp = {.sched_priority = 0};
        /* pthread_setschedparam cannot select SCHED_IDLE on every libc; the
         * syscall on our own task id (pid 0) applies to this thread only. */
        return sched_setscheduler(0, SCHED_IDLE, &sp) == 0 ? 0 : -1;
    }
    /* Linux applies nice per thread (a task id). */
    return setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid),
                       getpriority(PRIO_PROCESS, 0) + image_nice);
}
