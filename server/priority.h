/* priority.h: the CPU priority of the threads that decode images and run
 * the CNN (the compute pool, server/ingest.c), so that the cheap calls
 * (check, update, delete, the WAL's fsync wake-ups) do not wait behind it. */
#ifndef IMGSEARCH_PRIORITY_H
#define IMGSEARCH_PRIORITY_H

#include "config/config.h" /* IMAGE_NICE_IDLE */

/* Lowers the calling thread: nice 0 keeps the process's priority, 1-19 adds
 * that nice value, IMAGE_NICE_IDLE switches it to SCHED_IDLE. Failure keeps
 * the priority it had (it only shapes latency). 0 when applied, else -1
 * with errno set. */
int priority_lower_self(int image_nice);

#endif
