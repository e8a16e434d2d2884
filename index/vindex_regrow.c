/* vindex_regrow.c: re-partitions an IVF index whose inverted lists grew long.
 *
 * Why: an IVF search scans nprobe lists, so with the partition fixed when the
 * index left exact search (IVF4096 trained on the first 32k items) the scan
 * grows with the instance: at 10M four-view items a list holds ~9,800 codes
 * and nprobe 32 scans 312k of them (~11 ms of PQ look-ups). When the lists
 * average more than list_max vectors, the index is rebuilt with 4x the lists,
 * trained and filled from the source of truth (`fetch`: a compact instance's
 * int8 codes in SQLite, not the lossy PQ codes), so a probe's scan stays
 * under list_max codes from the first switch to 10M items. Past 16384 lists
 * the coarse quantizer becomes HNSW: a flat one would read 64 MB of centroids
 * per query at 65536 x 256.
 *
 * How: under wmu every id of the index is collected and a change log
 * opened. A builder thread at SCHED_IDLE (it yields to requests; k-means for
 * 16384 lists is minutes of CPU, and FAISS's check stops it within seconds
 * when the index is freed) trains the new index on a stride sample and fills
 * it with every collected id's vector, fetched in chunks. Searches and
 * changes go on in the old index meanwhile; changes are logged as ids only
 * (the database holds the vectors, committed before the index takes them).
 * The coordinating thread, at normal priority because it takes wmu, then
 * replays the log in rounds without wmu while it shrinks, and the last short
 * round plus the swap under wmu: writers wait for milliseconds. A round is
 * applied by its net effect: every id the round removed, removed in one
 * pass; every id whose last change is an add, fetched and added. That is
 * the state replaying in order would give over whatever the fill saw: an id
 * removed (or removed and added again) ends as its last change says, an id
 * never logged as the fill found it, and a row deleted from the database is
 * simply not found.
 *
 * Only with the background switch on: a load or rebuild (which adds with it
 * off) does not re-partition half-way, and the one regrow when it turns on
 * goes straight to a partition that fits. A failed regrow leaves the old
 * index in place and is tried again at twice the vectors. */
#include "index/vindex_impl.h"

#include "index/faiss_ext.h"

#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>

#include <ctype.h>
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REGROW_FACTOR 4
#define REGROW_NLIST_MAX 65536
#define FLAT_QUANTIZER_MAX 16384
#define TRAIN_PER_LIST 40             /* FAISS's k-means wants >= 39 points a centroid */
#define TRAIN_BYTES_MAX (1024u << 20) /* 1M vectors of 256-d */
#define FETCH_CHUNK 16384
#define LOG_SWAP_MAX 1024   /* changes replayed while writers wait, normally (~0.1 s) */
#define LOG_ROUNDS_MAX 32   /* replay rounds without wmu before giving up */
#define LOG_MAX (64u << 20) /* logged changes at most (9 bytes each) */

enum { LOG_ADD, LOG_REMOVE };

struct regrow_log {
    int64_t *ids;
    unsigned char *ops;
    size_t n, cap;
    int failed; /* out of memory or past LOG_MAX: dropped, tried again later */
};

struct regrow_arg {
    struct vindex *vi;
    int64_t *ids;
    size_t n;
    size_t nlist_from, nlist;
    char factory[256];
    /* What the builder thread leaves. */
    FaissIndex *ann;
    double train_s;
    size_t ntrain;
    char why[512];
};

static struct regrow_log *log_new(void)
{
    return calloc(1, sizeof(struct regrow_log));
}

static void log_free(struct regrow_log *lg)
{
    if (!lg)
        return;
    free(lg->ids);
    free(lg->ops);
    free(lg);
}

static void log_append(struct regrow_log *lg, int op, size_t n, const int64_t *ids)
{
    if (lg->failed)
        return;
    if (lg->n + n > LOG_MAX) {
        lg->failed = 1;
        return;
    }
    if (lg->n + n > lg->cap) {
        size_t c = lg->cap ? lg->cap : 1024;
        while (c < lg->n + n)
            c *= 2;
        int64_t *i2 = realloc(lg->ids, c * sizeof *i2);
        if (i2)
            lg->ids = i2;
        unsigned char *o2 = i2 ? realloc(lg->ops, c) : NULL;
        if (o2)
            lg->ops = o2;
        if (!i2 || !o2) {
            lg->failed = 1;
            return;
        }
        lg->cap = c;
    }
    memcpy(lg->ids + lg->n, ids, n * sizeof *ids);
    memset(lg->ops + lg->n, op, n);
    lg->n += n;
}

struct log_ent {
    int64_t id;
    size_t seq;
};

static int cmp_ent(const void *a, const void *b)
{
    const struct log_ent *x = a, *y = b;
    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

static int stop_asked(struct vindex *vi)
{
    return __atomic_load_n(&vi->stopping, __ATOMIC_ACQUIRE);
}

/* Fetches the vectors of n ids into vecs and packs the ones found to the
 * front, their ids into got_ids. Returns how many, or -1. */
static long fetch_packed(struct vindex *vi, size_t n, const int64_t *ids, float *vecs,
                         int64_t *got_ids, unsigned char *found)
{
    size_t d = (size_t)vi->dim, k = 0;
    if (vi->fetch(vi->fetch_arg, n, ids, vecs, found) != 0) {
        vindex_set_err("re-partition: fetching vectors failed");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!found[i])
            continue;
        if (k != i)
            memmove(vecs + k * d, vecs + i * d, d * sizeof *vecs);
        got_ids[k++] = ids[i];
    }
    return (long)k;
}

/* Scratch for fetching FETCH_CHUNK vectors at a time. */
struct fetch_buf {
    float *vecs;
    int64_t *got;
    unsigned char *found;
};

static int buf_init(struct fetch_buf *fb, size_t d)
{
    fb->vecs = malloc(FETCH_CHUNK * d * sizeof *fb->vecs);
    fb->got = malloc(FETCH_CHUNK * sizeof *fb->got);
    fb->found = malloc(FETCH_CHUNK);
    if (fb->vecs && fb->got && fb->found)
        return 0;
    vindex_set_err("re-partition: out of memory");
    return -1;
}

static void buf_free(struct fetch_buf *fb)
{
    free(fb->vecs);
    free(fb->got);
    free(fb->found);
}

/* Fetches the vectors of n ids chunk by chunk and adds those found to
 * `ann`; stops early when the index is being freed. Returns how many were
 * added, or -1 (`what` names the step in the error). */
static long fetch_add(struct vindex *vi, FaissIndex *ann, size_t n, const int64_t *ids,
                      struct fetch_buf *fb, const char *what)
{
    size_t added = 0;
    for (size_t off = 0; off < n; off += FETCH_CHUNK) {
        size_t c = n - off < FETCH_CHUNK ? n - off : FETCH_CHUNK;
        long k = fetch_packed(vi, c, ids + off, fb->vecs, fb->got, fb->found);
        if (k < 0)
            return -1;
        if (stop_asked(vi)) {
            vindex_set_err("re-partition: stopped");
            return -1;
        }
        if (k > 0 && faiss_Index_add_with_ids(ann, (idx_t)k, fb->vecs, fb->got) != 0) {
            vindex_set_faiss_err(what);
            return -1;
        }
        added += (size_t)k;
    }
    return (long)added;
}

/* Applies a round of logged changes to `ann` by their net effect (see the
 * top). Returns 0, or -1 with the reason in vindex_last_error. */
static int log_apply(struct vindex *vi, FaissIndex *ann, const struct regrow_log *lg)
{
    size_t n = lg->n, nrm = 0, nadd = 0;
    if (n == 0)
        return 0;
    int rc = -1;
    struct log_ent *e = malloc(n * sizeof *e);
    int64_t *rm = malloc(n * sizeof *rm), *add = malloc(n * sizeof *add);
    struct fetch_buf fb;
    if (buf_init(&fb, (size_t)vi->dim) != 0 || !e || !rm || !add) {
        vindex_set_err("re-partition: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        e[i] = (struct log_ent){lg->ids[i], i};
    qsort(e, n, sizeof *e, cmp_ent);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        int removed = 0;
        for (; j < n && e[j].id == e[i].id; j++)
            removed |= lg->ops[e[j].seq] == LOG_REMOVE;
        if (removed)
            rm[nrm++] = e[i].id;
        if (lg->ops[e[j - 1].seq] == LOG_ADD)
            add[nadd++] = e[i].id;
        i = j;
    }
    if (nrm) {
        FaissIDSelectorBatch *sel = NULL;
        size_t gone;
        int r = faiss_IDSelectorBatch_new(&sel, nrm, rm);
        if (r == 0)
            r = faiss_Index_remove_ids(ann, (const FaissIDSelector *)sel, &gone);
        if (sel)
            faiss_IDSelector_free((FaissIDSelector *)sel);
        if (r != 0) {
            vindex_set_faiss_err("re-partition: replaying removes");
            goto out;
        }
    }
    if (nadd && fetch_add(vi, ann, nadd, add, &fb, "re-partition: replaying adds") < 0)
        goto out;
    rc = 0;
out:
    free(e);
    free(rm);
    free(add);
    buf_free(&fb);
    return rc;
}

/* "IVF4096,PQ64" with 16384 lists -> "IVF16384,PQ64"; with 65536 ->
 * "IVF65536_HNSW32,PQ64". A quantizer the factory names is kept. -1 when
 * the factory is not an IVF one. */
static int factory_with(const char *factory, size_t nlist, char *buf, size_t len)
{
    if (strncmp(factory, "IVF", 3) != 0 || !isdigit((unsigned char)factory[3]))
        return -1;
    const char *p = factory + 3;
    while (isdigit((unsigned char)*p))
        p++;
    const char *comma = strchr(p, ',');
    if (!comma)
        return -1;
    const char *quant = p < comma ? p : nlist > FLAT_QUANTIZER_MAX ? "_HNSW32" : "";
    int qlen = p < comma ? (int)(comma - p) : (int)strlen(quant);
    int n = snprintf(buf, len, "IVF%zu%.*s%s", nlist, qlen, quant, comma);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* The lists a regrow of this index should have now, or 0 when none is due:
 * 4x as many, or more when that would still leave the lists past list_max
 * (an index read back or switched far past its size). Caller holds wmu. */
static size_t due_nlist(struct vindex *vi, size_t *from)
{
    if (vi->list_max <= 0 || !vi->background || vi->exact || !vi->fetch || vi->regrowing)
        return 0;
    FaissIndexIVF *ivf = faiss_IndexIVF_cast(vi->idx);
    if (!ivf)
        return 0;
    size_t nlist = faiss_IndexIVF_nlist(ivf), total = (size_t)faiss_Index_ntotal(vi->idx);
    size_t lm = (size_t)vi->list_max;
    if (total < vi->regrow_retry_at || nlist >= REGROW_NLIST_MAX || total <= lm * nlist)
        return 0;
    size_t next = nlist;
    while (next < REGROW_NLIST_MAX && total > lm * next)
        next *= REGROW_FACTOR;
    *from = nlist;
    return next < REGROW_NLIST_MAX ? next : REGROW_NLIST_MAX;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Every id in the IVF index. Caller holds wmu: nothing mutates the lists. */
static int64_t *collect_ids(struct vindex *vi, size_t *n)
{
    FaissIndexIVF *ivf = faiss_IndexIVF_cast(vi->idx);
    size_t nlist = faiss_IndexIVF_nlist(ivf), total = 0;
    for (size_t l = 0; l < nlist; l++)
        total += faiss_IndexIVF_get_list_size(ivf, l);
    int64_t *ids = malloc((total ? total : 1) * sizeof *ids);
    if (!ids)
        return NULL;
    size_t off = 0;
    for (size_t l = 0; l < nlist; l++) {
        faiss_IndexIVF_invlists_get_ids(ivf, l, ids + off);
        off += faiss_IndexIVF_get_list_size(ivf, l);
    }
    *n = total;
    return ids;
}

/* Trains an index of the arg's factory on a stride sample of the ids'
 * vectors and fills it with all of them: into a->ann (NULL on failure or a
 * stop), with a->train_s and a->ntrain. */
static void build(struct regrow_arg *a)
{
    /* Sorted, an item's views are adjacent rows for the fetch. */
    qsort(a->ids, a->n, sizeof *a->ids, cmp_i64);
    struct vindex *vi = a->vi;
    size_t d = (size_t)vi->dim, m = TRAIN_PER_LIST * a->nlist;
    size_t cap = TRAIN_BYTES_MAX / (d * sizeof(float));
    FaissIndex *ann = NULL;
    float *sample = NULL;
    int64_t *sid = NULL;
    struct fetch_buf fb;
    double t0 = vindex_now_s();

    if (m > cap)
        m = cap;
    if (m > a->n)
        m = a->n;
    sample = malloc((m ? m : 1) * d * sizeof *sample);
    sid = malloc((m ? m : 1) * sizeof *sid);
    if (buf_init(&fb, d) != 0 || !sample || !sid) {
        vindex_set_err("re-partition: out of memory");
        goto fail;
    }
    if (vindex_new_ann(vi->dim, a->factory, &ann) != 0)
        goto fail;
    for (size_t i = 0; i < m; i++) /* a stride over every id, not its head */
        sid[i] = a->ids[i * a->n / m];
    size_t have = 0;
    for (size_t off = 0; off < m; off += FETCH_CHUNK) {
        size_t c = m - off < FETCH_CHUNK ? m - off : FETCH_CHUNK;
        long k = fetch_packed(vi, c, sid + off, sample + have * d, fb.got, fb.found);
        if (k < 0 || stop_asked(vi))
            goto fail;
        have += (size_t)k;
    }
    if (faiss_Index_train(ann, (idx_t)have, sample) != 0) {
        vindex_set_faiss_err("re-partition: training");
        goto fail;
    }
    free(sample);
    sample = NULL;
    a->train_s = vindex_now_s() - t0;
    a->ntrain = have;
    long filled = fetch_add(vi, ann, a->n, a->ids, &fb, "re-partition: filling");
    if (filled < 0)
        goto fail;
    /* Rows deleted since the index took them are few; most of the index
     * missing from its source of truth is a fault there (a database that
     * answers empty), never a reason to drop the items from search. */
    if ((size_t)filled < a->n / 2) {
        vindex_set_err("re-partition: the database holds only %ld of the index's %zu vectors",
                       filled, a->n);
        goto fail;
    }
    a->ann = ann;
    ann = NULL;
fail:
    if (ann)
        faiss_Index_free(ann);
    free(sample);
    free(sid);
    buf_free(&fb);
}

/* Puts `ann` in place of the index. Caller holds wmu; frees the old one
 * after dropping it (freeing a 10M-vector index takes a while). */
static FaissIndex *swap_in(struct vindex *vi, FaissIndex *ann)
{
    pthread_rwlock_wrlock(&vi->lock);
    FaissIndex *old = vi->idx;
    vi->idx = ann;
    pthread_rwlock_unlock(&vi->lock);
    return old;
}

static void report(const struct regrow_arg *a, double total_s, size_t replayed)
{
    fprintf(stderr,
            "vindex: re-partitioned %zu -> %zu lists (%s) in the background: trained on %zu "
            "vectors in %.1f s, %zu vectors in %.1f s, %zu changes replayed\n",
            a->nlist_from, a->nlist, a->factory, a->ntrain, a->train_s, a->n, total_s, replayed);
}

/* Caller holds wmu. */
static void failed(struct vindex *vi, const struct regrow_arg *a, const char *why)
{
    vi->regrow_retry_at = 2 * (size_t)faiss_Index_ntotal(vi->idx);
    fprintf(stderr, "vindex: re-partition to %s failed (%s); %zu lists meanwhile\n", a->factory,
            why, a->nlist_from);
}

/* The builder: below every request (SCHED_IDLE, best effort; FAISS's OpenMP
 * workers, started from this thread, inherit it), and interruptible by
 * vindex_free. It never takes wmu: a SCHED_IDLE thread holding it would
 * stall every writer whenever the cores are busy. */
static void *builder_main(void *p)
{
    struct regrow_arg *a = p;
    struct sched_param sp = {0};
    pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
    imgsearch_faiss_interrupt_on(&a->vi->stopping);
    build(a);
    if (!a->ann)
        snprintf(a->why, sizeof a->why, "%s", vindex_last_error());
    imgsearch_faiss_interrupt_on(NULL);
    if (a->vi->fetch_done)
        a->vi->fetch_done(a->vi->fetch_arg);
    return NULL;
}

/* The coordinator: normal priority, since it takes wmu. Waits for the
 * builder, then replays the change log onto the new index and swaps it in. */
static void *regrow_main(void *p)
{
    struct regrow_arg *a = p;
    struct vindex *vi = a->vi;
    double t0 = vindex_now_s();
    size_t replayed = 0;
    FaissIndex *old = NULL;
    pthread_t b;

    /* Replay rounds run here, outside wmu but at normal priority: on one
     * core, so they leave the other to requests. */
    omp_set_num_threads(1);
    if (pthread_create(&b, NULL, builder_main, a) == 0)
        pthread_join(b, NULL);
    else /* not here: SCHED_IDLE cannot be undone, and this thread takes wmu */
        snprintf(a->why, sizeof a->why, "no thread for the build");
    free(a->ids);
    a->ids = NULL;
    for (int round = 0;; round++) {
        pthread_mutex_lock(&vi->wmu);
        struct regrow_log *lg = vi->regrow_log;
        int stop = stop_asked(vi);
        if (!a->ann || stop || lg->failed) {
            if (!stop)
                failed(vi, a, a->ann ? "change log full" : a->why);
            break;
        }
        /* The last round, under wmu, only when short: writers wait for it.
         * Writes that keep outpacing the replay make this attempt give up
         * (tried again at twice the vectors) rather than hold them up. */
        if (lg->n > LOG_SWAP_MAX && round >= LOG_ROUNDS_MAX) {
            failed(vi, a, "writes outpaced the replay");
            break;
        }
        struct regrow_log *next = lg->n > LOG_SWAP_MAX ? log_new() : NULL;
        if (lg->n > LOG_SWAP_MAX && !next) {
            failed(vi, a, "out of memory");
            break;
        }
        if (!next) {
            if (log_apply(vi, a->ann, lg) == 0) {
                replayed += lg->n;
                old = swap_in(vi, a->ann);
                a->ann = NULL;
                report(a, vindex_now_s() - t0, replayed);
            } else {
                failed(vi, a, vindex_last_error());
            }
            break;
        }
        vi->regrow_log = next; /* changes from now on */
        pthread_mutex_unlock(&vi->wmu);
        int rc = log_apply(vi, a->ann, lg);
        replayed += lg->n;
        log_free(lg);
        if (rc != 0) {
            snprintf(a->why, sizeof a->why, "%s", vindex_last_error());
            faiss_Index_free(a->ann);
            a->ann = NULL;
        }
    }
    /* wmu held */
    log_free(vi->regrow_log);
    vi->regrow_log = NULL;
    vi->regrowing = 0;
    pthread_mutex_unlock(&vi->wmu);
    if (old)
        faiss_Index_free(old);
    if (a->ann)
        faiss_Index_free(a->ann);
    if (vi->fetch_done)
        vi->fetch_done(vi->fetch_arg); /* the replay fetched on this thread */
    free(a);
    return NULL;
}

/* Starts a regrow to `nlist` lists. Caller holds wmu. */
static void start(struct vindex *vi, size_t from, size_t nlist)
{
    struct regrow_arg *a = calloc(1, sizeof *a);
    if (!a)
        return;
    a->vi = vi;
    a->nlist_from = from;
    a->nlist = nlist;
    if (factory_with(vi->factory, nlist, a->factory, sizeof a->factory) != 0) {
        vi->regrow_retry_at = (size_t)-1; /* not an IVF factory: never */
        free(a);
        return;
    }
    if (!(a->ids = collect_ids(vi, &a->n))) {
        failed(vi, a, "out of memory");
        free(a);
        return;
    }
    if (vi->regrow_joinable) {
        pthread_join(vi->regrower, NULL); /* the last one has finished */
        vi->regrow_joinable = 0;
    }
    vi->regrow_log = log_new();
    if (!vi->regrow_log || pthread_create(&vi->regrower, NULL, regrow_main, a) != 0) {
        failed(vi, a, "no thread or memory");
        log_free(vi->regrow_log);
        vi->regrow_log = NULL;
        free(a->ids);
        free(a);
        return;
    }
    vi->regrowing = vi->regrow_joinable = 1;
}

void vindex_regrow_check(struct vindex *vi)
{
    size_t from = 0, next = due_nlist(vi, &from);
    if (next)
        start(vi, from, next);
}

void vindex_regrow_after_add(struct vindex *vi, size_t n, const int64_t *ids)
{
    if (vi->regrowing)
        log_append(vi->regrow_log, LOG_ADD, n, ids);
    else
        vindex_regrow_check(vi);
}

void vindex_regrow_after_remove(struct vindex *vi, size_t n, const int64_t *ids)
{
    if (vi->regrowing)
        log_append(vi->regrow_log, LOG_REMOVE, n, ids);
}

void vindex_regrow_join(struct vindex *vi)
{
    pthread_mutex_lock(&vi->wmu);
    int join = vi->regrow_joinable;
    pthread_t t = vi->regrower; /* read under wmu: start() may reuse the field */
    vi->regrow_joinable = 0;
    pthread_mutex_unlock(&vi->wmu);
    if (join)
        pthread_join(t, NULL);
}
