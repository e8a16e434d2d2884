/* imports.h: the background import runner. A bounded pool of
 * cfg.import_workers threads; each takes one QUEUED job at a time and
 * imports its keys one by one through the same path as v2 data/add, so
 * searches keep the other cores. The keys of a bucket prefix come from
 * one lister thread (server/lister.h) while the job runs. Jobs live in
 * SQLite (storage/jobs.h): a job interrupted by a crash is queued again at
 * start, resumes at the first key without a durable result, and its
 * listing, if unfinished, resumes after its last listed key. */
#ifndef IMGSEARCH_IMPORTS_H
#define IMGSEARCH_IMPORTS_H

#include <stddef.h>

struct server;
struct imports;

/* Requeues jobs left RUNNING by a previous process and starts the workers
 * and the lister. */
int imports_start(struct server *srv, struct imports **out, char *errbuf, size_t errlen);
/* Stops the lister after its current batch and the workers after their
 * current image; jobs stay RUNNING in SQLite and resume at the next start.
 * NULL is a no-op. */
void imports_stop(struct imports *im);
/* Wakes a worker and the lister: a job was queued. */
void imports_notify(struct imports *im);

/* Appends Prometheus lines: items per instance and import progress. */
int imports_render_metrics(struct server *srv, char **buf, size_t *len, size_t *cap);

#endif
