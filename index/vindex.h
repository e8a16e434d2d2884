/* vindex.h: one vector index per instance (FAISS through its C API), inner
 * product on L2-normalised vectors. Exact (IDMap,Flat) up to exact_max items;
 * past that it retrains into the configured ANN index (e.g. IVF1024,SQ8, or
 * IVF4096,PQ32 whose lossy codes want a re-rank: `rerank` below). Thread-safe:
 * searches share a read lock, adds/removes take a short write lock, so a
 * search never waits behind a whole batch add. */
#ifndef IMGSEARCH_VINDEX_H
#define IMGSEARCH_VINDEX_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "index/rerank.h"

struct vindex;

struct vindex_options {
    int dim;
    long exact_max;          /* switch to ANN above this many vectors */
    const char *ann_factory; /* FAISS factory string for the ANN index; FAISS
                              * 1.7.3's fast-scan ("...x4fs") is refused: it
                              * takes no per-query nprobe or id filter */
    /* Re-rank in the ANN tier: ask the index for max(k, rerank) candidates
     * and order them by the exact inner product with the vectors `fetch`
     * returns (the source of truth, e.g. SQLite). 0 or no fetch: the ANN
     * index's own scores. The exact tier never re-ranks. */
    int rerank;
    rerank_fetch_fn fetch;
    /* Called by a background thread that used fetch, before it exits (the
     * caller may keep a per-thread database connection to close). */
    void (*fetch_done)(void *arg);
    void *fetch_arg; /* must outlive the index */
    /* Re-partition (needs fetch): an IVF index whose lists hold more than
     * list_max vectors on average is rebuilt with 4x the lists (at most
     * 65536; past 16384 with an HNSW quantizer), trained and filled from the
     * vectors `fetch` returns, while searches and changes go on in the old
     * one (index/vindex_regrow.c). Scan time per probed list stays bounded
     * as the instance grows. The new index takes ann_factory's codec (what
     * follows "IVFn"), so a changed factory applies from the next one. Only with the background switch on (so a load
     * does not re-partition half-way; turning it on starts one that is
     * due). 0: never. */
    long list_max;
};

struct vindex_search_params {
    int nprobe;             /* IVF probes; <= 0: index default */
    long max_scan;          /* cap on codes scanned (IVF max_codes); <= 0: unlimited */
    const int64_t *allowed; /* sorted ids a result must be among (tag filters); NULL: all */
    size_t n_allowed;
};

/* Creates an empty index. Returns 0, or -1 with a message in errbuf. */
int vindex_create(const struct vindex_options *opt, struct vindex **out, char *errbuf,
                  size_t errlen);

/* Loads a snapshot written by vindex_save (the options say what to become
 * when it grows). */
int vindex_load(const char *path, const struct vindex_options *opt, struct vindex **out,
                char *errbuf, size_t errlen);

/* Writes a snapshot atomically (temp file, fsync, rename): on failure (a
 * full disk) the file already at `path` is left untouched. */
int vindex_save(struct vindex *vi, const char *path, char *errbuf, size_t errlen);
void vindex_free(struct vindex *vi);

/* The index serialised at the FILE's position (searches go on meanwhile;
 * adds and removes wait), and read back from one. The caller owns the FILE,
 * its header, flushing and syncing: the registry's snapshots put their change
 * seq in front of the index, in the same file. */
int vindex_write(struct vindex *vi, FILE *f);
int vindex_read(FILE *f, const struct vindex_options *opt, struct vindex **out, char *errbuf,
                size_t errlen);

/* Adds n vectors (n*dim floats) with their ids. Ids must not be present. */
int vindex_add(struct vindex *vi, size_t n, const int64_t *ids, const float *vecs);
/* Removes ids that are present; returns how many were removed, or -1. */
long vindex_remove(struct vindex *vi, size_t n, const int64_t *ids);

/* k nearest by inner product, best first. `ids`/`scores` hold k entries;
 * *n_found gets how many are real (missing ones are not written). With a
 * re-rank, the scores are the exact ones and candidates the fetch no longer
 * finds are left out. */
int vindex_search(struct vindex *vi, const float *query, int k,
                  const struct vindex_search_params *p, int64_t *ids, float *scores, int *n_found);

/* On: the add that takes an exact index past exact_max starts a thread that
 * trains the ANN index while adds, removes and searches go on in the exact
 * one; only the final fill and swap hold writers up (vindex.c). Off (the
 * default): that add trains and switches before it returns. Loads and
 * rebuilds should switch synchronously, then turn this on; turning it on
 * starts the trainer at once for an exact index already past exact_max. */
void vindex_set_background_switch(struct vindex *vi, int on);
/* Waits for a background switch or re-partition in progress (whether it
 * succeeded: see vindex_is_exact, vindex_nlist). */
void vindex_switch_wait(struct vindex *vi);

size_t vindex_count(struct vindex *vi);
/* Sets a FAISS search parameter of the current index through its
 * ParameterSpace ("nprobe", "efSearch", "quantizer_efSearch", ...): for
 * benchmarks and tools. A switch or re-partition builds a new index with
 * vindex.c's defaults: what was set here does not carry over. Returns 0, or
 * -1 when FAISS refuses it. */
int vindex_set_param(struct vindex *vi, const char *name, double value);

/* Inverted lists of an IVF index; 0 for the exact tier or another kind. */
size_t vindex_nlist(struct vindex *vi);
int vindex_is_exact(struct vindex *vi);
const char *vindex_last_error(void); /* thread-local text of the last failure */

#endif
