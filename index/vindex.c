/* vindex.c: one vector index per instance, on the FAISS C API (index/faiss_c.cpp).
 *
 * Inner product on L2-normalised vectors. Starts as "IDMap2,Flat" (exact);
 * the add that would take it past exact_max trains the configured ANN index
 * on every vector held so far (read straight out of the flat index, no second
 * copy), moves them over and swaps it in. Training runs outside the rwlock,
 * so searches keep using the flat index meanwhile; a writer mutex keeps other
 * adds/removes out until the swap.
 *
 * Background switch (vindex_set_background_switch, the server's live
 * indexes): training takes minutes at 100k items, and holding the writer
 * mutex that long stopped the instance's adds. Instead the crossing add
 * goes to the flat index like any other, and a thread trains the ANN index
 * on a copy of (a stride sample of) the vectors held then; adds and removes
 * go on in the flat index meanwhile. Only the fill, one pass over the flat
 * index's vectors as they are by then, and the swap hold the writer mutex,
 * so every change made during training is in the new index. Loads and
 * rebuilds keep the synchronous switch: they would otherwise pile every
 * vector into the flat index first.
 *
 * Re-rank: a PQ index orders candidates by lossy codes; with a fetch
 * function, the ANN tier asks for max(k, rerank) candidates and re-scores
 * them exactly (index/rerank.c) after dropping the read lock, so a slow fetch
 * (SQLite on a cold page cache) never holds up a writer.
 *
 * Threads: searches share the read lock; adds/removes hold the write lock
 * only while FAISS mutates. Searches run OpenMP with 1 thread (set per
 * calling thread): several OpenMP threads per query make one-at-a-time
 * searches 3-10x slower on a shared CPU. Run the process with
 * OMP_WAIT_POLICY=PASSIVE so idle OpenMP workers (from training) sleep. */
#include "index/vindex.h"

#include "index/faiss_ext.h"
#include "index/vindex_impl.h"
#include "index/rerank.h"

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>
#include <faiss/c_api/utils/distances_c.h>

#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <omp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* nprobe stored in a freshly built IVF index: what a search with nprobe <= 0
 * gets (the API's request default is 100 too). */
#define VINDEX_DEFAULT_NPROBE 100
/* efSearch of an HNSW coarse quantizer: recall of the true 32 nearest of
 * 65536 lists and cost per query in docs/bench/quantizer.md. */
#define VINDEX_QUANTIZER_EF 128

static _Thread_local char last_err[512];

double vindex_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
static pthread_once_t tune_once = PTHREAD_ONCE_INIT;

/* Single-query flat searches (and IVF coarse quantisation) through OpenBLAS
 * instead of FAISS's generic SSE loop: 25 -> 3-7 ms at 10k x 1792 (see
 * docs/bench/search.md). FAISS's threshold is process-wide; set it once. */
static void tune_faiss(void)
{
    faiss_set_distance_compute_blas_threshold(1);
    imgsearch_faiss_interrupt_install(); /* before any index exists: it is global */
}

void vindex_set_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_err, sizeof last_err, fmt, ap);
    va_end(ap);
}

void vindex_set_faiss_err(const char *what)
{
    const char *e = faiss_get_last_error();
    vindex_set_err("%s: %s", what, e ? e : "unknown FAISS error");
}

static void copy_err(char *errbuf, size_t errlen)
{
    if (errbuf && errlen)
        snprintf(errbuf, errlen, "%s", last_err);
}

const char *vindex_last_error(void)
{
    return last_err;
}

/* The ANN factory string as we build it: IVF indexes store ids themselves;
 * anything else (e.g. HNSW) needs an IDMap2 around it for add_with_ids. */
static int ann_description(const char *factory, char *buf, size_t len)
{
    int need_map = !strstr(factory, "IVF") && strncmp(factory, "IDMap", 5) != 0;
    int n = snprintf(buf, len, "%s%s", need_map ? "IDMap2," : "", factory);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* Builds an empty, untrained ANN index from the configured factory. */
int vindex_new_ann(int dim, const char *factory, FaissIndex **out)
{
    char desc[256];
    if (ann_description(factory, desc, sizeof desc) != 0) {
        vindex_set_err("ann_factory too long");
        return -1;
    }
    if (faiss_index_factory(out, dim, desc, METRIC_INNER_PRODUCT) != 0) {
        vindex_set_faiss_err("bad ann_factory");
        return -1;
    }
    if (imgsearch_faiss_ann_setup(*out) != 0) {
        vindex_set_faiss_err("bad ann_factory");
        faiss_Index_free(*out);
        *out = NULL;
        return -1;
    }
    if (strstr(factory, "IVF")) {
        FaissParameterSpace *ps = NULL;
        if (faiss_ParameterSpace_new(&ps) == 0) {
            // Best effort: an unknown parameter only leaves FAISS's default.
            faiss_ParameterSpace_set_index_parameter(ps, *out, "nprobe", VINDEX_DEFAULT_NPROBE);
            /* An HNSW coarse quantizer (a re-partition past 16384 lists)
             * must find the nprobe nearest lists: FAISS 1.7.3 searches it
             * with efSearch (16) candidates whatever nprobe asks. */
            if (strstr(factory, "_HNSW"))
                faiss_ParameterSpace_set_index_parameter(ps, *out, "quantizer_efSearch",
                                                         VINDEX_QUANTIZER_EF);
            faiss_ParameterSpace_free(ps);
        }
    }
    return 0;
}

static int is_exact_index(FaissIndex *idx)
{
    FaissIndexIDMap2 *map = faiss_IndexIDMap2_cast(idx);
    return map && faiss_IndexFlat_cast(faiss_IndexIDMap2_sub_index(map)) != NULL;
}

static int check_options(const struct vindex_options *opt)
{
    if (!opt || opt->dim <= 0 || opt->exact_max < 0 || !opt->ann_factory || !*opt->ann_factory ||
        opt->rerank < 0) {
        vindex_set_err("invalid vindex options");
        return -1;
    }
    return 0;
}

static int wrap(const struct vindex_options *opt, FaissIndex *idx, struct vindex **out)
{
    struct vindex *vi = calloc(1, sizeof *vi);
    if (!vi || !(vi->factory = strdup(opt->ann_factory))) {
        free(vi);
        vindex_set_err("out of memory");
        return -1;
    }
    pthread_rwlock_init(&vi->lock, NULL);
    pthread_mutex_init(&vi->wmu, NULL);
    vi->idx = idx;
    vi->exact = is_exact_index(idx);
    vi->dim = opt->dim;
    vi->exact_max = opt->exact_max;
    vi->rerank = opt->fetch ? opt->rerank : 0;
    vi->fetch = opt->fetch;
    vi->fetch_done = opt->fetch_done;
    vi->fetch_arg = opt->fetch_arg;
    vi->list_max = opt->fetch ? opt->list_max : 0;
    *out = vi;
    return 0;
}

int vindex_create(const struct vindex_options *opt, struct vindex **out, char *errbuf,
                  size_t errlen)
{
    FaissIndex *idx = NULL, *probe = NULL;

    pthread_once(&tune_once, tune_faiss);
    if (check_options(opt) != 0)
        goto fail;
    // Build the ANN index once now so a bad factory string fails at start-up.
    if (vindex_new_ann(opt->dim, opt->ann_factory, &probe) != 0)
        goto fail;
    faiss_Index_free(probe);
    if (faiss_index_factory(&idx, opt->dim, "IDMap2,Flat", METRIC_INNER_PRODUCT) != 0) {
        vindex_set_faiss_err("creating flat index");
        goto fail;
    }
    if (wrap(opt, idx, out) != 0)
        goto fail;
    return 0;
fail:
    if (idx)
        faiss_Index_free(idx);
    copy_err(errbuf, errlen);
    return -1;
}

/* Wraps an index just read, after checking it fits the options. */
static int adopt(FaissIndex *idx, const char *what, const struct vindex_options *opt,
                 struct vindex **out)
{
    if (faiss_Index_d(idx) != opt->dim) {
        vindex_set_err("%s: dimension %d, expected %d", what, faiss_Index_d(idx), opt->dim);
        return -1;
    }
    return wrap(opt, idx, out);
}

int vindex_load(const char *path, const struct vindex_options *opt, struct vindex **out,
                char *errbuf, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    int rc = vindex_read(f, opt, out, errbuf, errlen);
    fclose(f);
    return rc;
}

int vindex_read(FILE *f, const struct vindex_options *opt, struct vindex **out, char *errbuf,
                size_t errlen)
{
    FaissIndex *idx = NULL;

    pthread_once(&tune_once, tune_faiss);
    if (check_options(opt) != 0)
        goto fail;
    if (faiss_read_index(f, 0, &idx) != 0) {
        vindex_set_faiss_err("reading index");
        goto fail;
    }
    if (adopt(idx, "snapshot", opt, out) != 0)
        goto fail;
    return 0;
fail:
    if (idx)
        faiss_Index_free(idx);
    copy_err(errbuf, errlen);
    return -1;
}

int vindex_write(struct vindex *vi, FILE *f)
{
    // The read lock: searches go on, only mutations wait for the write.
    pthread_rwlock_rdlock(&vi->lock);
    int rc = faiss_write_index(vi->idx, f);
    pthread_rwlock_unlock(&vi->lock);
    if (rc != 0) {
        vindex_set_faiss_err("writing index");
        return -1;
    }
    return 0;
}

/* fsync of a directory by name, so a rename in it is durable. */
static int sync_dir(const char *path)
{
    int fd = open(path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Writes the index to `tmp` and makes it durable. Every step is checked: on
 * a full disk the failure may surface only at fflush, fsync or fclose (the
 * last stdio buffer), never to be mistaken for a complete file. */
static int write_file(struct vindex *vi, const char *tmp)
{
    FILE *f = fopen(tmp, "wbe");
    if (!f) {
        vindex_set_err("%s: %s", tmp, strerror(errno));
        return -1;
    }
    if (vindex_write(vi, f) != 0) {
        char why[sizeof last_err];
        snprintf(why, sizeof why, "%s", last_err);
        vindex_set_err("%s: %s", tmp, why);
        fclose(f);
        return -1;
    }
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        vindex_set_err("%s: %s", tmp, strerror(errno));
        fclose(f);
        return -1;
    }
    if (fclose(f) != 0) {
        vindex_set_err("%s: %s", tmp, strerror(errno));
        return -1;
    }
    return 0;
}

/* Temp file + fsync + rename: a save that fails (full disk, I/O error, a
 * crash) leaves the file at `path` as it was and no temp file behind. */
int vindex_save(struct vindex *vi, const char *path, char *errbuf, size_t errlen)
{
    char tmp[4096], dir[4096];

    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        vindex_set_err("path too long");
        copy_err(errbuf, errlen);
        return -1;
    }
    if (write_file(vi, tmp) != 0)
        goto fail;
    if (rename(tmp, path) != 0) {
        vindex_set_err("%s: %s", path, strerror(errno));
        goto fail;
    }
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    sync_dir(slash ? dir : "."); // best effort: the rename is already durable on most fs
    return 0;
fail:
    unlink(tmp);
    copy_err(errbuf, errlen);
    return -1;
}

void vindex_free(struct vindex *vi)
{
    if (!vi)
        return;
    pthread_mutex_lock(&vi->wmu);
    /* A trainer still running finishes training, then drops it; a regrow
     * stops at its next chunk. */
    __atomic_store_n(&vi->stopping, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&vi->wmu);
    vindex_switch_wait(vi);
    faiss_Index_free(vi->idx);
    pthread_rwlock_destroy(&vi->lock);
    pthread_mutex_destroy(&vi->wmu);
    free(vi->factory);
    free(vi);
}

/* Trains the ANN index on everything in the flat index plus the new batch,
 * fills it and swaps it in. Caller holds wmu (no other writer), not lock. */
static int switch_to_ann(struct vindex *vi, size_t n, const int64_t *ids, const float *vecs)
{
    FaissIndexIDMap2 *map = faiss_IndexIDMap2_cast(vi->idx);
    FaissIndexFlat *flat = faiss_IndexFlat_cast(faiss_IndexIDMap2_sub_index(map));
    FaissIndex *ann = NULL, *old;
    float *xb = NULL, *train = NULL, *joined = NULL;
    idx_t *old_ids = NULL;
    size_t nxb = 0, nids = 0, ntrain;
    size_t d = (size_t)vi->dim;

    faiss_IndexFlat_xb(flat, &xb, &nxb);
    faiss_IndexIDMap2_id_map(map, &old_ids, &nids);
    nxb /= d;
    if (nxb != nids) {
        vindex_set_err("flat index and its id map disagree");
        goto fail;
    }
    if (vindex_new_ann(vi->dim, vi->factory, &ann) != 0)
        goto fail;
    // Train on what is there; join the batch only when it would dominate.
    if (nxb >= n) {
        train = xb, ntrain = nxb;
    } else if (nxb == 0) {
        train = (float *)vecs, ntrain = n;
    } else {
        joined = malloc((nxb + n) * d * sizeof *joined);
        if (!joined) {
            vindex_set_err("out of memory");
            goto fail;
        }
        memcpy(joined, xb, nxb * d * sizeof *joined);
        memcpy(joined + nxb * d, vecs, n * d * sizeof *joined);
        train = joined, ntrain = nxb + n;
    }
    if (faiss_Index_train(ann, (idx_t)ntrain, train) != 0) {
        vindex_set_faiss_err("training ANN index");
        goto fail;
    }
    free(joined);
    joined = NULL;
    if ((nxb && faiss_Index_add_with_ids(ann, (idx_t)nxb, xb, old_ids) != 0) ||
        (n && faiss_Index_add_with_ids(ann, (idx_t)n, vecs, ids) != 0)) {
        vindex_set_faiss_err("filling ANN index");
        goto fail;
    }
    pthread_rwlock_wrlock(&vi->lock);
    old = vi->idx;
    vi->idx = ann;
    vi->exact = 0;
    pthread_rwlock_unlock(&vi->lock);
    faiss_Index_free(old);
    return 0;
fail:
    free(joined);
    if (ann)
        faiss_Index_free(ann);
    return -1;
}

/* At most this many bytes of vectors are copied for a background training
 * (a stride sample past it): 256 MB is 262k compact vectors (64 a list of
 * IVF4096) or 37k float ones (36 a list of IVF1024); k-means wants 39-256. */
#define TRAIN_COPY_BYTES (256u << 20)

struct trainer_arg {
    struct vindex *vi;
    float *sample;
    size_t n;
};

/* Fills `ann` with every vector of the flat index and swaps it in. Caller
 * holds wmu. */
static int fill_and_swap(struct vindex *vi, FaissIndex *ann)
{
    FaissIndexIDMap2 *map = faiss_IndexIDMap2_cast(vi->idx);
    FaissIndexFlat *flat = faiss_IndexFlat_cast(faiss_IndexIDMap2_sub_index(map));
    float *xb = NULL;
    idx_t *ids = NULL;
    size_t nxb = 0, nids = 0;
    faiss_IndexFlat_xb(flat, &xb, &nxb);
    faiss_IndexIDMap2_id_map(map, &ids, &nids);
    nxb /= (size_t)vi->dim;
    if (nxb != nids) {
        vindex_set_err("flat index and its id map disagree");
        return -1;
    }
    if (nxb && faiss_Index_add_with_ids(ann, (idx_t)nxb, xb, ids) != 0) {
        vindex_set_faiss_err("filling ANN index");
        return -1;
    }
    pthread_rwlock_wrlock(&vi->lock);
    FaissIndex *old = vi->idx;
    vi->idx = ann;
    vi->exact = 0;
    pthread_rwlock_unlock(&vi->lock);
    faiss_Index_free(old);
    return 0;
}

static void *trainer_main(void *p)
{
    struct trainer_arg *a = p;
    struct vindex *vi = a->vi;
    FaissIndex *ann = NULL;
    double t0 = vindex_now_s();
    int rc = vindex_new_ann(vi->dim, vi->factory, &ann);
    if (rc == 0 && faiss_Index_train(ann, (idx_t)a->n, a->sample) != 0) {
        vindex_set_faiss_err("training ANN index");
        rc = -1;
    }
    free(a->sample);
    double t1 = vindex_now_s();
    pthread_mutex_lock(&vi->wmu);
    if (rc == 0 && !vi->stopping && vi->exact && fill_and_swap(vi, ann) == 0) {
        ann = NULL;
        fprintf(stderr,
                "vindex: switched to %s in the background: trained on %zu vectors in "
                "%.1f s, filled with %zu in %.1f s\n",
                vi->factory, a->n, t1 - t0, (size_t)faiss_Index_ntotal(vi->idx),
                vindex_now_s() - t1);
        vindex_regrow_check(vi); /* switched far past exact_max: lists may be long already */
    } else if (!vi->stopping) {
        fprintf(stderr, "vindex: background switch to %s failed (%s); exact meanwhile\n",
                vi->factory, rc ? vindex_last_error() : "fill");
        vi->retry_at = 2 * (size_t)faiss_Index_ntotal(vi->idx);
    }
    vi->training = 0;
    pthread_mutex_unlock(&vi->wmu);
    if (ann)
        faiss_Index_free(ann);
    free(a);
    return NULL;
}

/* Copies the training sample and starts the trainer. Caller holds wmu; the
 * flat index is not being mutated. Returns -1 when it could not start (the
 * caller switches synchronously instead). */
static int start_training(struct vindex *vi)
{
    FaissIndexIDMap2 *map = faiss_IndexIDMap2_cast(vi->idx);
    FaissIndexFlat *flat = faiss_IndexFlat_cast(faiss_IndexIDMap2_sub_index(map));
    float *xb = NULL;
    size_t nxb = 0, d = (size_t)vi->dim;
    faiss_IndexFlat_xb(flat, &xb, &nxb);
    nxb /= d;
    size_t cap = TRAIN_COPY_BYTES / (d * sizeof(float)), n = nxb < cap ? nxb : cap;
    struct trainer_arg *a = malloc(sizeof *a);
    float *sample = n ? malloc(n * d * sizeof *sample) : NULL;
    if (!a || !sample) {
        free(a);
        free(sample);
        return -1;
    }
    for (size_t i = 0; i < n; i++) /* a stride over the whole index, not its head */
        memcpy(sample + i * d, xb + (i * nxb / n) * d, d * sizeof *sample);
    *a = (struct trainer_arg){.vi = vi, .sample = sample, .n = n};
    if (vi->joinable) {
        pthread_join(vi->trainer, NULL); /* the last one has finished */
        vi->joinable = 0;
    }
    if (pthread_create(&vi->trainer, NULL, trainer_main, a) != 0) {
        free(sample);
        free(a);
        return -1;
    }
    vi->training = vi->joinable = 1;
    return 0;
}

void vindex_set_background_switch(struct vindex *vi, int on)
{
    pthread_mutex_lock(&vi->wmu);
    vi->background = on;
    /* A snapshot taken while a trainer ran is exact past exact_max. */
    size_t total = (size_t)faiss_Index_ntotal(vi->idx);
    if (on && vi->exact && (long)total > vi->exact_max && !vi->training && total >= vi->retry_at)
        start_training(vi); /* no thread: the next add switches in line */
    if (on)
        vindex_regrow_check(vi);
    pthread_mutex_unlock(&vi->wmu);
}

void vindex_switch_wait(struct vindex *vi)
{
    pthread_mutex_lock(&vi->wmu);
    int join = vi->joinable;
    pthread_t t = vi->trainer; /* read under wmu: start_training may reuse the field */
    vi->joinable = 0;
    pthread_mutex_unlock(&vi->wmu);
    if (join)
        pthread_join(t, NULL);
    vindex_regrow_join(vi);
}

int vindex_add(struct vindex *vi, size_t n, const int64_t *ids, const float *vecs)
{
    int rc = 0;

    if (n == 0)
        return 0;
    if (!ids || !vecs) {
        vindex_set_err("vindex_add: no ids or vectors");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0) { // FAISS reports "no result" as -1
            vindex_set_err("vindex_add: negative id %lld", (long long)ids[i]);
            return -1;
        }
    }
    pthread_mutex_lock(&vi->wmu);
    // ntotal only changes under wmu, which we hold: no read lock needed here.
    size_t total = (size_t)faiss_Index_ntotal(vi->idx) + n;
    int over = vi->exact && (long)total > vi->exact_max;
    if (over && !vi->background) {
        rc = switch_to_ann(vi, n, ids, vecs);
    } else {
        pthread_rwlock_wrlock(&vi->lock);
        if (faiss_Index_add_with_ids(vi->idx, (idx_t)n, vecs, ids) != 0) {
            vindex_set_faiss_err("vindex_add");
            rc = -1;
        }
        pthread_rwlock_unlock(&vi->lock);
        if (rc == 0 && over && !vi->training && total >= vi->retry_at && start_training(vi) != 0)
            rc = switch_to_ann(vi, 0, NULL, NULL); /* no thread or memory: do it here */
        else if (rc == 0 && !vi->exact)
            vindex_regrow_after_add(vi, n, ids);
    }
    pthread_mutex_unlock(&vi->wmu);
    return rc;
}

long vindex_remove(struct vindex *vi, size_t n, const int64_t *ids)
{
    FaissIDSelectorBatch *sel = NULL;
    size_t removed = 0;
    int rc;

    if (n == 0)
        return 0;
    if (faiss_IDSelectorBatch_new(&sel, n, ids) != 0) {
        vindex_set_faiss_err("vindex_remove");
        return -1;
    }
    pthread_mutex_lock(&vi->wmu);
    pthread_rwlock_wrlock(&vi->lock);
    rc = faiss_Index_remove_ids(vi->idx, (const FaissIDSelector *)sel, &removed);
    pthread_rwlock_unlock(&vi->lock);
    if (rc == 0 && !vi->exact)
        vindex_regrow_after_remove(vi, n, ids);
    pthread_mutex_unlock(&vi->wmu);
    faiss_IDSelector_free((FaissIDSelector *)sel);
    if (rc != 0) {
        vindex_set_faiss_err("vindex_remove");
        return -1;
    }
    return (long)removed;
}

static int sorted_ascending(const int64_t *a, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (a[i - 1] > a[i])
            return 0;
    return 1;
}

/* A filter that passes a fraction s of the index leaves an IVF search with
 * about s of the candidates an unfiltered one meets: the allowed items in
 * the unprobed lists are never seen, and a selective filter returns worse
 * items than the true best (or none). So probe 1/s times as many lists and
 * scan 1/s times as many codes: the same number of allowed candidates as an
 * unfiltered search. Past nlist that is every list (the shim clamps), i.e.
 * an exhaustive search over the allowed items: with nprobe 100 of 1024 lists
 * that is any filter passing under ~10% of the index. The filter is checked
 * before any distance, so a full scan costs one id test per code plus the
 * distances of the allowed items only. Caller holds the read lock. */
static void widen_for_filter(struct vindex *vi, size_t n_allowed, size_t *nprobe, size_t *max_codes)
{
    double total = (double)faiss_Index_ntotal(vi->idx);
    if (n_allowed == 0 || (double)n_allowed >= total)
        return;
    double widen = total / (double)n_allowed;
    double np = (double)(*nprobe ? *nprobe : VINDEX_DEFAULT_NPROBE) * widen;
    *nprobe = np >= 1e12 ? (size_t)-1 : (size_t)ceil(np);
    if (*max_codes) {
        double mc = (double)*max_codes * widen;
        *max_codes = mc >= 1e15 ? 0 : (size_t)ceil(mc);
    }
}

/* Searches the index for `want` results into dis/lab; returns how many are
 * real, or -1. Caller holds the read lock. */
static int search_locked(struct vindex *vi, const float *query, int want, int k,
                         const int64_t *allowed, size_t n_allowed, size_t nprobe, size_t max_codes,
                         float *dis, idx_t *lab)
{
    int found = 0;
    if (allowed && !vi->exact)
        widen_for_filter(vi, n_allowed, &nprobe, &max_codes);
    int rc = imgsearch_faiss_search_params(vi->idx, 1, query, want, nprobe, max_codes, allowed,
                                           n_allowed, dis, lab);
    while (rc == 0 && found < want && lab[found] >= 0)
        found++;
    /* A filter can hide every match from the probed lists / scan budget; the
     * caller asked for k matching items, so scan the whole index then. */
    if (rc == 0 && allowed && !vi->exact && found < k && (size_t)found < n_allowed) {
        rc = imgsearch_faiss_search_params(vi->idx, 1, query, want, (size_t)-1, 0, allowed,
                                           n_allowed, dis, lab);
        found = 0;
        while (rc == 0 && found < want && lab[found] >= 0)
            found++;
    }
    return rc == 0 ? found : -1;
}

int vindex_search(struct vindex *vi, const float *query, int k,
                  const struct vindex_search_params *p, int64_t *ids, float *scores, int *n_found)
{
    float dstack[64], *dis = dstack;
    idx_t lstack[64], *lab = lstack;
    const int64_t *allowed = p ? p->allowed : NULL;
    size_t n_allowed = p ? p->n_allowed : 0;
    size_t nprobe = p && p->nprobe > 0 ? (size_t)p->nprobe : 0;
    size_t max_codes = p && p->max_scan > 0 ? (size_t)p->max_scan : 0;
    int rc = -1, found = 0;

    *n_found = 0;
    if (k <= 0 || (allowed && n_allowed == 0))
        return 0;
    if (allowed && !sorted_ascending(allowed, n_allowed)) {
        vindex_set_err("vindex_search: allowed ids are not sorted");
        return -1;
    }
    // Sized for the re-rank depth: the tier is only known under the lock.
    int depth = vi->rerank > k ? vi->rerank : k;
    if (depth > 64) {
        dis = malloc((size_t)depth * sizeof *dis);
        lab = malloc((size_t)depth * sizeof *lab);
        if (!dis || !lab) {
            vindex_set_err("out of memory");
            goto done;
        }
    }
    // Per calling thread: FAISS's OpenMP regions then run inline. Restored
    // after, so a thread that also does batch adds keeps its parallelism.
    int omp_prev = omp_get_max_threads();
    omp_set_num_threads(1);
    pthread_rwlock_rdlock(&vi->lock);
    int rerank = !vi->exact && vi->rerank > 0;
    found = search_locked(vi, query, rerank ? depth : k, k, allowed, n_allowed, nprobe, max_codes,
                          dis, lab);
    pthread_rwlock_unlock(&vi->lock);
    omp_set_num_threads(omp_prev);
    if (found < 0) {
        vindex_set_faiss_err("vindex_search");
        goto done;
    }
    if (rerank && found > 0) {
        const char *why = "";
        found = rerank_exact(vi->fetch, vi->fetch_arg, vi->dim, query, found, lab, dis, k, &why);
        if (found < 0) {
            vindex_set_err("vindex_search: %s", why);
            goto done;
        }
    }
    if (found > k)
        found = k;
    for (int i = 0; i < found; i++) {
        ids[i] = lab[i];
        scores[i] = dis[i];
    }
    *n_found = found;
    rc = 0;
done:
    if (dis != dstack)
        free(dis);
    if (lab != lstack)
        free(lab);
    return rc;
}

size_t vindex_count(struct vindex *vi)
{
    pthread_rwlock_rdlock(&vi->lock);
    size_t n = (size_t)faiss_Index_ntotal(vi->idx);
    pthread_rwlock_unlock(&vi->lock);
    return n;
}

int vindex_set_param(struct vindex *vi, const char *name, double value)
{
    FaissParameterSpace *ps = NULL;
    if (faiss_ParameterSpace_new(&ps) != 0) {
        vindex_set_faiss_err("vindex_set_param");
        return -1;
    }
    pthread_mutex_lock(&vi->wmu);
    pthread_rwlock_wrlock(&vi->lock);
    int rc = faiss_ParameterSpace_set_index_parameter(ps, vi->idx, name, value);
    pthread_rwlock_unlock(&vi->lock);
    pthread_mutex_unlock(&vi->wmu);
    faiss_ParameterSpace_free(ps);
    if (rc != 0) {
        vindex_set_faiss_err("vindex_set_param");
        return -1;
    }
    return 0;
}

size_t vindex_nlist(struct vindex *vi)
{
    pthread_rwlock_rdlock(&vi->lock);
    FaissIndexIVF *ivf = vi->exact ? NULL : faiss_IndexIVF_cast(vi->idx);
    size_t n = ivf ? faiss_IndexIVF_nlist(ivf) : 0;
    pthread_rwlock_unlock(&vi->lock);
    return n;
}

int vindex_is_exact(struct vindex *vi)
{
    pthread_rwlock_rdlock(&vi->lock);
    int exact = vi->exact;
    pthread_rwlock_unlock(&vi->lock);
    return exact;
}
