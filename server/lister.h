/* lister.h: lists the sources of import jobs in the background, so a POST
 * of an import answers at once whatever the size of the bucket. One thread
 * takes the oldest unfinished job whose listing is not done, lists its
 * prefix page by page and appends the keys to the job in batches (each
 * batch one transaction: keys and total), so import workers start on the
 * first keys while listing goes on. A listing interrupted by a crash or a
 * shutdown resumes after the last appended key (listings run in byte
 * order); one cut short by cancel or instance deletion just stops. */
#ifndef IMGSEARCH_LISTER_H
#define IMGSEARCH_LISTER_H

#include <stddef.h>

struct server;
struct lister;

/* Starts the thread; on_keys(arg) is called after each appended batch and
 * when a listing ends (workers waiting for keys wake up). */
int lister_start(struct server *srv, void (*on_keys)(void *), void *arg, struct lister **out,
                 char *errbuf, size_t errlen);
/* Stops after the current batch (the job resumes listing at the next
 * start). NULL is a no-op. */
void lister_stop(struct lister *l);
/* Wakes the thread: a job to list was created. */
void lister_notify(struct lister *l);

/* 1 when a listed key is to be imported: not a "folder" marker (a key
 * ending in '/', as some S3 tools create). */
int lister_key_wanted(const char *key);

#endif
