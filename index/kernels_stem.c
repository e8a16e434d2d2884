/* kernels_stem.c: the network's first convolution (3x3, 3 input channels,
 * stride 2, 48 outputs) computed directly on AVX-512. Through im2col it was
 * a GEMM of depth 27: the patch copy cost nearly as much as the maths, and a
 * depth of 27 leaves the GEMM's tiles mostly loop overhead (measured
 * 0.55 ms of the int8 path's ~5.5). Here each input value is broadcast once
 * per tap and multiplied into a tile of 8 pixels x up to 64 channels that
 * stays in registers. */
#pragma GCC optimize("O3", "fp-contract=fast")

#include <immintrin.h>
#include <string.h>

#include "index/kernels.h"

#define AVX512 __attribute__((target("avx512f,fma")))
#define INLINE static inline __attribute__((always_inline))

#define STEM_K 3
#define STEM_CIN 3
#define STEM_TILE 8       /* output pixels per register tile */
#define STEM_MAX_ROW 4096 /* floats of one zero-padded input row */
#define STEM_MAX_VEC 4    /* 16-channel output vectors: cout <= 64 */

int kern_stem_eligible(const struct kern_conv *c)
{
    return c->k == STEM_K && c->cin == STEM_CIN && c->cout % 16 == 0 &&
           c->cout <= 16 * STEM_MAX_VEC && (c->in_w + 2 * STEM_K) * STEM_CIN <= STEM_MAX_ROW &&
           !c->portable && __builtin_cpu_supports("avx512f");
}

/* Input row iy with zeros for the padding on both sides (and for a row
 * wholly in the padding), so that every tap of every pixel is a plain
 * load. Pixel ix of the image lands at floats (ix + pad_left) * cin. */
static void padded_row(const struct kern_conv *c, const float *in, int iy, float *row)
{
    int w = c->in_w + 2 * STEM_K;
    memset(row, 0, sizeof(float) * (size_t)w * STEM_CIN);
    if (iy >= 0 && iy < c->in_h)
        memcpy(row + (size_t)c->pad_left * STEM_CIN, in + (size_t)iy * c->in_w * STEM_CIN,
               sizeof(float) * (size_t)c->in_w * STEM_CIN);
}

/* mr pixels from ox0 x nv channel vectors: bias + 27 taps, ReLU6 if asked.
 * mr and nv are constants at each call site, so the accumulators stay in
 * registers. */
AVX512 INLINE void stem_tile(const int mr, const int nv, const struct kern_conv *c,
                             const float *const rows[STEM_K], int ox0, void *out)
{
    __m512 acc[STEM_TILE][STEM_MAX_VEC];
    for (int j = 0; j < nv; j++) {
        __m512 b = _mm512_loadu_ps(c->b + 16 * j);
        for (int p = 0; p < mr; p++)
            acc[p][j] = b;
    }
    for (int ky = 0; ky < STEM_K; ky++)
        for (int kx = 0; kx < STEM_K; kx++)
            for (int ci = 0; ci < STEM_CIN; ci++) {
                const float *wr = c->w + (size_t)((ky * STEM_K + kx) * STEM_CIN + ci) * c->cout;
                __m512 wv[STEM_MAX_VEC];
                for (int j = 0; j < nv; j++)
                    wv[j] = _mm512_loadu_ps(wr + 16 * j);
                for (int p = 0; p < mr; p++) {
                    int ix = (ox0 + p) * c->stride + kx; /* in padded coordinates */
                    __m512 x = _mm512_set1_ps(rows[ky][ix * STEM_CIN + ci]);
                    for (int j = 0; j < nv; j++)
                        acc[p][j] = _mm512_fmadd_ps(x, wv[j], acc[p][j]);
                }
            }
    __m512 zero = _mm512_setzero_ps(), six = _mm512_set1_ps(6.0f);
    for (int p = 0; p < mr; p++)
        for (int j = 0; j < nv; j++) {
            __m512 v = acc[p][j];
            if (c->relu6)
                v = _mm512_min_ps(_mm512_max_ps(v, zero), six);
            size_t off = (size_t)(ox0 + p) * c->cout + 16 * j;
            if (c->out_f16)
                _mm256_storeu_si256((__m256i *)(void *)((unsigned short *)out + off),
                                    _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
            else
                _mm512_storeu_ps((float *)out + off, v);
        }
}

AVX512 INLINE void stem_tile_nv(const int mr, int nv, const struct kern_conv *c,
                                const float *const rows[STEM_K], int ox0, void *out)
{
    switch (nv) {
    case 1:
        stem_tile(mr, 1, c, rows, ox0, out);
        break;
    case 2:
        stem_tile(mr, 2, c, rows, ox0, out);
        break;
    case 3:
        stem_tile(mr, 3, c, rows, ox0, out);
        break;
    default:
        stem_tile(mr, 4, c, rows, ox0, out);
        break;
    }
}

AVX512 static void stem_row(const struct kern_conv *c, const float *const rows[STEM_K], void *out)
{
    int nv = c->cout / 16, ox = 0;
    for (; ox + STEM_TILE <= c->out_w; ox += STEM_TILE)
        stem_tile_nv(STEM_TILE, nv, c, rows, ox, out);
    for (; ox < c->out_w; ox++)
        stem_tile_nv(1, nv, c, rows, ox, out);
}

void kern_stem_rows(const struct kern_conv *c, const float *in, int oy0, int oy1, void *out)
{
    size_t esz = c->out_f16 ? sizeof(unsigned short) : sizeof(float);
    float buf[STEM_K][STEM_MAX_ROW];
    for (int oy = oy0; oy < oy1; oy++) {
        const float *rows[STEM_K];
        for (int ky = 0; ky < STEM_K; ky++) {
            padded_row(c, in, oy * c->stride + ky - c->pad_top, buf[ky]);
            rows[ky] = buf[ky];
        }
        stem_row(c, rows, (char *)out + (size_t)(oy - oy0) * c->out_w * c->cout * esz);
    }
}
