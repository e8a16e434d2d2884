/* vindex_impl.h: what index/vindex.c (the index and its exact -> ANN
 * switch) and index/vindex_regrow.c (re-partitioning an IVF index whose
 * lists grew long) share. Not for other callers: they use index/vindex.h. */
#ifndef IMGSEARCH_VINDEX_IMPL_H
#define IMGSEARCH_VINDEX_IMPL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <faiss/c_api/Index_c.h>

#include "index/rerank.h"
#include "index/vindex.h"

struct regrow_log;

struct vindex {
    pthread_rwlock_t lock; /* searches read; a FAISS mutation or the swap writes */
    pthread_mutex_t wmu;   /* one writer at a time, held across a whole retrain */
    FaissIndex *idx;
    int exact; /* idx is IDMap2 over a flat index */
    int dim;
    long exact_max;
    char *factory;
    int rerank; /* candidates re-ranked in the ANN tier; 0: none */
    rerank_fetch_fn fetch;
    void (*fetch_done)(void *arg);
    void *fetch_arg;
    /* Background switch; all under wmu. */
    int background;  /* train on a thread of its own (see top) */
    int training;    /* a trainer thread runs */
    int joinable;    /* a trainer thread was started and not joined */
    int stopping;    /* vindex_free: no thread may swap (atomic: the regrow polls it) */
    size_t retry_at; /* after a failed training: next try at this count */
    pthread_t trainer;
    /* Re-partition (vindex_regrow.c); all under wmu. */
    long list_max;                 /* vectors per list that start one; 0: never */
    int regrowing;                 /* a regrow thread runs */
    int regrow_joinable;           /* ... was started and not joined */
    size_t regrow_retry_at;        /* after a failed one: next try at this count */
    struct regrow_log *regrow_log; /* changes made while it runs */
    pthread_t regrower;
};

/* Error text for vindex_last_error (thread-local). */
void vindex_set_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void vindex_set_faiss_err(const char *what);
/* An empty, untrained ANN index from a factory string. */
int vindex_new_ann(int dim, const char *factory, FaissIndex **out);
double vindex_now_s(void);

/* Re-partition, called with wmu held. After a change to the ANN tier:
 * records it for a regrow in progress, and starts one (a thread; only with
 * the background switch on) when the lists have grown past list_max. A
 * regrow that fails leaves the index as it was. */
void vindex_regrow_after_add(struct vindex *vi, size_t n, const int64_t *ids);
void vindex_regrow_after_remove(struct vindex *vi, size_t n, const int64_t *ids);
/* Background switch turned on: starts a regrow an index read back is due. */
void vindex_regrow_check(struct vindex *vi);
/* Joins a regrow thread (vindex_free sets stopping first). Caller does not
 * hold wmu. */
void vindex_regrow_join(struct vindex *vi);

#endif
