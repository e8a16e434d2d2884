/* kernels_dw16.c: the depthwise 3x3 of an int8 fused block in fp16 with
 * AVX512-FP16 (vfmadd231ph: 32 lanes, twice fp32's 16). The expand before
 * it writes fp16 (ReLU6 outputs in [0, 6]: 11 significant bits, finer than
 * the uint8 codes that follow), and the output goes straight to the int8
 * project's codes: the weights and bias are pre-scaled by
 * KERN_Q8_RELU6_INV, so the accumulator is already in code units and is
 * clamped to [0, 255] (ReLU6) and rounded (vcvtph2uw) without a float
 * detour. */
#pragma GCC optimize("O3")

#include <immintrin.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "index/kernels.h"

/* Compilers without AVX512-FP16 (GCC < 12, clang < 15: the fuzz builds)
 * get a stub that says the CPU lacks it, so the float depthwise runs. */
#if (defined(__clang__) && __clang_major__ < 15) || (!defined(__clang__) && __GNUC__ < 12)
int kern_f16_supported(void)
{
    return 0;
}

unsigned short *kern_dw16_pack(const struct kern_conv *d)
{
    (void)d;
    return NULL;
}

void kern_dw16_row(const struct kern_conv *d, const unsigned short *const rows[3],
                   const unsigned short *wb, unsigned char *codes)
{
    (void)d, (void)rows, (void)wb, (void)codes;
    abort(); /* never called: kern_f16_supported() is 0 */
}
#else
#define F16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512fp16")))
#define INLINE static inline __attribute__((always_inline))

int kern_f16_supported(void)
{
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512fp16");
}

F16 unsigned short *kern_dw16_pack(const struct kern_conv *d)
{
    int ch = d->cout;
    unsigned short *wb = malloc(sizeof(unsigned short) * 10 * (size_t)ch);
    for (int i = 0; wb && i < 10 * ch; i++) {
        float v = (i < 9 * ch ? d->w[i] : d->b[i - 9 * ch]) * KERN_Q8_RELU6_INV;
        _Float16 h = (_Float16)v;
        memcpy(wb + i, &h, sizeof h);
    }
    return wb;
}

/* 32 lanes of channels from c0: all of them (full) or those under m. */
F16 INLINE __m512h ld(const unsigned short *p, const int full, __mmask32 m)
{
    if (full)
        return (__m512h)_mm512_loadu_si512(p);
    return (__m512h)_mm512_maskz_loadu_epi16(m, p);
}

/* Clamp to [0, 255] (ReLU6 in code units), round, store as bytes. */
F16 INLINE void put(__m512h acc, unsigned char *o, const int full, __mmask32 m)
{
    acc = _mm512_min_ph(_mm512_max_ph(acc, _mm512_setzero_ph()), _mm512_set1_ph((_Float16)255.0f));
    __m256i b = _mm512_cvtepi16_epi8(_mm512_cvtph_epu16(acc));
    if (full)
        _mm256_storeu_si256((__m256i *)(void *)o, b);
    else
        _mm256_mask_storeu_epi8(o, m, b);
}

/* Taps ky0..ky1-1 x kx0..kx1-1 of one output vector, the input pixel under
 * kx = 0 at element offset ix of each row. */
F16 INLINE __m512h acc_taps(const unsigned short *const rows[3], ptrdiff_t ix, int ch,
                            const __m512h w[9], __m512h b, const int ky0, const int ky1, int kx0,
                            int kx1, const int full, __mmask32 m)
{
    __m512h acc = b;
    for (int ky = ky0; ky < ky1; ky++)
        for (int kx = kx0; kx < kx1; kx++)
            acc = _mm512_fmadd_ph(ld(rows[ky] + ix + (ptrdiff_t)kx * ch, full, m), w[3 * ky + kx],
                                  acc);
    return acc;
}

/* One output row, 32 channels at a time: the slice's weights stay in
 * registers while the row is swept. Pixels whose window leaves the row (at
 * most one on each side) take the taps that are inside. */
F16 INLINE void row_kernel(const struct kern_conv *d, const unsigned short *const rows[3],
                           const unsigned short *wb, unsigned char *codes, const int ky0,
                           const int ky1, const int full, int c0, __mmask32 m)
{
    int ch = d->cout;
    __m512h w[9], b = ld(wb + 9 * ch + c0, full, m);
    for (int t = 3 * ky0; t < 3 * ky1; t++)
        w[t] = ld(wb + (size_t)t * ch + c0, full, m);
    for (int ox = 0; ox < d->out_w; ox++) {
        int ix0 = ox * d->stride - d->pad_left;
        ptrdiff_t ix = (ptrdiff_t)ix0 * ch + c0;
        __m512h acc;
        if (ix0 >= 0 && ix0 + 2 < d->in_w) {
            acc = acc_taps(rows, ix, ch, w, b, ky0, ky1, 0, 3, full, m);
        } else {
            int kx0 = ix0 < 0 ? -ix0 : 0;
            int kx1 = d->in_w - ix0 < 3 ? d->in_w - ix0 : 3;
            acc = acc_taps(rows, ix, ch, w, b, ky0, ky1, kx0, kx1, full, m);
        }
        put(acc, codes + (size_t)ox * ch + c0, full, m);
    }
}

F16 INLINE void row_ky(const struct kern_conv *d, const unsigned short *const rows[3],
                       const unsigned short *wb, unsigned char *codes, const int ky0, const int ky1)
{
    int c0 = 0;
    for (; c0 + 32 <= d->cout; c0 += 32)
        row_kernel(d, rows, wb, codes, ky0, ky1, 1, c0, ~(__mmask32)0);
    if (c0 < d->cout)
        row_kernel(d, rows, wb, codes, ky0, ky1, 0, c0, (__mmask32)((1ull << (d->cout - c0)) - 1));
}

F16 void kern_dw16_row(const struct kern_conv *d, const unsigned short *const rows[3],
                       const unsigned short *wb, unsigned char *codes)
{
    int top = rows[0] != NULL, bottom = rows[2] != NULL;
    if (!rows[1]) { /* inputs of one row or two: not in this network */
        int ky0 = top ? 0 : 2, ky1 = bottom ? 3 : top ? 1 : 2;
        row_ky(d, rows, wb, codes, ky0, ky1);
    } else if (top && bottom) {
        row_ky(d, rows, wb, codes, 0, 3);
    } else if (bottom) {
        row_ky(d, rows, wb, codes, 1, 3);
    } else if (top) {
        row_ky(d, rows, wb, codes, 0, 2);
    } else {
        row_ky(d, rows, wb, codes, 1, 2);
    }
}
#endif
