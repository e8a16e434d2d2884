/* kernels_gemm.c: dense convolutions as matrix products with the bias,
 * ReLU6 and residual epilogue fused. On AVX-512 CPUs a register-tiled kernel
 * reads the HWIO weights in place: OpenBLAS would copy (pack) the whole weight
 * matrix on every call, and with the few hundred pixels per call the fused
 * blocks and the 14x14/7x7 stages make, that copy costs more than the maths
 * (measured ~1.5 ms of ~12 per image). Elsewhere, OpenBLAS SGEMM (runtime ISA
 * dispatch) plus a vectorised epilogue. */
#pragma GCC optimize("O3", "fp-contract=fast")

#include <cblas.h>
#include <immintrin.h>
#include <string.h>

#include "index/kernels.h"

/* Not in every cblas.h variant (Debian's alternatives may pick another). */
extern void openblas_set_num_threads(int num_threads);

void kern_init(void)
{
    openblas_set_num_threads(1);
}

/* ---- portable path: OpenBLAS + epilogue ---- */

__attribute__((target_clones("avx512f", "avx2", "default"))) static void
epilogue_row(int n, const float *restrict b, int relu6, const float *restrict skip,
             float *restrict o)
{
    if (relu6) {
        for (int i = 0; i < n; i++) {
            float v = o[i] + b[i];
            v = v < 0.0f ? 0.0f : v;
            o[i] = v > 6.0f ? 6.0f : v;
        }
    } else {
        for (int i = 0; i < n; i++)
            o[i] += b[i];
    }
    if (skip)
        for (int i = 0; i < n; i++)
            o[i] += skip[i];
}

/* Rows per SGEMM call: the band's output is still in cache for the epilogue. */
#define BAND 512

static void gemm_openblas(const struct kern_conv *c, const float *a, int m, int kdim,
                          const float *skip, float *out)
{
    for (int p0 = 0; p0 < m; p0 += BAND) {
        int rows = m - p0 < BAND ? m - p0 : BAND;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, c->cout, kdim, 1.0f,
                    a + (size_t)p0 * kdim, kdim, c->w, c->cout, 0.0f, out + (size_t)p0 * c->cout,
                    c->cout);
        for (int p = p0; p < p0 + rows; p++) {
            size_t off = (size_t)p * c->cout;
            epilogue_row(c->cout, c->b, c->relu6, skip ? skip + off : NULL, out + off);
        }
    }
}

/* ---- AVX-512 path: a tile of up to 6 rows x 64 output channels lives in 24
 * zmm accumulators; each weight vector loaded is used 6 times. ---- */
#define TILE_M 6
#define TILE_V 4
#define AVX512 __attribute__((target("avx512f,fma")))
#define INLINE static inline __attribute__((always_inline))

typedef float v16 __attribute__((vector_size(64)));

/* Vector j of a tile row. nv == 0 stands for one half vector (the last 8
 * channels of a count that is 8 mod 16), loaded and stored under a mask;
 * full vectors stay plain loads that fold into the FMAs. */
AVX512 INLINE v16 load_v(const float *p, int j, int nv)
{
    if (nv == 0)
        return (v16)_mm512_maskz_loadu_ps((__mmask16)0x00ff, p);
    v16 v;
    memcpy(&v, p + 16 * j, sizeof v);
    return v;
}

/* mr and nv are constants at every call site, so the loops unroll and the
 * accumulators stay in registers. */
AVX512 INLINE void tile(const int mr, const int nv, const struct kern_conv *c, const float *a,
                        int kdim, int co, const float *skip, float *out)
{
    const int nvec = nv == 0 ? 1 : nv;
    v16 acc[TILE_M][TILE_V], wv[TILE_V], lo = {0}, hi = lo + 6.0f;
    for (int j = 0; j < nvec; j++)
        wv[j] = load_v(c->b + co, j, nv);
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nvec; j++)
            acc[i][j] = wv[j];
    for (int k = 0; k < kdim; k++) {
        for (int j = 0; j < nvec; j++)
            wv[j] = load_v(c->w + (size_t)k * c->cout + co, j, nv);
        for (int i = 0; i < mr; i++) {
            float av = a[(size_t)i * kdim + k];
            for (int j = 0; j < nvec; j++)
                acc[i][j] += av * wv[j];
        }
    }
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nvec; j++) {
            v16 v = acc[i][j];
            if (c->relu6)
                v = (v16)_mm512_min_ps(_mm512_max_ps((__m512)v, (__m512)lo), (__m512)hi);
            size_t off = (size_t)i * c->cout + co;
            if (skip)
                v += load_v(skip + off, j, nv);
            if (nv == 0)
                _mm512_mask_storeu_ps(out + off, (__mmask16)0x00ff, (__m512)v);
            else
                memcpy(out + off + 16 * j, &v, sizeof v);
        }
}

#define TILE_CASE(m, v)                                                                            \
    case (m)*8 + (v):                                                                              \
        tile(m, v, c, a, kdim, co, skip, out);                                                     \
        break;
#define TILE_ROW(m) TILE_CASE(m, 0) TILE_CASE(m, 1) TILE_CASE(m, 2) TILE_CASE(m, 3) TILE_CASE(m, 4)

AVX512 static void tile_dispatch(int mr, int nv, const struct kern_conv *c, const float *a,
                                 int kdim, int co, const float *skip, float *out)
{
    switch (mr * 8 + nv) {
        TILE_ROW(1)
        TILE_ROW(2)
        TILE_ROW(3)
        TILE_ROW(4)
        TILE_ROW(5)
        TILE_ROW(6)
    default:
        break;
    }
}

/* Column blocks outside, row tiles inside: a block's weight panel
 * (kdim x 64 floats) stays in L2 while every row tile streams over it. The
 * full 16-channel vectors split into blocks as evenly as possible (144
 * channels: 3 + 3 + 3 vectors, not 4 + 4 + 1, whose 1-vector tiles load as
 * many floats as they multiply); an 8-channel tail goes last. */
static void gemm_block(const struct kern_conv *c, const float *a, int m, int kdim, int co, int nv,
                       const float *skip, float *out)
{
    for (int p = 0; p < m; p += TILE_M) {
        int mr = m - p < TILE_M ? m - p : TILE_M;
        size_t off = (size_t)p * c->cout;
        tile_dispatch(mr, nv, c, a + (size_t)p * kdim, kdim, co, skip ? skip + off : NULL,
                      out + off);
    }
}

static void gemm_avx512(const struct kern_conv *c, const float *a, int m, int kdim,
                        const float *skip, float *out)
{
    int nvec = c->cout / 16, nblk = (nvec + TILE_V - 1) / TILE_V;
    for (int b = 0; b < nblk; b++) {
        int v0 = b * nvec / nblk, v1 = (b + 1) * nvec / nblk;
        gemm_block(c, a, m, kdim, 16 * v0, v1 - v0, skip, out);
    }
    if (c->cout % 16) /* nv 0: one 8-channel half vector */
        gemm_block(c, a, m, kdim, 16 * nvec, 0, skip, out);
}

void kern_gemm_bias(const struct kern_conv *c, const float *a, int m, int kdim, const float *skip,
                    float *out)
{
    if (c->q8 && kdim == c->q8->k)
        kern_gemm_q8(c, a, m, skip, out);
    else if (!c->portable && c->cout % 8 == 0 && __builtin_cpu_supports("avx512f"))
        gemm_avx512(c, a, m, kdim, skip, out);
    else
        gemm_openblas(c, a, m, kdim, skip, out);
}
