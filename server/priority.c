/* priority.c: see priority.h.
 *
 * Why SCHED_IDLE beside nice 19: in a soak (docs/benchmarks.md), with the
 * CNN at nice 19 the slowest updates still waited about 3 ms for a core (the
 * scheduler lets a running thread finish its slice); a SCHED_IDLE thread is
 * preempted by any normal one as it wakes. Neither needs privilege, and
 * neither can be undone without it (RLIMIT_NICE), so the policy is set once
 * on threads that take none of the server's locks: a low-priority thread
 * preempted inside one would stall every normal one waiting for it. (They
 * still share malloc's arena locks with the others; a wait there ends as
 * soon as a core is free, i.e. at once unless the box is saturated.) The cost: on a box whose
 * other processes keep the cores busy, the CNN gets only what they leave. */
#include <errno.h>
#include <pthread.h>
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
        int rc = pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
        if (rc != 0)
            errno = rc;
        return rc != 0 ? -1 : 0;
    }
    /* Linux applies nice per thread (a task id). */
    return setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid),
                       getpriority(PRIO_PROCESS, 0) + image_nice);
}
