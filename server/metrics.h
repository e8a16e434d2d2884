/* metrics.h: Prometheus counters and histograms kept in memory, rendered by
 * GET /metrics in the text exposition format. */
#ifndef IMGSEARCH_METRICS_H
#define IMGSEARCH_METRICS_H

#include <stddef.h>

struct metrics;

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/* One finished request; `route` is a static string (the route's name). */
void metrics_request(struct metrics *m, const char *route, int status, double seconds);
/* One feature extraction (decode excluded). */
void metrics_extract(struct metrics *m, double seconds);

/* Appends the text exposition of the counters to *buf (malloc'd, grown). */
int metrics_render(struct metrics *m, char **buf, size_t *len, size_t *cap);

/* Appends one formatted line to a growable buffer; -1 on allocation failure. */
int metrics_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
