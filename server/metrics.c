/* metrics.c: request counters by route and status, latency histograms by
 * route, and the extractor's time histogram. A mutex is enough: one short
 * critical section per request, far below the cost of the request. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "server/metrics.h"

static const double bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                0.25,  0.5,    1,     2.5,  5,     10};
#define N_BOUNDS (sizeof bounds / sizeof bounds[0])
#define MAX_SERIES 256

struct histo {
    unsigned long long buckets[N_BOUNDS]; /* non-cumulative; summed on render */
    unsigned long long count;
    double sum;
};

struct series {
    const char *route;
    int status;
    unsigned long long count;
};

struct route_histo {
    const char *route;
    struct histo h;
};

struct metrics {
    pthread_mutex_t lock;
    struct series req[MAX_SERIES];
    size_t n_req;
    struct route_histo lat[MAX_SERIES];
    size_t n_lat;
    struct histo extract;
};

struct metrics *metrics_new(void)
{
    struct metrics *m = calloc(1, sizeof *m);
    if (m)
        pthread_mutex_init(&m->lock, NULL);
    return m;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static void observe(struct histo *h, double v)
{
    for (size_t i = 0; i < N_BOUNDS; i++)
        if (v <= bounds[i]) {
            h->buckets[i]++;
            break;
        }
    h->count++;
    h->sum += v;
}

void metrics_request(struct metrics *m, const char *route, int status, double seconds)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    size_t i;
    for (i = 0; i < m->n_req; i++)
        if (m->req[i].route == route && m->req[i].status == status)
            break;
    if (i == m->n_req && m->n_req < MAX_SERIES)
        m->req[m->n_req++] = (struct series){route, status, 0};
    if (i < m->n_req)
        m->req[i].count++;
    for (i = 0; i < m->n_lat; i++)
        if (m->lat[i].route == route)
            break;
    if (i == m->n_lat && m->n_lat < MAX_SERIES) {
        memset(&m->lat[i], 0, sizeof m->lat[i]);
        m->lat[m->n_lat++].route = route;
    }
    if (i < m->n_lat)
        observe(&m->lat[i].h, seconds);
    pthread_mutex_unlock(&m->lock);
}

void metrics_extract(struct metrics *m, double seconds)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    observe(&m->extract, seconds);
    pthread_mutex_unlock(&m->lock);
}

int metrics_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if (*len + (size_t)n + 1 > *cap) {
        size_t c = *cap ? *cap : 4096;
        while (c < *len + (size_t)n + 1)
            c *= 2;
        char *g = realloc(*buf, c);
        if (!g)
            return -1;
        *buf = g;
        *cap = c;
    }
    va_start(ap, fmt);
    vsnprintf(*buf + *len, *cap - *len, fmt, ap);
    va_end(ap);
    *len += (size_t)n;
    return 0;
}

static int render_histo(char **b, size_t *l, size_t *c, const char *name, const char *labels,
                        const struct histo *h)
{
    unsigned long long cum = 0;
    int rc = 0;
    const char *sep = labels[0] ? "," : "";
    for (size_t i = 0; i < N_BOUNDS; i++) {
        cum += h->buckets[i];
        rc |= metrics_printf(b, l, c, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
                             bounds[i], cum);
    }
    rc |= metrics_printf(b, l, c, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, h->count);
    rc |= metrics_printf(b, l, c, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", name, labels, h->sum,
                         name, labels, h->count);
    return rc;
}

int metrics_render(struct metrics *m, char **b, size_t *l, size_t *c)
{
    int rc = 0;
    pthread_mutex_lock(&m->lock);
    rc |= metrics_printf(b, l, c,
                         "# HELP imgsearch_requests_total HTTP requests by route and "
                         "status.\n# TYPE imgsearch_requests_total counter\n");
    for (size_t i = 0; i < m->n_req; i++)
        rc |= metrics_printf(b, l, c, "imgsearch_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                             m->req[i].route, m->req[i].status, m->req[i].count);
    rc |= metrics_printf(b, l, c,
                         "# HELP imgsearch_request_duration_seconds Request latency by "
                         "route.\n# TYPE imgsearch_request_duration_seconds histogram\n");
    for (size_t i = 0; i < m->n_lat; i++) {
        char labels[128];
        snprintf(labels, sizeof labels, "route=\"%s\"", m->lat[i].route);
        rc |= render_histo(b, l, c, "imgsearch_request_duration_seconds", labels, &m->lat[i].h);
    }
    rc |= metrics_printf(b, l, c,
                         "# HELP imgsearch_extract_seconds Feature extraction time per "
                         "image.\n# TYPE imgsearch_extract_seconds histogram\n");
    rc |= render_histo(b, l, c, "imgsearch_extract_seconds", "", &m->extract);
    pthread_mutex_unlock(&m->lock);
    return rc ? -1 : 0;
}
