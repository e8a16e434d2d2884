/* projection.c: fitting, storing and applying the compact-descriptor
 * projection (projection.h). The covariance and its eigen-decomposition run
 * in double (OpenBLAS dsyrk, LAPACK dsyevr) so the axes match numpy's eigh
 * in the offline study; applying it is one float matrix-vector product. */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "index/kernels.h"
#include "index/projection.h"

#define MAGIC "ISPROJ1"
#define MAGIC_LEN 8 /* with its NUL */
#define MAX_DIM 65536

/* LAPACK's symmetric eigensolver (Fortran ABI: trailing string lengths). */
extern void dsyevr_(const char *jobz, const char *range, const char *uplo, const int *n, double *a,
                    const int *lda, const double *vl, const double *vu, const int *il,
                    const int *iu, const double *abstol, int *m, double *w, double *z,
                    const int *ldz, int *isuppz, double *work, const int *lwork, int *iwork,
                    const int *liwork, int *info, size_t, size_t, size_t);

static void fail(char *errbuf, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

static struct projection *alloc_projection(int in_dim, int out_dim)
{
    struct projection *pr = calloc(1, sizeof *pr);
    if (!pr)
        return NULL;
    pr->in_dim = in_dim;
    pr->out_dim = out_dim;
    pr->mean = calloc((size_t)in_dim, sizeof *pr->mean);
    pr->p = calloc((size_t)in_dim * (size_t)out_dim, sizeof *pr->p);
    pr->scale = calloc((size_t)out_dim, sizeof *pr->scale);
    /* p transposed, then out_dim zeros (the GEMM's bias). */
    pr->pt = calloc((size_t)in_dim * (size_t)out_dim + (size_t)out_dim, sizeof *pr->pt);
    if (!pr->mean || !pr->p || !pr->scale || !pr->pt) {
        projection_free(pr);
        return NULL;
    }
    return pr;
}

void projection_free(struct projection *pr)
{
    if (!pr)
        return;
    free(pr->mean);
    free(pr->p);
    free(pr->scale);
    free(pr->pt);
    free(pr);
}

/* pt from p, once p is final. */
static void transpose(struct projection *pr)
{
    for (int k = 0; k < pr->out_dim; k++)
        for (int j = 0; j < pr->in_dim; j++)
            pr->pt[(size_t)j * (size_t)pr->out_dim + (size_t)k] =
                pr->p[(size_t)k * (size_t)pr->in_dim + (size_t)j];
}

/* Covariance (n - 1 in the denominator, as numpy's cov) of the centred rows,
 * upper triangle filled, in blocks so only `block` rows are ever doubled. */
static double *covariance(const float *x, size_t n, int d, const double *mean)
{
    const size_t block = 1024;
    double *c = calloc((size_t)d * (size_t)d, sizeof *c);
    double *b = malloc(block * (size_t)d * sizeof *b);
    if (!c || !b) {
        free(c);
        free(b);
        return NULL;
    }
    for (size_t r0 = 0; r0 < n; r0 += block) {
        size_t rows = n - r0 < block ? n - r0 : block;
        for (size_t i = 0; i < rows; i++)
            for (int j = 0; j < d; j++)
                b[i * (size_t)d + (size_t)j] =
                    (double)x[(r0 + i) * (size_t)d + (size_t)j] - mean[j];
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, (int)rows, 1.0, b, d, 1.0, c, d);
    }
    free(b);
    for (size_t k = 0; k < (size_t)d * (size_t)d; k++)
        c[k] /= (double)(n - 1);
    return c;
}

/* The top `k` eigenpairs of the symmetric d x d matrix `c` (row-major upper
 * triangle = Fortran lower), largest first: lam[k], axes[k][d]. */
static int top_eigen(double *c, int d, int k, double *lam, double *axes)
{
    int il = d - k + 1, iu = d, m = 0, info = 0, lwork = -1, liwork = -1, iw_query = 0;
    double vl = 0, vu = 0, abstol = 0, w_query = 0;
    double *w = malloc((size_t)d * sizeof *w);
    double *z = malloc((size_t)d * (size_t)k * sizeof *z);
    int *isuppz = malloc(2 * (size_t)k * sizeof *isuppz);
    int rc = -1;
    if (!w || !z || !isuppz)
        goto out;
    /* Row-major upper is column-major lower: "L" for LAPACK. */
    dsyevr_("V", "I", "L", &d, c, &d, &vl, &vu, &il, &iu, &abstol, &m, w, z, &d, isuppz, &w_query,
            &lwork, &iw_query, &liwork, &info, 1, 1, 1);
    if (info != 0)
        goto out;
    lwork = (int)w_query;
    liwork = iw_query;
    double *work = malloc((size_t)lwork * sizeof *work);
    int *iwork = malloc((size_t)liwork * sizeof *iwork);
    if (work && iwork)
        dsyevr_("V", "I", "L", &d, c, &d, &vl, &vu, &il, &iu, &abstol, &m, w, z, &d, isuppz, work,
                &lwork, iwork, &liwork, &info, 1, 1, 1);
    else
        info = -1;
    free(work);
    free(iwork);
    if (info != 0 || m != k)
        goto out;
    /* Ascending out of LAPACK; column j of z (column-major) is axis j. */
    for (int j = 0; j < k; j++) {
        int src = k - 1 - j;
        lam[j] = w[src];
        memcpy(axes + (size_t)j * (size_t)d, z + (size_t)src * (size_t)d, (size_t)d * sizeof *z);
    }
    rc = 0;
out:
    free(w);
    free(z);
    free(isuppz);
    return rc;
}

int projection_train(const float *x, size_t n, int in_dim, int out_dim, double power, double shrink,
                     struct projection **out, char *errbuf, size_t errlen)
{
    if (in_dim <= 0 || in_dim > MAX_DIM || out_dim <= 0 || out_dim > in_dim ||
        n <= (size_t)out_dim || power < 0 || shrink < 0) {
        fail(errbuf, errlen, "projection: %zu vectors cannot fit %d -> %d dims", n, in_dim,
             out_dim);
        return -1;
    }
    struct projection *pr = alloc_projection(in_dim, out_dim);
    double *mean = calloc((size_t)in_dim, sizeof *mean);
    double *lam = malloc((size_t)out_dim * sizeof *lam);
    double *axes = malloc((size_t)out_dim * (size_t)in_dim * sizeof *axes);
    double *c = NULL;
    int rc = -1;
    if (!pr || !mean || !lam || !axes) {
        fail(errbuf, errlen, "projection: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < in_dim; j++)
            mean[j] += x[i * (size_t)in_dim + (size_t)j];
    for (int j = 0; j < in_dim; j++) {
        mean[j] /= (double)n;
        pr->mean[j] = (float)mean[j];
    }
    if (!(c = covariance(x, n, in_dim, mean))) {
        fail(errbuf, errlen, "projection: out of memory");
        goto out;
    }
    if (top_eigen(c, in_dim, out_dim, lam, axes) != 0) {
        fail(errbuf, errlen, "projection: the eigen-decomposition failed");
        goto out;
    }
    double lam_mean = 0;
    for (int k = 0; k < out_dim; k++) {
        lam[k] = lam[k] > 1e-12 ? lam[k] : 1e-12;
        lam_mean += lam[k] / out_dim;
    }
    for (int k = 0; k < out_dim; k++) {
        double f = pow(lam[k] + shrink * lam_mean, -power / 2);
        for (int j = 0; j < in_dim; j++)
            pr->p[(size_t)k * (size_t)in_dim + (size_t)j] =
                (float)(axes[(size_t)k * (size_t)in_dim + (size_t)j] * f);
    }
    transpose(pr);
    pr->power = (float)power;
    pr->shrink = (float)shrink;
    pr->n_train = (uint32_t)(n > UINT32_MAX ? UINT32_MAX : n);
    /* int8 steps from the training vectors' own range; scale 1 until then. */
    for (int k = 0; k < out_dim; k++)
        pr->scale[k] = 1.0f;
    float *y = malloc((size_t)out_dim * sizeof *y);
    float *top = calloc((size_t)out_dim, sizeof *top);
    if (!y || !top) {
        free(y);
        free(top);
        fail(errbuf, errlen, "projection: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        projection_apply(pr, x + i * (size_t)in_dim, y);
        for (int k = 0; k < out_dim; k++)
            if (fabsf(y[k]) > top[k])
                top[k] = fabsf(y[k]);
    }
    for (int k = 0; k < out_dim; k++)
        pr->scale[k] = (top[k] > 1e-6f ? top[k] : 1e-6f) / 127.0f;
    free(y);
    free(top);
    *out = pr;
    pr = NULL;
    rc = 0;
out:
    projection_free(pr);
    free(mean);
    free(lam);
    free(axes);
    free(c);
    return rc;
}

void projection_apply(const struct projection *pr, const float *x, float *y)
{
    int d = pr->in_dim;
    float *centred = malloc((size_t)d * sizeof *centred);
    if (!centred) { /* a tiny allocation; without it, fall back to the slow loop */
        for (int k = 0; k < pr->out_dim; k++) {
            double s = 0;
            for (int j = 0; j < d; j++)
                s += (double)pr->p[(size_t)k * (size_t)d + (size_t)j] * (x[j] - pr->mean[j]);
            y[k] = (float)s;
        }
    } else {
        for (int j = 0; j < d; j++)
            centred[j] = x[j] - pr->mean[j];
        cblas_sgemv(CblasRowMajor, CblasNoTrans, pr->out_dim, d, 1.0f, pr->p, d, centred, 1, 0.0f,
                    y, 1);
        free(centred);
    }
    double norm = 0;
    for (int k = 0; k < pr->out_dim; k++)
        norm += (double)y[k] * y[k];
    float inv = norm > 0 ? (float)(1.0 / sqrt(norm)) : 0.0f;
    for (int k = 0; k < pr->out_dim; k++)
        y[k] *= inv;
}

/* Rows of x centred into a scratch block, one GEMM (kern_gemm_bias: on
 * AVX-512 its tiles add up each output in the same order whatever the row
 * count, so a vector projects to the same bits alone or in a batch), each
 * row L2-normalised as in projection_apply. */
int projection_apply_rows(const struct projection *pr, size_t n, const float *x, float *y)
{
    size_t d = (size_t)pr->in_dim;
    float *c = malloc((n ? n : 1) * d * sizeof *c);
    if (!c)
        return -1;
    for (size_t i = 0; i < n * d; i++)
        c[i] = x[i] - pr->mean[i % d];
    struct kern_conv kc = {
        .cin = pr->in_dim, .cout = pr->out_dim, .w = pr->pt, .b = pr->pt + d * (size_t)pr->out_dim};
    kern_gemm_bias(&kc, c, (int)n, pr->in_dim, NULL, y);
    free(c);
    for (size_t i = 0; i < n; i++) {
        float *r = y + i * (size_t)pr->out_dim;
        double norm = 0;
        for (int k = 0; k < pr->out_dim; k++)
            norm += (double)r[k] * r[k];
        float inv = norm > 0 ? (float)(1.0 / sqrt(norm)) : 0.0f;
        for (int k = 0; k < pr->out_dim; k++)
            r[k] *= inv;
    }
    return 0;
}

void projection_encode(const struct projection *pr, const float *y, int8_t *q)
{
    for (int k = 0; k < pr->out_dim; k++) {
        float v = roundf(y[k] / pr->scale[k]);
        q[k] = (int8_t)(v != v ? 0 : v > 127 ? 127 : v < -127 ? -127 : v); /* NaN: 0 */
    }
}

void projection_decode(const struct projection *pr, const int8_t *q, float *y)
{
    for (int k = 0; k < pr->out_dim; k++)
        y[k] = q[k] * pr->scale[k];
}

/* --- the file ------------------------------------------------------------- */

struct header {
    char magic[MAGIC_LEN];
    uint32_t in_dim, out_dim, n_train;
    float power, shrink;
};

static size_t payload_floats(int in_dim, int out_dim)
{
    return (size_t)in_dim + (size_t)in_dim * (size_t)out_dim + (size_t)out_dim;
}

/* Header and arrays in one buffer: what the digest covers. */
static unsigned char *serialise(const struct projection *pr, size_t *len)
{
    struct header h = {
        MAGIC, (uint32_t)pr->in_dim, (uint32_t)pr->out_dim, pr->n_train, pr->power, pr->shrink};
    size_t m = (size_t)pr->in_dim, pn = m * (size_t)pr->out_dim;
    *len = sizeof h + payload_floats(pr->in_dim, pr->out_dim) * sizeof(float);
    unsigned char *b = malloc(*len), *at = b;
    if (!b)
        return NULL;
    memcpy(at, &h, sizeof h), at += sizeof h;
    memcpy(at, pr->mean, m * sizeof(float)), at += m * sizeof(float);
    memcpy(at, pr->p, pn * sizeof(float)), at += pn * sizeof(float);
    memcpy(at, pr->scale, (size_t)pr->out_dim * sizeof(float));
    return b;
}

static int sha256(const unsigned char *b, size_t len, unsigned char md[32])
{
    unsigned int n = 0;
    return EVP_Digest(b, len, md, &n, EVP_sha256(), NULL) == 1 && n == 32 ? 0 : -1;
}

static void hex(const unsigned char md[32], char out[65])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

int projection_to_bytes(struct projection *pr, unsigned char **out, size_t *out_len)
{
    size_t len = 0;
    unsigned char md[32];
    unsigned char *b = serialise(pr, &len);
    unsigned char *g = b ? realloc(b, len + 32) : NULL;
    if (!g || sha256(g, len, md) != 0) {
        free(g ? g : b);
        return -1;
    }
    memcpy(g + len, md, 32);
    hex(md, pr->digest);
    *out = g;
    *out_len = len + 32;
    return 0;
}

int projection_save(struct projection *pr, const char *path, char *errbuf, size_t errlen)
{
    size_t len = 0;
    unsigned char *b = NULL;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (projection_to_bytes(pr, &b, &len) != 0) {
        fail(errbuf, errlen, "projection: out of memory");
        return -1;
    }
    FILE *f = fopen(tmp, "wbe");
    int ok = f && fwrite(b, 1, len, f) == len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int saved_errno = errno;
    if (f && fclose(f) != 0 && ok)
        ok = 0, saved_errno = errno;
    free(b);
    if (!ok || rename(tmp, path) != 0) {
        if (ok)
            saved_errno = errno;
        unlink(tmp);
        fail(errbuf, errlen, "projection: cannot write %s: %s", path, strerror(saved_errno));
        return -1;
    }
    return 0;
}

int projection_from_bytes(const unsigned char *b, size_t len, const char *name,
                          struct projection **out, char *errbuf, size_t errlen)
{
    struct header h;
    struct projection *pr = NULL;
    unsigned char *mine = NULL, md[32];
    size_t mlen = 0;
    int rc = -1;
    if (len < sizeof h + 32 || (memcpy(&h, b, sizeof h), memcmp(h.magic, MAGIC, MAGIC_LEN) != 0)) {
        fail(errbuf, errlen, "projection: %s is not a projection", name);
        goto out;
    }
    if (h.in_dim == 0 || h.in_dim > MAX_DIM || h.out_dim == 0 || h.out_dim > h.in_dim) {
        fail(errbuf, errlen, "projection: %s has bad sizes %u -> %u", name, h.in_dim, h.out_dim);
        goto out;
    }
    size_t m = h.in_dim, pn = m * h.out_dim;
    if (len != sizeof h + payload_floats((int)h.in_dim, (int)h.out_dim) * sizeof(float) + 32) {
        fail(errbuf, errlen, "projection: %s is truncated or too long", name);
        goto out;
    }
    if (!(pr = alloc_projection((int)h.in_dim, (int)h.out_dim))) {
        fail(errbuf, errlen, "projection: out of memory");
        goto out;
    }
    const unsigned char *at = b + sizeof h;
    memcpy(pr->mean, at, m * sizeof(float)), at += m * sizeof(float);
    memcpy(pr->p, at, pn * sizeof(float)), at += pn * sizeof(float);
    memcpy(pr->scale, at, h.out_dim * sizeof(float)), at += h.out_dim * sizeof(float);
    transpose(pr);
    pr->n_train = h.n_train;
    pr->power = h.power;
    pr->shrink = h.shrink;
    if (!(mine = serialise(pr, &mlen)) || sha256(mine, mlen, md) != 0) {
        fail(errbuf, errlen, "projection: out of memory");
        goto out;
    }
    if (memcmp(md, at, 32) != 0) {
        fail(errbuf, errlen, "projection: %s fails its checksum (corrupt)", name);
        goto out;
    }
    for (int k = 0; k < pr->out_dim; k++)
        if (!(pr->scale[k] > 0) || !isfinite(pr->scale[k])) {
            fail(errbuf, errlen, "projection: %s has a bad int8 scale", name);
            goto out;
        }
    /* A checksum proves the bytes, not the numbers: a NaN would spread into
     * every vector. */
    for (size_t j = 0; j < m + pn; j++)
        if (!isfinite(j < m ? pr->mean[j] : pr->p[j - m])) {
            fail(errbuf, errlen, "projection: %s holds a value that is not finite", name);
            goto out;
        }
    hex(md, pr->digest);
    *out = pr;
    pr = NULL;
    rc = 0;
out:
    free(mine);
    projection_free(pr);
    return rc;
}

int projection_load(const char *path, struct projection **out, char *errbuf, size_t errlen)
{
    FILE *f = fopen(path, "rbe");
    if (!f) {
        fail(errbuf, errlen, "projection: cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    /* Bounded: the largest valid file is MAX_DIM x MAX_DIM floats and change. */
    size_t cap = sizeof(struct header) + payload_floats(MAX_DIM, MAX_DIM) * sizeof(float) + 33;
    unsigned char *b = malloc(cap);
    size_t len = b ? fread(b, 1, cap, f) : 0;
    int rc = -1;
    if (!b)
        fail(errbuf, errlen, "projection: out of memory");
    else if (ferror(f))
        fail(errbuf, errlen, "projection: cannot read %s: %s", path, strerror(errno));
    else
        rc = projection_from_bytes(b, len, path, out, errbuf, errlen);
    fclose(f);
    free(b);
    return rc;
}
