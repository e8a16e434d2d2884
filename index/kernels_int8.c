/* kernels_int8.c: 1x1 convolutions in int8 with AVX-512 VNNI (vpdpbusd: 64
 * u8 x s8 multiply-adds per instruction, four times an fp32 FMA's 16), for
 * the expand/project layers that hold most of the network's multiply-adds.
 *
 * Weights: requantised per tensor to w = scale * (q - 128) + off, q in
 * [0, 255]. The weight file's floats were dequantised from exactly such a
 * grid (TF.js uint8 with a per-tensor {min, scale}), so for this model the
 * int8 weights are the original ones (to float rounding: within 1.6e-5 of a
 * step); the constant `off` costs one per-row term in the epilogue instead of
 * a rounding error on every weight.
 *
 * Activations: each input row (one pixel's channels) is quantised to uint8
 * with its own scale and zero point as the GEMM reads it (dynamic, per
 * pixel: no calibration data, and the precision follows each pixel's range).
 * Accumulation in int32, then a float epilogue, so every tensor between
 * layers stays float and the depthwise, stem and pooling code is shared with
 * the float path:
 *
 *   out[p][c] = sa_p * scale * (acc[p][c] - za_p * bsum[c])
 *             + sa_p * off * (rowsum_p - za_p * K) + bias[c]
 *
 * with acc = sum_k qa[p][k] * (q[k][c] - 128), x = sa_p * (qa - za_p).
 *
 * Exception: a project whose inputs are ReLU6 outputs codes them on the
 * fixed range [0, 6] (sa = 6 / 255, za = 0), so in a fused block the
 * depthwise writes those codes itself (kern_gemm_q8_codes) and the floats
 * between the two never exist. */
#pragma GCC optimize("O3")

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "index/kernels.h"

#define Q8 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,fma")))
#define INLINE static inline __attribute__((always_inline))

#define PANEL_V 4 /* 16-channel vectors per weight panel at most: 4 zmm per row */
#define TILE_M 6  /* rows per tile: 6 x 4 accumulators + 4 weight vectors */
/* Rows per tile when a panel is only 1-2 vectors wide (24-32 channel
 * projects at 112x112 and 56x56): 12 x 2 accumulators, so each weight load
 * and the loop overhead serve twice the rows. */
#define TILE_M_NARROW 12
#define CHUNK 192        /* rows quantised per pass at most */
#define CODE_BYTES 49152 /* their codes, on the stack: stay in L1/L2 */
#define MAX_K (CODE_BYTES / TILE_M_NARROW)

/* The cpad / 16 output vectors split into panels of at most PANEL_V, as
 * evenly as possible: 9 vectors go 3 + 3 + 3, not 4 + 4 + 1, whose 1-vector
 * tiles load as many bytes as they multiply. Panel p is channels
 * [*co, *co + *width). */
static int panel_count(int cpad)
{
    return (cpad / 16 + PANEL_V - 1) / PANEL_V;
}

static void panel_at(int cpad, int p, int *co, int *width)
{
    int nvec = cpad / 16, np = panel_count(cpad);
    int v0 = p * nvec / np, v1 = (p + 1) * nvec / np;
    *co = 16 * v0;
    *width = 16 * (v1 - v0);
}

int kern_q8_supported(void)
{
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
}

/* Below 24 input channels the per-row quantisation and the int32 -> float
 * epilogue cost as much as the fp32 FMAs they replace, and every int8 layer
 * adds rounding error. 24 -> 144 (the 112x112 expand, the float path's
 * largest 1x1 layer) pays since quantisation reduces 16 rows at a time: in
 * the network 0.73 -> 0.53 ms, cosine to float on the golden inputs
 * 0.99980-0.99989 -> 0.99980-0.99984 (measured, 32 -> 192: 1.27x; 48 -> 288:
 * 1.6x). */
#define MIN_K 24

int kern_q8_eligible(const struct kern_conv *c)
{
    return c->k == 1 && c->stride == 1 && c->cin % 4 == 0 && c->cin >= MIN_K && c->cin <= MAX_K &&
           c->cout > 0;
}

void kern_q8_free(struct kern_q8 *q)
{
    free(q->mem);
    memset(q, 0, sizeof *q);
}

int kern_q8_pack(const struct kern_conv *c, struct kern_q8 *q)
{
    memset(q, 0, sizeof *q);
    int k = c->cin, cout = c->cout, cpad = (cout + 15) / 16 * 16;
    size_t n = (size_t)k * cout;
    float lo = c->w[0], hi = c->w[0];
    for (size_t i = 1; i < n; i++) {
        lo = c->w[i] < lo ? c->w[i] : lo;
        hi = c->w[i] > hi ? c->w[i] : hi;
    }
    double scale = hi > lo ? ((double)hi - lo) / 255.0 : 1.0;
    size_t bsum_bytes = ((size_t)cpad * sizeof(float) + 63) / 64 * 64;
    size_t w_bytes = ((size_t)k * cpad + 63) / 64 * 64;
    unsigned char *mem = aligned_alloc(64, bsum_bytes + w_bytes);
    if (!mem)
        return -1;
    memset(mem, 0, bsum_bytes + w_bytes);
    float *bsum = (float *)(void *)mem;
    signed char *w = (signed char *)(mem + bsum_bytes);
    for (int pi = 0; pi < panel_count(cpad); pi++) {
        int co, width;
        panel_at(cpad, pi, &co, &width);
        signed char *panel = w + (size_t)co * k;
        for (int kk = 0; kk < k; kk++)
            for (int ch = 0; ch < width && co + ch < cout; ch++) {
                double v = ((double)c->w[(size_t)kk * cout + co + ch] - lo) / scale;
                long qv = lrint(v);
                qv = qv < 0 ? 0 : qv > 255 ? 255 : qv;
                panel[((size_t)(kk / 4) * width + ch) * 4 + kk % 4] = (signed char)(qv - 128);
                bsum[co + ch] += (float)(qv - 128);
            }
    }
    q->k = k;
    q->cout = cout;
    q->cpad = cpad;
    q->scale = (float)scale;
    q->off = (float)(lo + 128.0 * scale);
    q->bsum = bsum;
    q->w = w;
    q->mem = mem;
    return 0;
}

/* Per-row epilogue constants: out = alpha * acc + gamma * bsum + beta + bias. */
struct rows_q {
    const unsigned char *a; /* [m][k] codes */
    const float *alpha, *gamma, *beta;
};

/* The per-row reductions run 16 rows at a time: reducing each row's vector
 * on its own is a chain of dependent shuffles per row, which rows of 32-48
 * channels have too little other work to hide. A transposing tree reduces
 * 16 vectors to one vector of 16 row results in 15 independent steps, and
 * the scale, zero point and epilogue constants are then computed 16 rows at
 * a time (measured on 192 rows: 22 -> 15.7 ns a row at k = 48, 51 -> 43 at
 * k = 192; identical codes and constants). */
enum { RED_MAX, RED_MIN, RED_ADD };

Q8 INLINE __m512 red_op(const int kind, __m512 a, __m512 b)
{
    return kind == RED_MAX   ? _mm512_max_ps(a, b)
           : kind == RED_MIN ? _mm512_min_ps(a, b)
                             : _mm512_add_ps(a, b);
}

/* One level of the tree: folds each of a's and b's (level 0: 256-bit
 * halves, 1: 128-bit quarters, 2: pairs, 3: single lanes) onto its
 * neighbour, packing a's partials beside b's. */
Q8 INLINE __m512 red_pair(const int kind, const int level, __m512 a, __m512 b)
{
    switch (level) {
    case 0:
        return red_op(kind, _mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xee));
    case 1:
        return red_op(kind, _mm512_shuffle_f32x4(a, b, 0x88), _mm512_shuffle_f32x4(a, b, 0xdd));
    case 2:
        return red_op(kind, _mm512_shuffle_ps(a, b, 0x44), _mm512_shuffle_ps(a, b, 0xee));
    default:
        return red_op(kind, _mm512_shuffle_ps(a, b, 0x88), _mm512_shuffle_ps(a, b, 0xdd));
    }
}

/* Lane j of the result reduces row j, given row r's vector at v[red_slot(r)]
 * (the tree leaves the rows in 4 x 4 transposed order). v is clobbered. */
static int red_slot(int r)
{
    return (r % 4) * 4 + r / 4;
}

Q8 INLINE __m512 red16(const int kind, __m512 *v)
{
    for (int level = 0, n = 16; level < 4; level++, n /= 2)
        for (int i = 0; i < n / 2; i++)
            v[i] = red_pair(kind, level, v[2 * i], v[2 * i + 1]);
    return v[0];
}

/* Per-row range [min(x,0), max(x,0)] of up to 16 rows of k floats (rows
 * past m count as zeros). */
Q8 static void row_range(const float *a, int k, int m, __m512 *lo, __m512 *hi)
{
    __m512 mn[16], mx[16];
    int tail = k % 16;
    __mmask16 tmask = (__mmask16)((1u << tail) - 1);
    for (int r = 0; r < 16; r++) {
        __m512 vmn = _mm512_setzero_ps(), vmx = vmn;
        const float *x = a + (size_t)r * k;
        for (int i = 0; r < m && i < k; i += 16) {
            __m512 v = i + 16 <= k ? _mm512_loadu_ps(x + i) : _mm512_maskz_loadu_ps(tmask, x + i);
            vmn = _mm512_min_ps(vmn, v);
            vmx = _mm512_max_ps(vmx, v);
        }
        mn[red_slot(r)] = vmn;
        mx[red_slot(r)] = vmx;
    }
    *hi = red16(RED_MAX, mx);
    *lo = red16(RED_MIN, mn);
}

/* Codes of one row of k floats: round(x * inv + z). Returns the lane sums
 * of the codes (as floats: exact, k * 255 < 2^24). */
Q8 static __m512 quant_row(const float *x, int k, float inv, float z, unsigned char *o)
{
    int tail = k % 16, i = 0;
    __mmask16 tmask = (__mmask16)((1u << tail) - 1);
    __m512 vi = _mm512_set1_ps(inv), vz = _mm512_set1_ps(z);
    __m512i s = _mm512_setzero_si512();
    /* x * inv + z lies in [-0.5, 255.5] by construction and rounds into
     * [0, 255] (vpmovusdb saturates the one tie that could reach 256). */
    for (; i + 16 <= k; i += 16) {
        __m512i c = _mm512_cvtps_epi32(_mm512_fmadd_ps(_mm512_loadu_ps(x + i), vi, vz));
        s = _mm512_add_epi32(s, c);
        _mm_storeu_si128((__m128i *)(void *)(o + i), _mm512_cvtusepi32_epi8(c));
    }
    if (tail) {
        __m512i c =
            _mm512_cvtps_epi32(_mm512_fmadd_ps(_mm512_maskz_loadu_ps(tmask, x + i), vi, vz));
        s = _mm512_mask_add_epi32(s, tmask, s, c);
        _mm512_mask_cvtusepi32_storeu_epi8(o + i, tmask, c);
    }
    return _mm512_cvtepi32_ps(s);
}

/* Per-row quantisation of m rows of k floats to uint8: range [min(x,0),
 * max(x,0)] over 255 steps, zero point rounded to an integer (exact zero, so
 * ReLU outputs' zeros cost nothing); `nonneg` rows (ReLU6 outputs) use the
 * fixed range [0, 6] (KERN_Q8_RELU6_INV codes per unit), so no range search,
 * and a depthwise layer can write the codes itself (kern_gemm_q8_codes).
 * Measured against per-row ranges: golden cosine to float 0.99980-0.99984 ->
 * 0.99958-0.99976. Writes the codes and the row's epilogue constants for weights
 * w = scale * (q - 128) + off. The `off` term takes the sum of the codes,
 * not of the floats: `off` is the grid's middle, not the weights' mean, and
 * the exact float sum leaves each row's rounding errors times (w - off)
 * (measured: cosine to float 0.9989 instead of 0.9998). */
Q8 static void quant_rows(const struct kern_q8 *q, const float *a, int m, unsigned char *qa,
                          float *alpha, float *gamma, float *beta)
{
    int k = q->k;
    for (int r0 = 0; r0 < m; r0 += 16) {
        int n = m - r0 < 16 ? m - r0 : 16;
        __m512 lo = _mm512_setzero_ps(), hi = _mm512_set1_ps(255.0f / KERN_Q8_RELU6_INV), sums[16];
        if (!q->nonneg)
            row_range(a + (size_t)r0 * k, k, n, &lo, &hi);
        __m512 range = _mm512_sub_ps(hi, lo);
        __mmask16 live = _mm512_cmp_ps_mask(range, _mm512_set1_ps(1e-30f), _CMP_GT_OQ);
        __m512 inv = _mm512_maskz_div_ps(live, _mm512_set1_ps(255.0f), range);
        /* Nearest, as the codes round: z is exact, so zeros code exactly. */
        __m512 z = _mm512_cvtepi32_ps(_mm512_cvtps_epi32(_mm512_mul_ps(lo, -inv)));
        float vinv[16], vz[16];
        _mm512_storeu_ps(vinv, inv);
        _mm512_storeu_ps(vz, z);
        for (int r = 0; r < 16; r++)
            sums[red_slot(r)] = r < n ? quant_row(a + (size_t)(r0 + r) * k, k, vinv[r], vz[r],
                                                  qa + (size_t)(r0 + r) * k)
                                      : _mm512_setzero_ps();
        __m512 sum = red16(RED_ADD, sums);
        __m512 sa = _mm512_maskz_div_ps(live, range, _mm512_set1_ps(255.0f));
        __m512 al = _mm512_mul_ps(sa, _mm512_set1_ps(q->scale));
        __m512 be = _mm512_mul_ps(_mm512_mul_ps(sa, _mm512_set1_ps(q->off)),
                                  _mm512_fnmadd_ps(z, _mm512_set1_ps((float)k), sum));
        __mmask16 keep = (__mmask16)((1u << n) - 1);
        _mm512_mask_storeu_ps(alpha + r0, keep, al);
        _mm512_mask_storeu_ps(gamma + r0, keep, _mm512_mul_ps(-al, z));
        _mm512_mask_storeu_ps(beta + r0, keep, be);
    }
}

/* acc += u8 x s8 dot products of each 4-byte group (vpdpbusd). Inline asm:
 * GCC 12 compiles the intrinsic with a copy of the accumulator per call,
 * which spilled the tile's accumulators to the stack (measured ~2x slower). */
Q8 INLINE __m512i dpbusd(__m512i acc, __m512i u8, __m512i s8)
{
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u8), "vm"(s8));
    return acc;
}

/* out = alpha * acc + gamma * bsum + beta + bias, ReLU6, + skip, for a
 * tile. Everything it reads is read before its first store: the stores go
 * through may-alias intrinsics, after each of which the compiler would
 * otherwise reload every pointer and constant behind each store (measured
 * on 192 rows, whole GEMM: 24 -> 144 56 -> 36 ns a row, 32 -> 192 71 -> 45,
 * 48 -> 24 29 -> 21; same results). */
Q8 INLINE void epilogue(const int mr, const int nv, const struct kern_conv *c,
                        const struct rows_q *rq, __m512i acc[][4], int co, const float *skip,
                        void *out)
{
    const int relu6 = c->relu6, cout = c->q8->cout, f16 = c->out_f16;
    float al[TILE_M_NARROW], ga[TILE_M_NARROW], be[TILE_M_NARROW];
    __m512 bias[4], bs[4];
    __mmask16 msk[4];
    for (int i = 0; i < mr; i++) {
        al[i] = rq->alpha[i];
        ga[i] = rq->gamma[i];
        be[i] = rq->beta[i];
    }
    for (int j = 0; j < nv; j++) {
        int ch = co + 16 * j, valid = cout - ch;
        msk[j] = valid >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << valid) - 1);
        bias[j] = _mm512_maskz_loadu_ps(msk[j], c->b + ch);
        bs[j] = _mm512_loadu_ps(c->q8->bsum + ch);
    }
    __m512 zero = _mm512_setzero_ps(), six = _mm512_set1_ps(6.0f);
    for (int i = 0; i < mr; i++) {
        __m512 a = _mm512_set1_ps(al[i]), g = _mm512_set1_ps(ga[i]), b = _mm512_set1_ps(be[i]);
        for (int j = 0; j < nv; j++) {
            __m512 base = _mm512_fmadd_ps(g, bs[j], _mm512_add_ps(bias[j], b));
            __m512 v = _mm512_fmadd_ps(a, _mm512_cvtepi32_ps(acc[i][j]), base);
            if (relu6)
                v = _mm512_min_ps(_mm512_max_ps(v, zero), six);
            size_t off = (size_t)i * cout + co + 16 * j;
            if (skip)
                v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(msk[j], skip + off));
            if (f16)
                _mm256_mask_storeu_epi16((unsigned short *)out + off, msk[j],
                                         _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
            else
                _mm512_mask_storeu_ps((float *)out + off, msk[j], v);
        }
    }
}

/* mr x nv tile: mr rows, nv 16-channel vectors of one panel. mr and nv are
 * constants at every call site, so the loops unroll and the accumulators
 * stay in registers. */
Q8 INLINE void tile(const int mr, const int nv, const struct kern_conv *c, const struct rows_q *rq,
                    const signed char *panel, int width, int co, const float *skip, void *out)
{
    const struct kern_q8 *q = c->q8;
    const int k = q->k;
    __m512i acc[TILE_M_NARROW][4], wv[4];
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nv; j++)
            acc[i][j] = _mm512_setzero_si512();
    for (int k4 = 0; k4 < k / 4; k4++) {
        const signed char *wp = panel + (size_t)k4 * width * 4;
        for (int j = 0; j < nv; j++)
            wv[j] = _mm512_loadu_si512(wp + 64 * j);
        for (int i = 0; i < mr; i++) {
            int32_t av;
            memcpy(&av, rq->a + (size_t)i * k + 4 * k4, sizeof av);
            __m512i b = _mm512_set1_epi32(av);
            for (int j = 0; j < nv; j++)
                acc[i][j] = dpbusd(acc[i][j], b, wv[j]);
        }
    }
    epilogue(mr, nv, c, rq, acc, co, skip, out);
}

#define TILE_CASE(m, v)                                                                            \
    case (m)*8 + (v):                                                                              \
        tile(m, v, c, rq, panel, width, co, skip, out);                                            \
        break;
#define TILE_ROW(m) TILE_CASE(m, 1) TILE_CASE(m, 2) TILE_CASE(m, 3) TILE_CASE(m, 4)
#define TILE_ROW_NARROW(m) TILE_CASE(m, 1) TILE_CASE(m, 2)

Q8 static void tile_dispatch(int mr, int nv, const struct kern_conv *c, const struct rows_q *rq,
                             const signed char *panel, int width, int co, const float *skip,
                             void *out)
{
    switch (mr * 8 + nv) {
        TILE_ROW(1)
        TILE_ROW(2)
        TILE_ROW(3)
        TILE_ROW(4)
        TILE_ROW(5)
        TILE_ROW(6)
        TILE_ROW_NARROW(7)
        TILE_ROW_NARROW(8)
        TILE_ROW_NARROW(9)
        TILE_ROW_NARROW(10)
        TILE_ROW_NARROW(11)
        TILE_ROW_NARROW(12)
    default:
        break;
    }
}

/* Row `row` of the output: floats, or fp16 if c->out_f16. */
static void *out_row(const struct kern_conv *c, void *out, int row)
{
    size_t esz = c->out_f16 ? sizeof(unsigned short) : sizeof(float);
    return (char *)out + (size_t)row * c->cout * esz;
}

/* The tiles of `rows` rows of codes against every panel: a panel (k x 64
 * bytes) stays in L1/L2 while the rows' tiles stream over it. */
Q8 static void gemm_rows(const struct kern_conv *c, const unsigned char *codes, int rows,
                         const float *alpha, const float *gamma, const float *beta,
                         const float *skip, void *out)
{
    const struct kern_q8 *q = c->q8;
    int k = q->k;
    for (int pi = 0; pi < panel_count(q->cpad); pi++) {
        int co, width;
        panel_at(q->cpad, pi, &co, &width);
        const signed char *panel = q->w + (size_t)co * k;
        int mt = width <= 32 ? TILE_M_NARROW : TILE_M;
        for (int p = 0; p < rows; p += mt) {
            int mr = rows - p < mt ? rows - p : mt;
            struct rows_q rq = {codes + (size_t)p * k, alpha + p, gamma + p, beta + p};
            size_t off = (size_t)p * q->cout;
            tile_dispatch(mr, width / 16, c, &rq, panel, width, co, skip ? skip + off : NULL,
                          out_row(c, out, p));
        }
    }
}

/* Rows in chunks, each quantised once (the codes stay in L1/L2), then
 * multiplied. */
Q8 void kern_gemm_q8(const struct kern_conv *c, const float *a, int m, const float *skip, void *out)
{
    const struct kern_q8 *q = c->q8;
    int k = q->k;
    unsigned char codes[CODE_BYTES] __attribute__((aligned(64)));
    float alpha[CHUNK], gamma[CHUNK], beta[CHUNK];
    int chunk = CODE_BYTES / k / TILE_M_NARROW * TILE_M_NARROW; /* >= 12: k <= MAX_K */
    chunk = chunk < CHUNK ? chunk : CHUNK;
    for (int p0 = 0; p0 < m; p0 += chunk) {
        int rows = m - p0 < chunk ? m - p0 : chunk;
        size_t off = (size_t)p0 * q->cout;
        quant_rows(q, a + (size_t)p0 * k, rows, codes, alpha, gamma, beta);
        gemm_rows(c, codes, rows, alpha, gamma, beta, skip ? skip + off : NULL,
                  out_row(c, out, p0));
    }
}

/* Sum of each row's k codes (vpsadbw: 8 bytes to one 64-bit lane). */
Q8 static float code_sum(const unsigned char *x, int k)
{
    __m512i s = _mm512_setzero_si512(), zero = s;
    int i = 0;
    for (; i + 64 <= k; i += 64)
        s = _mm512_add_epi64(s, _mm512_sad_epu8(_mm512_loadu_si512(x + i), zero));
    if (i < k) {
        __mmask64 tail = (__mmask64)(~0ull >> (64 - (k - i)));
        s = _mm512_add_epi64(s, _mm512_sad_epu8(_mm512_maskz_loadu_epi8(tail, x + i), zero));
    }
    return (float)_mm512_reduce_add_epi64(s);
}

Q8 void kern_gemm_q8_codes(const struct kern_conv *c, const unsigned char *codes, int m,
                           const float *skip, void *out)
{
    const struct kern_q8 *q = c->q8;
    int k = q->k;
    float alpha[CHUNK], gamma[CHUNK], beta[CHUNK];
    /* The constants quant_rows gives a [0, 6] row: z = 0. */
    float sa = 255.0f / KERN_Q8_RELU6_INV / 255.0f;
    float al = sa * q->scale, bo = sa * q->off;
    for (int p0 = 0; p0 < m; p0 += CHUNK) {
        int rows = m - p0 < CHUNK ? m - p0 : CHUNK;
        const unsigned char *x = codes + (size_t)p0 * k;
        for (int r = 0; r < rows; r++) {
            alpha[r] = al;
            gamma[r] = 0.0f;
            beta[r] = bo * code_sum(x + (size_t)r * k, k);
        }
        size_t off = (size_t)p0 * q->cout;
        gemm_rows(c, x, rows, alpha, gamma, beta, skip ? skip + off : NULL, out_row(c, out, p0));
    }
}
