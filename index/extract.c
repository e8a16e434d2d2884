/* extract.c: the extractor's public face. Opens (mmaps) the weight file,
 * squashes an image to 224x224 (area average when shrinking, bilinear when
 * enlarging, per axis), runs the network and L2-normalises the pooled
 * features. Scratch buffers come from a small mutex-guarded pool, so
 * extractor_embed is thread-safe without per-call page faults. */
#include "index/extract.h"

#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/mnv2.h"

#define DEFAULT_MODEL "models/mnv2_140.bin"
#define POOL_MAX 8

struct scratch_pool {
    pthread_mutex_t lock;
    size_t floats;
    int nfree;
    float *free[POOL_MAX];
};

/* The network laid out for one input side, with its scratch pool. A pool
 * block is the network's scratch, then (from `in_off`) room for the
 * side x side x 3 input, so an embed touches no fresh page at all. */
struct side_net {
    struct mnv2 net;
    enum mnv2_path path; /* MNV2_FAST where MNV2_INT8 was asked for without VNNI */
    size_t in_off;       /* floats */
    struct scratch_pool pool;
};

/* The nets of the sides other than EXTRACT_SIDE, loaded on first use: the
 * first `n` entries are complete and never change again (readers load `n`
 * with acquire; a loader appends under `lock` and publishes with release). */
struct side_nets {
    pthread_mutex_t lock;
    int n; /* atomic */
    struct side_net *net[EXTRACT_MAX_SIDES];
};

struct extractor {
    struct side_net *main;    /* EXTRACT_SIDE (mutable pool behind a const extractor) */
    struct side_nets *others; /* mutable behind a const extractor */
    enum mnv2_path want;      /* the path asked for, for the sides loaded later */
    char model_path[4096];
};

static int env_on(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

/* DEFAULT resolved through the environment (tests, benchmarks, and servers
 * whose config does not choose). */
static enum extract_path resolve_path(enum extract_path path)
{
    if (path != EXTRACT_PATH_DEFAULT)
        return path;
    if (env_on("IMGSEARCH_EXTRACT_REF"))
        return EXTRACT_PATH_REF;
    if (env_on("IMGSEARCH_EXTRACT_BLAS"))
        return EXTRACT_PATH_BLAS;
    if (env_on("IMGSEARCH_EXTRACT_INT8"))
        return EXTRACT_PATH_INT8;
    return EXTRACT_PATH_FLOAT;
}

int extractor_open(const char *model_path, struct extractor **out, char *errbuf, size_t errlen)
{
    return extractor_open_path(model_path, EXTRACT_PATH_DEFAULT, out, errbuf, errlen);
}

enum extract_path extractor_path(const struct extractor *ex)
{
    switch (ex->main->path) {
    case MNV2_REF:
        return EXTRACT_PATH_REF;
    case MNV2_FAST_BLAS:
        return EXTRACT_PATH_BLAS;
    case MNV2_INT8:
        return EXTRACT_PATH_INT8;
    default:
        return EXTRACT_PATH_FLOAT;
    }
}

static void pool_free(struct scratch_pool *pool)
{
    for (int i = 0; i < pool->nfree; i++)
        free(pool->free[i]);
    pool->nfree = 0;
    pthread_mutex_destroy(&pool->lock);
}

static void side_net_free(struct side_net *sn)
{
    if (!sn)
        return;
    pool_free(&sn->pool);
    mnv2_unload(&sn->net);
    free(sn);
}

/* The network at `side` from the weight file, with int8 weights when the
 * extractor runs int8 (they depend on the channels only, not the side; a
 * failure leaves that side on the float kernels, as extractor_open does). */
static struct side_net *side_net_load(const char *path, int side, enum mnv2_path mp, char *errbuf,
                                      size_t errlen)
{
    struct side_net *sn = calloc(1, sizeof *sn);
    if (!sn) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    if (pthread_mutex_init(&sn->pool.lock, NULL) != 0) {
        free(sn);
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    if (mnv2_load(path, side, &sn->net, errbuf, errlen) != 0)
        goto fail;
    if (sn->net.out_ch != EXTRACT_DIM) {
        snprintf(errbuf, errlen, "%s: network gives %d features, want %d", path, sn->net.out_ch,
                 EXTRACT_DIM);
        goto fail;
    }
    sn->in_off = (mnv2_scratch_floats(&sn->net) + 15) / 16 * 16;
    sn->pool.floats = sn->in_off + (size_t)side * (size_t)side * 3;
    sn->path = mp;
    if (mp == MNV2_INT8 && mnv2_prepare_int8(&sn->net) != 0)
        sn->path = MNV2_FAST;
    return sn;
fail:
    side_net_free(sn);
    return NULL;
}

int extractor_open_path(const char *model_path, enum extract_path want, struct extractor **out,
                        char *errbuf, size_t errlen)
{
    struct extractor *ex = NULL;
    const char *path = model_path;
    if (!path)
        path = getenv("IMGSEARCH_MODEL");
    if (!path || !*path)
        path = DEFAULT_MODEL;
    *out = NULL;
    if (strlen(path) >= sizeof ex->model_path) {
        snprintf(errbuf, errlen, "model path too long");
        return -1;
    }
    ex = calloc(1, sizeof *ex);
    if (!ex) {
        snprintf(errbuf, errlen, "out of memory");
        goto fail;
    }
    strcpy(ex->model_path, path);
    enum mnv2_path mp;
    switch (resolve_path(want)) {
    case EXTRACT_PATH_REF:
        mp = MNV2_REF;
        break;
    case EXTRACT_PATH_BLAS:
        mp = MNV2_FAST_BLAS;
        break;
    case EXTRACT_PATH_INT8:
        mp = MNV2_INT8;
        break;
    default:
        mp = MNV2_FAST;
        break;
    }
    ex->want = mp;
    ex->main = side_net_load(path, EXTRACT_SIDE, mp, errbuf, errlen);
    if (!ex->main)
        goto fail;
    ex->others = calloc(1, sizeof *ex->others);
    if (!ex->others || pthread_mutex_init(&ex->others->lock, NULL) != 0) {
        free(ex->others);
        ex->others = NULL;
        snprintf(errbuf, errlen, "out of memory");
        goto fail;
    }
    kern_init();
    *out = ex;
    return 0;
fail:
    extractor_close(ex);
    return -1;
}

void extractor_close(struct extractor *ex)
{
    if (!ex)
        return;
    if (ex->others) {
        for (int i = 0; i < ex->others->n; i++)
            side_net_free(ex->others->net[i]);
        pthread_mutex_destroy(&ex->others->lock);
        free(ex->others);
    }
    side_net_free(ex->main);
    free(ex);
}

/* The net for `side`: loaded on first use, then shared by every thread. */
static struct side_net *side_net_get(const struct extractor *ex, int side)
{
    if (side == EXTRACT_SIDE)
        return ex->main;
    struct side_nets *o = ex->others;
    int n = __atomic_load_n(&o->n, __ATOMIC_ACQUIRE);
    for (int i = 0; i < n; i++)
        if (o->net[i]->net.side == side)
            return o->net[i];
    struct side_net *sn = NULL;
    pthread_mutex_lock(&o->lock);
    n = __atomic_load_n(&o->n, __ATOMIC_RELAXED); /* another thread may have loaded it */
    for (int i = 0; i < n && !sn; i++)
        if (o->net[i]->net.side == side)
            sn = o->net[i];
    if (!sn && n < EXTRACT_MAX_SIDES) {
        char err[256];
        sn = side_net_load(ex->model_path, side, ex->want, err, sizeof err);
        if (sn) {
            o->net[n] = sn;
            __atomic_store_n(&o->n, n + 1, __ATOMIC_RELEASE);
        } else {
            fprintf(stderr, "extractor: side %d: %s\n", side, err);
        }
    }
    pthread_mutex_unlock(&o->lock);
    return sn;
}

static float *scratch_get(struct scratch_pool *pool)
{
    float *s = NULL;
    pthread_mutex_lock(&pool->lock);
    if (pool->nfree > 0)
        s = pool->free[--pool->nfree];
    pthread_mutex_unlock(&pool->lock);
    if (!s) {
        size_t bytes = (pool->floats * sizeof(float) + 63) / 64 * 64;
        s = aligned_alloc(64, bytes);
    }
    return s;
}

static void scratch_put(struct scratch_pool *pool, float *s)
{
    pthread_mutex_lock(&pool->lock);
    if (pool->nfree < POOL_MAX) {
        pool->free[pool->nfree++] = s;
        s = NULL;
    }
    pthread_mutex_unlock(&pool->lock);
    free(s);
}

static void l2_normalise(float *v, int n)
{
    double ss = 0.0;
    for (int i = 0; i < n; i++)
        ss += (double)v[i] * v[i];
    if (ss < 1e-24) {
        /* A blank feature map has no direction; any fixed unit vector will do. */
        for (int i = 0; i < n; i++)
            v[i] = (float)(1.0 / sqrt((double)n));
        return;
    }
    float inv = (float)(1.0 / sqrt(ss));
    for (int i = 0; i < n; i++)
        v[i] *= inv;
}

static int resize_rgb(const struct image *img, int side, float *out);

/* The network of `sn` pooled into `out` (not normalised): on `input`, a
 * side x side float image, or when that is NULL on `img` squashed into the
 * scratch block's own input area. The scratch comes back in *used when
 * asked (then the caller puts it back), else goes back to the pool here. */
static int run_net(struct side_net *sn, const float *input, const struct image *img, float *out,
                   float **used)
{
    float *scratch = scratch_get(&sn->pool);
    if (!scratch)
        return -1;
    if (!input) {
        float *in = scratch + sn->in_off;
        if (resize_rgb(img, sn->net.side, in) != 0) {
            scratch_put(&sn->pool, scratch);
            return -1;
        }
        input = in;
    }
    mnv2_forward(&sn->net, input, sn->path, scratch, out);
    if (used)
        *used = scratch;
    else
        scratch_put(&sn->pool, scratch);
    return 0;
}

int extractor_embed_input(const struct extractor *ex, const float *input224, float *out)
{
    if (run_net(ex->main, input224, NULL, out, NULL) != 0)
        return -1;
    l2_normalise(out, EXTRACT_DIM);
    return 0;
}

/* Resampling taps along one axis: output i reads source
 * first[i] .. first[i]+count[i]-1 with weights w[i*maxn ..]. */
struct taps {
    int maxn;
    int *first, *count;
    float *w;
};

static void taps_free(struct taps *t)
{
    free(t->first);
    free(t->count);
    free(t->w);
    memset(t, 0, sizeof *t);
}

/* Area average when shrinking (each output pixel averages the source span
 * it covers, fractional edges weighted), bilinear with half-pixel centres
 * when enlarging. `gain` is folded into the weights (1/255 for uint8). */
static int taps_make(int src, int dst, float gain, struct taps *t)
{
    double scale = (double)src / dst;
    t->maxn = dst < src ? (int)ceil(scale) + 1 : 2;
    t->first = malloc(sizeof(int) * dst);
    t->count = malloc(sizeof(int) * dst);
    t->w = calloc((size_t)dst * t->maxn, sizeof(float));
    if (!t->first || !t->count || !t->w)
        goto fail;
    for (int i = 0; i < dst; i++) {
        float *w = t->w + (size_t)i * t->maxn;
        if (dst < src) {
            double lo = i * scale, hi = (i + 1) * scale;
            int j0 = (int)floor(lo), j1 = (int)ceil(hi) - 1;
            if (j1 > src - 1)
                j1 = src - 1;
            t->first[i] = j0;
            t->count[i] = j1 - j0 + 1;
            for (int j = j0; j <= j1; j++) {
                double a = lo > j ? lo : j, b = hi < j + 1 ? hi : j + 1;
                w[j - j0] = (float)((b > a ? b - a : 0.0) / scale * gain);
            }
        } else {
            double c = (i + 0.5) * scale - 0.5;
            if (c < 0)
                c = 0;
            if (c > src - 1)
                c = src - 1;
            int j0 = (int)floor(c);
            double f = c - j0;
            t->first[i] = j0;
            t->count[i] = j0 + 1 < src ? 2 : 1;
            w[0] = (float)((1.0 - f) * gain);
            if (t->count[i] == 2)
                w[1] = (float)(f * gain);
        }
    }
    return 0;
fail:
    taps_free(t);
    return -1;
}

/* The horizontal pass over one row of RGB floats: the three channels of a
 * pixel as one SSE vector (the fourth lane reads the next pixel's red, or
 * the float of slack after the last row, and is dropped), so each tap is
 * one multiply-add instead of three scalar ones (measured 348 -> 225 us for
 * a 384x288 source). Same products summed in the same order as the scalar
 * code (no FMA contraction in C11 mode): the same results. */
static void resize_row_h(const struct taps *tx, const float *t, int side, float *o)
{
    for (int x = 0; x < side; x++) {
        const float *w = tx->w + (size_t)x * tx->maxn;
        const float *p = t + (size_t)tx->first[x] * 3;
        __m128 acc = _mm_setzero_ps();
        for (int k = 0; k < tx->count[x]; k++)
            acc = _mm_add_ps(acc, _mm_mul_ps(_mm_set1_ps(w[k]), _mm_loadu_ps(p + 3 * k)));
        if (x + 1 < side) {
            _mm_storeu_ps(o + 3 * x, acc); /* lane 3: the next pixel's, stored next */
        } else {
            float v[4];
            _mm_storeu_ps(v, acc);
            memcpy(o + 3 * x, v, 3 * sizeof(float));
        }
    }
}

/* Separable resize of packed RGB8 to side x side RGB float in [0,1]: for
 * each output row, the vertical pass sums its source rows into one row of
 * floats (contiguous, vectorised), then the horizontal pass reads that row.
 * One row of temporary instead of side rows: a megabyte of fresh pages a
 * call was a tenth of the server's CPU in page faults at ingest. */
static int resize_rgb(const struct image *img, int side, float *out)
{
    struct taps tx = {0}, ty = {0};
    float *t = NULL;
    int rc = -1, rowlen = img->width * 3;
    if (taps_make(img->width, side, 1.0f, &tx) || taps_make(img->height, side, 1.0f / 255.0f, &ty))
        goto done;
    t = malloc(sizeof(float) * ((size_t)rowlen + 1)); /* + 1: resize_row_h reads 4 */
    if (!t)
        goto done;
    for (int y = 0; y < side; y++) {
        const float *w = ty.w + (size_t)y * ty.maxn;
        for (int k = 0; k < ty.count[y]; k++) {
            const uint8_t *row = img->rgb + (size_t)(ty.first[y] + k) * rowlen;
            if (k == 0)
                kern_row_scale_u8(rowlen, w[k], row, t);
            else
                kern_row_axpy_u8(rowlen, w[k], row, t);
        }
        resize_row_h(&tx, t, side, out + (size_t)y * side * 3);
    }
    rc = 0;
done:
    free(t);
    taps_free(&tx);
    taps_free(&ty);
    return rc;
}

int extractor_embed_side(const struct extractor *ex, const struct image *img, int side, float *out)
{
    if (!img || !img->rgb || img->width <= 0 || img->height <= 0 || side < EXTRACT_MIN_SIDE ||
        side > EXTRACT_MAX_SIDE)
        return -1;
    struct side_net *sn = side_net_get(ex, side);
    if (!sn || run_net(sn, NULL, img, out, NULL) != 0)
        return -1;
    l2_normalise(out, EXTRACT_DIM);
    return 0;
}

int extractor_embed(const struct extractor *ex, const struct image *img, float *out)
{
    return extractor_embed_side(ex, img, EXTRACT_SIDE, out);
}

int extractor_feature_map(const struct extractor *ex, const struct image *img, int side, float *map,
                          int *grid)
{
    if (!img || !img->rgb || img->width <= 0 || img->height <= 0 || side < EXTRACT_MIN_SIDE ||
        side > EXTRACT_MAX_SIDE)
        return -1;
    struct side_net *sn = side_net_get(ex, side);
    if (!sn)
        return -1;
    const struct mnv2 *net = &sn->net;
    float *scratch = NULL;
    float gap[EXTRACT_DIM];
    int rc = -1;
    if (run_net(sn, NULL, img, gap, &scratch) != 0)
        goto done;
    /* The last activation is in one of mnv2_forward's three buffers: the one
     * whose mean over the cells is the pooled output. */
    const struct kern_conv *last = &net->layers[net->nlayers - 1].conv;
    int npix = last->out_h * last->out_w, best = -1;
    double best_err = 1e30;
    for (int b = 0; b < 3; b++) {
        const float *a = scratch + (size_t)b * net->max_act;
        double e = 0.0;
        for (int ch = 0; ch < EXTRACT_DIM; ch++) {
            double m = 0.0;
            for (int p = 0; p < npix; p++)
                m += a[(size_t)p * EXTRACT_DIM + ch];
            e += fabs(m / npix - gap[ch]);
        }
        if (e < best_err) {
            best_err = e;
            best = b;
        }
    }
    if (best < 0 || best_err > 1e-3 * EXTRACT_DIM)
        goto done;
    memcpy(map, scratch + (size_t)best * net->max_act, sizeof(float) * (size_t)npix * EXTRACT_DIM);
    *grid = last->out_h;
    rc = 0;
done:
    if (scratch)
        scratch_put(&sn->pool, scratch);
    return rc;
}
