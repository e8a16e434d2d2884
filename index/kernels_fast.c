/* kernels_fast.c: the fast convolutions. Dense convolutions become matrix
 * products (kern_gemm_bias, kernels_gemm.c; the 3x3 stem through im2col);
 * depthwise 3x3 is a plain loop shaped so GCC vectorises it, cloned per ISA
 * (target_clones); inverted-residual blocks run fused in row bands. */
#pragma GCC optimize("O3", "fp-contract=fast")

#include <immintrin.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "index/kernels.h"

#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

/* Stands in for the input at padded positions, so every output pixel of a
 * depthwise 3x3 runs the same 9-tap loop. */
#define DW_MAX_CH 4096
static const float dw_zeros[DW_MAX_CH];

CLONES void kern_row_scale_u8(int n, float w, const unsigned char *restrict src,
                              float *restrict dst)
{
    for (int i = 0; i < n; i++)
        dst[i] = w * (float)src[i];
}

CLONES void kern_row_axpy_u8(int n, float w, const unsigned char *restrict src, float *restrict dst)
{
    for (int i = 0; i < n; i++)
        dst[i] += w * (float)src[i];
}

size_t kern_conv_fast_scratch(const struct kern_conv *c)
{
    if (c->k == 1 && c->stride == 1)
        return 0;
    return (size_t)c->out_h * c->out_w * c->k * c->k * c->cin;
}

/* Rows of [k][k][cin] patches, zero where the window leaves the image, so
 * the convolution becomes one GEMM against the HWIO weights. A kernel row
 * wholly inside the image is k * cin contiguous floats: one plain loop
 * instead of k small memcpy calls (for the 3-channel stem, 9 calls of 12
 * bytes per pixel were most of the stem's time). */
static void im2col(const struct kern_conv *c, const float *in, int oy0, int oy1, float *col)
{
    size_t patch = (size_t)c->k * c->k * c->cin;
    int run = c->k * c->cin;
    for (int oy = oy0; oy < oy1; oy++) {
        for (int ox = 0; ox < c->out_w; ox++) {
            float *dst = col + ((size_t)(oy - oy0) * c->out_w + ox) * patch;
            int ix0 = ox * c->stride - c->pad_left;
            for (int ky = 0; ky < c->k; ky++) {
                int iy = oy * c->stride + ky - c->pad_top;
                if (iy >= 0 && iy < c->in_h && ix0 >= 0 && ix0 + c->k <= c->in_w) {
                    const float *src = in + ((size_t)iy * c->in_w + ix0) * c->cin;
                    float *d = dst + (size_t)ky * run;
                    for (int j = 0; j < run; j++)
                        d[j] = src[j];
                    continue;
                }
                for (int kx = 0; kx < c->k; kx++) {
                    int ix = ox * c->stride + kx - c->pad_left;
                    float *d = dst + ((size_t)ky * c->k + kx) * c->cin;
                    if (iy < 0 || iy >= c->in_h || ix < 0 || ix >= c->in_w)
                        memset(d, 0, sizeof(float) * c->cin);
                    else
                        memcpy(d, in + ((size_t)iy * c->in_w + ix) * c->cin,
                               sizeof(float) * c->cin);
                }
            }
        }
    }
}

/* Output pixels per GEMM call: the band's output is still in L2 when the
 * epilogue walks it. */
#define BAND 512

void kern_conv_fast(const struct kern_conv *c, const float *in, float *out, float *scratch)
{
    int npix = c->out_h * c->out_w;
    int kdim = c->k * c->k * c->cin;
    const float *a = in;
    if (!c->skip && kern_stem_eligible(c)) {
        kern_stem_rows(c, in, 0, c->out_h, out);
        return;
    }
    if (!(c->k == 1 && c->stride == 1)) {
        im2col(c, in, 0, c->out_h, scratch);
        a = scratch;
    }
    kern_gemm_bias(c, a, npix, kdim, c->skip, out);
}

/* One output pixel, all channels: bias + 9 taps, then the epilogue. Taps
 * are passed as pointers (padding points at zeros) so the channel loop has
 * no branches and vectorises. */
CLONES static void dw9_pixel(int ch, const float *const *p, const float *restrict w,
                             const float *restrict b, int relu6, const float *restrict skip,
                             float *restrict o)
{
    const float *p0 = p[0], *p1 = p[1], *p2 = p[2], *p3 = p[3], *p4 = p[4];
    const float *p5 = p[5], *p6 = p[6], *p7 = p[7], *p8 = p[8];
    const float *w0 = w, *w1 = w + ch, *w2 = w + 2 * ch, *w3 = w + 3 * ch, *w4 = w + 4 * ch;
    const float *w5 = w + 5 * ch, *w6 = w + 6 * ch, *w7 = w + 7 * ch, *w8 = w + 8 * ch;
    for (int i = 0; i < ch; i++) {
        float acc = b[i];
        acc += p0[i] * w0[i];
        acc += p1[i] * w1[i];
        acc += p2[i] * w2[i];
        acc += p3[i] * w3[i];
        acc += p4[i] * w4[i];
        acc += p5[i] * w5[i];
        acc += p6[i] * w6[i];
        acc += p7[i] * w7[i];
        acc += p8[i] * w8[i];
        if (relu6) {
            acc = acc < 0.0f ? 0.0f : acc;
            acc = acc > 6.0f ? 6.0f : acc;
        }
        o[i] = acc;
    }
    if (skip)
        for (int i = 0; i < ch; i++)
            o[i] += skip[i];
}

/* Interior pixels (all 9 taps inside) of a depthwise row on AVX-512: per
 * 16-channel slice, the 9 weight vectors and the bias stay in registers
 * while the row is swept, instead of being reloaded for every pixel
 * (measured ~2x on stride-1 layers; in the fused blocks, whose input rows sit
 * in L2, it also wins on stride 2). */
#define AVX512 __attribute__((target("avx512f,fma")))
typedef float v16 __attribute__((vector_size(64)));

AVX512 static v16 ld16(const float *p)
{
    v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* One output vector: bias + taps ky0..ky1-1 x kx0..kx1-1 (the others are
 * padding), the input pixel under kx = 0 at offset ix (-ch + c0 at the left
 * edge) of each row. Bounds are constants at every call site. */
AVX512 static inline __attribute__((always_inline)) v16
dw3_acc(const float *const rows[3], ptrdiff_t ix, const v16 w[9], v16 b, int ch, const int ky0,
        const int ky1, const int kx0, const int kx1)
{
    v16 acc = b;
    for (int ky = ky0; ky < ky1; ky++)
        for (int kx = kx0; kx < kx1; kx++)
            acc += ld16(rows[ky] + (ix + (ptrdiff_t)kx * ch)) * w[3 * ky + kx];
    return acc;
}

/* With `q`, the output is uint8 codes for an int8 1x1 (ReLU6 range,
 * kern_gemm_q8_codes) at `out` read as bytes, instead of floats. */
AVX512 static inline __attribute__((always_inline)) void dw3_store(const struct kern_conv *c,
                                                                   v16 acc, int ox, int c0,
                                                                   float *out, const float *skip,
                                                                   const int q)
{
    v16 zero = {0}, six = zero + 6.0f;
    size_t off = (size_t)ox * c->cout + c0;
    if (q) {
        acc = (v16)_mm512_min_ps(_mm512_max_ps((__m512)acc, (__m512)zero), (__m512)six);
        __m512i codes =
            _mm512_cvtps_epi32(_mm512_mul_ps((__m512)acc, _mm512_set1_ps(KERN_Q8_RELU6_INV)));
        _mm_storeu_si128((__m128i *)(void *)((unsigned char *)out + off),
                         _mm512_cvtusepi32_epi8(codes));
        return;
    }
    if (c->relu6)
        acc = (v16)_mm512_min_ps(_mm512_max_ps((__m512)acc, (__m512)zero), (__m512)six);
    if (skip)
        acc += ld16(skip + off);
    memcpy(out + off, &acc, sizeof acc);
}

/* Output pixels lo..hi of a row, plus the left edge pixel lo - 1 (its kx = 0
 * column is padding) if `left` and the right one hi + 1 (kx = 2 padding) if
 * `right`, with kernel rows ky0..ky1-1 present (the others are padding: the
 * first and last output rows). Per 16-channel slice, the weights stay in
 * registers while the row is swept. */
AVX512 static inline __attribute__((always_inline)) void
dw3_interior_rows(const struct kern_conv *c, const float *const rows[3], int lo, int hi, int left,
                  int right, float *out, const float *skip, const int ky0, const int ky1,
                  const int q)
{
    int ch = c->cout;
    for (int c0 = 0; c0 < ch; c0 += 16) {
        v16 w[9], b = ld16(c->b + c0);
        for (int t = 3 * ky0; t < 3 * ky1; t++)
            w[t] = ld16(c->w + (size_t)t * ch + c0);
        for (int ox = lo; ox <= hi; ox++) {
            ptrdiff_t ix = (ptrdiff_t)(ox * c->stride - c->pad_left) * ch + c0;
            dw3_store(c, dw3_acc(rows, ix, w, b, ch, ky0, ky1, 0, 3), ox, c0, out, skip, q);
        }
        if (left) {
            ptrdiff_t ix = (ptrdiff_t)((lo - 1) * c->stride - c->pad_left) * ch + c0;
            dw3_store(c, dw3_acc(rows, ix, w, b, ch, ky0, ky1, 1, 3), lo - 1, c0, out, skip, q);
        }
        if (right) {
            ptrdiff_t ix = (ptrdiff_t)((hi + 1) * c->stride - c->pad_left) * ch + c0;
            dw3_store(c, dw3_acc(rows, ix, w, b, ch, ky0, ky1, 0, 2), hi + 1, c0, out, skip, q);
        }
    }
}

/* Top and bottom output rows, and the left and right edge pixels, whose
 * padding sent them to the per-pixel fallback (most of the 7x7 and 14x14
 * layers' pixels), run here too. */
AVX512 static inline __attribute__((always_inline)) void
dw3_interior_q(const struct kern_conv *c, const float *const rows[3], int lo, int hi, int left,
               int right, float *out, const float *skip, const int q)
{
    int top = rows[0] != NULL, bottom = rows[2] != NULL;
    if (top && bottom)
        dw3_interior_rows(c, rows, lo, hi, left, right, out, skip, 0, 3, q);
    else if (bottom)
        dw3_interior_rows(c, rows, lo, hi, left, right, out, skip, 1, 3, q);
    else if (top)
        dw3_interior_rows(c, rows, lo, hi, left, right, out, skip, 0, 2, q);
    else
        dw3_interior_rows(c, rows, lo, hi, left, right, out, skip, 1, 2, q);
}

AVX512 static void dw3_interior(const struct kern_conv *c, const float *const rows[3], int lo,
                                int hi, int left, int right, float *out, const float *skip, int q)
{
    if (q)
        dw3_interior_q(c, rows, lo, hi, left, right, out, skip, 1);
    else
        dw3_interior_q(c, rows, lo, hi, left, right, out, skip, 0);
}

/* One output row of a depthwise 3x3. rows[ky] is the input row under kernel
 * row ky, or NULL where that row is padding; out and skip point at the
 * output (and residual) row. With `codes` (a ReLU6 layer without skip), the
 * row goes there as uint8 codes for kern_gemm_q8_codes instead. */
static void dw3_row(const struct kern_conv *c, const float *const rows[3], float *out,
                    const float *skip, unsigned char *codes)
{
    int ch = c->cout, lo = 0, hi = -1, left = 0, right = 0;
    if (!c->portable && rows[1] && ch % 16 == 0 && c->in_w - 3 + c->pad_left >= 0 &&
        __builtin_cpu_supports("avx512f")) {
        lo = (c->pad_left + c->stride - 1) / c->stride;
        hi = (c->in_w - 3 + c->pad_left) / c->stride;
        hi = hi < c->out_w - 1 ? hi : c->out_w - 1;
        if (lo <= hi) {
            int rx = (hi + 1) * c->stride - c->pad_left; /* right edge's kx = 0 column */
            left = lo == 1 && c->pad_left == 1 && c->in_w >= 2;
            right = hi + 1 == c->out_w - 1 && rx >= 0 && rx + 1 < c->in_w && rx + 2 >= c->in_w;
            dw3_interior(c, rows, lo, hi, left, right, codes ? (float *)(void *)codes : out, skip,
                         codes != NULL);
        }
    }
    for (int ox = 0; ox < c->out_w; ox++) {
        if (ox >= lo - left && ox <= hi + right)
            continue;
        const float *taps[9];
        for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++) {
                int ix = ox * c->stride + kx - c->pad_left;
                int inside = rows[ky] && ix >= 0 && ix < c->in_w;
                taps[ky * 3 + kx] = inside ? rows[ky] + (size_t)ix * ch : dw_zeros;
            }
        if (!codes) {
            dw9_pixel(ch, taps, c->w, c->b, c->relu6, skip ? skip + (size_t)ox * ch : NULL,
                      out + (size_t)ox * ch);
            continue;
        }
        float px[DW_MAX_CH];
        dw9_pixel(ch, taps, c->w, c->b, 1, NULL, px);
        for (int i = 0; i < ch; i++)
            codes[(size_t)ox * ch + i] = (unsigned char)lrintf(px[i] * KERN_Q8_RELU6_INV);
    }
}

/* The input rows under output row oy; row iy of the input is at
 * base + (iy - first) * row_floats. */
static void dw3_rows(const struct kern_conv *c, int oy, const float *base, int first,
                     const float *rows[3])
{
    size_t row_floats = (size_t)c->in_w * c->cin;
    for (int ky = 0; ky < 3; ky++) {
        int iy = oy * c->stride + ky - c->pad_top;
        rows[ky] = iy >= 0 && iy < c->in_h ? base + (size_t)(iy - first) * row_floats : NULL;
    }
}

void kern_dw_fast(const struct kern_conv *c, const float *in, float *out)
{
    if (c->k != 3 || c->cout > DW_MAX_CH) {
        kern_dw_ref(c, in, out);
        return;
    }
    size_t out_row = (size_t)c->out_w * c->cout;
    for (int oy = 0; oy < c->out_h; oy++) {
        const float *rows[3];
        dw3_rows(c, oy, in, 0, rows);
        dw3_row(c, rows, out + oy * out_row, c->skip ? c->skip + oy * out_row : NULL, NULL);
    }
}

/* Output pixels a band of the fused block aims for: enough rows for an
 * efficient project GEMM, few enough that the expanded rows fit in L2. */
#define BLOCK_BAND_PIXELS 256

static int block_band_rows(const struct kern_conv *d)
{
    int rows = BLOCK_BAND_PIXELS / d->out_w;
    return rows < 1 ? 1 : rows;
}

int kern_block_fusable(const struct kern_conv *e, const struct kern_conv *d,
                       const struct kern_conv *p)
{
    return d->k == 3 && d->cout <= DW_MAX_CH && p->k == 1 && p->stride == 1 && e->cout == d->cin &&
           d->cout == p->cin && e->out_h == d->in_h && e->out_w == d->in_w && d->out_h == p->in_h &&
           d->out_w == p->in_w;
}

/* Expanded rows one band may hold. */
static size_t block_erows(const struct kern_conv *d)
{
    return (size_t)(block_band_rows(d) - 1) * d->stride + d->k;
}

/* im2col floats for one band's expand rows (0 for a 1x1 expand). */
static size_t block_col(const struct kern_conv *e, const struct kern_conv *d)
{
    if (e->k == 1 && e->stride == 1)
        return 0;
    return block_erows(d) * e->out_w * e->k * e->k * e->cin;
}

size_t kern_block_fast_scratch(const struct kern_conv *e, const struct kern_conv *d,
                               const struct kern_conv *p)
{
    (void)p;
    return block_erows(d) * d->in_w * d->cin + (size_t)block_band_rows(d) * d->out_w * d->cout +
           block_col(e, d);
}

/* Output rows [oy0, oy1) of a convolution without a residual, `in` being
 * the whole input: 1x1 directly, others through im2col of just those rows. */
static void conv_rows(const struct kern_conv *c, const float *in, int oy0, int oy1, void *out,
                      float *col)
{
    int m = (oy1 - oy0) * c->out_w;
    if (c->out_f16 && c->q8) { /* fp16 output: the int8 1x1 or the stem */
        kern_gemm_q8(c, in + (size_t)oy0 * c->in_w * c->cin, m, NULL, out);
        return;
    }
    if (c->k == 1 && c->stride == 1) {
        kern_gemm_bias(c, in + (size_t)oy0 * c->in_w * c->cin, m, c->cin, NULL, out);
        return;
    }
    if (kern_stem_eligible(c)) {
        kern_stem_rows(c, in, oy0, oy1, out);
        return;
    }
    im2col(c, in, oy0, oy1, col);
    kern_gemm_bias(c, col, m, c->k * c->k * c->cin, NULL, out);
}

/* The input rows under output row oy of a depthwise 3x3 over fp16 rows. */
static void dw16_rows(const struct kern_conv *c, int oy, const unsigned short *base, int first,
                      const unsigned short *rows[3])
{
    size_t row = (size_t)c->in_w * c->cin;
    for (int ky = 0; ky < 3; ky++) {
        int iy = oy * c->stride + ky - c->pad_top;
        rows[ky] = iy >= 0 && iy < c->in_h ? base + (size_t)(iy - first) * row : NULL;
    }
}

void kern_block_fast(const struct kern_conv *e, const struct kern_conv *d,
                     const struct kern_conv *p, const float *in, float *out, float *scratch)
{
    int band = block_band_rows(d);
    int ch = d->cin;
    size_t e_row = (size_t)d->in_w * ch;
    float *ebuf = scratch;                            /* expanded rows [e_lo, e_hi) */
    float *dbuf = ebuf + block_erows(d) * e_row;      /* depthwise output of one band */
    float *col = dbuf + (size_t)band * d->out_w * ch; /* im2col of a k > 1 expand */
    /* An int8 project with ReLU6 inputs: the depthwise writes its codes
     * (into dbuf's space), skipping a float round trip and a quantisation
     * pass. With d->w16 the expand writes fp16 and the depthwise runs in
     * fp16 (kernels_dw16.c): half the bytes, twice the lanes. */
    unsigned char *codes = NULL;
    if (p->q8 && p->q8->nonneg && d->relu6 && !d->skip)
        codes = (unsigned char *)(void *)dbuf;
    struct kern_conv ef = *e;
    const unsigned short *wb = NULL;
    if (codes && d->w16 && d->k == 3 &&
        ((e->q8 && e->k == 1 && e->stride == 1) || kern_stem_eligible(e))) {
        ef.out_f16 = 1;
        wb = d->w16;
    }
    size_t esz = wb ? sizeof(unsigned short) : sizeof(float);
    char *ebytes = (char *)ebuf;
    int e_lo = 0, e_hi = 0;
    for (int o0 = 0; o0 < d->out_h; o0 += band) {
        int o1 = o0 + band < d->out_h ? o0 + band : d->out_h;
        int lo = o0 * d->stride - d->pad_top;
        int hi = (o1 - 1) * d->stride - d->pad_top + d->k;
        lo = lo < 0 ? 0 : lo;
        hi = hi > d->in_h ? d->in_h : hi;
        /* Keep the rows this band shares with the previous one. */
        if (e_hi > lo) {
            int from = lo > e_lo ? lo : e_lo;
            memmove(ebytes, ebytes + (size_t)(from - e_lo) * e_row * esz,
                    esz * (size_t)(e_hi - from) * e_row);
            e_lo = from;
        } else {
            e_lo = e_hi = lo;
        }
        if (hi > e_hi) {
            conv_rows(&ef, in, e_hi, hi, ebytes + (size_t)(e_hi - e_lo) * e_row * esz, col);
            e_hi = hi;
        }
        for (int oy = o0; oy < o1; oy++) {
            size_t row = (size_t)(oy - o0) * d->out_w * ch;
            if (wb) {
                const unsigned short *rows16[3];
                dw16_rows(d, oy, (const unsigned short *)(void *)ebuf, e_lo, rows16);
                kern_dw16_row(d, rows16, wb, codes + row);
                continue;
            }
            const float *rows[3];
            dw3_rows(d, oy, ebuf, e_lo, rows);
            dw3_row(d, rows, dbuf + row, NULL, codes ? codes + row : NULL);
        }
        size_t off = (size_t)o0 * p->out_w * p->cout;
        if (codes)
            kern_gemm_q8_codes(p, codes, (o1 - o0) * p->out_w, p->skip ? p->skip + off : NULL,
                               out + off);
        else
            kern_gemm_bias(p, dbuf, (o1 - o0) * p->out_w, p->cin, p->skip ? p->skip + off : NULL,
                           out + off);
    }
}
