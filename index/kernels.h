/* kernels.h: the convolution kernels of the MobileNetV2 forward pass, on
 * NHWC float32 tensors with TensorFlow "SAME" padding. Each kernel exists as a
 * plain-C reference (_ref), kept simple enough to check by eye, and a fast
 * version (_fast: register-tiled AVX-512 GEMM or OpenBLAS SGEMM, vectorised
 * depthwise loops, fused blocks); the tests make sure both agree. */
#ifndef IMGSEARCH_KERNELS_H
#define IMGSEARCH_KERNELS_H

#include <stddef.h>

/* One convolution: geometry, weights and the fused epilogue. The epilogue
 * runs in graph order: + bias, then ReLU6 if `relu6`, then + `skip` (the
 * residual input, same shape as the output) if non-NULL. */
struct kern_conv {
    int in_h, in_w, cin;
    int out_h, out_w, cout; /* cout == cin for depthwise */
    int k, stride, pad_top, pad_left;
    const float *w; /* dense: [k][k][cin][cout] (TF HWIO); depthwise: [k][k][c] */
    const float *b; /* [cout] */
    int relu6;
    const float *skip;
    int portable; /* fast path without the hand-written AVX-512 kernels (OpenBLAS GEMM) */
    const struct kern_q8 *q8; /* set: run this 1x1 convolution in int8 (kernels_int8.c) */
    int out_f16;              /* write the output as fp16 (uint16_t): int8 1x1s and the stem */
    /* Depthwise before an int8 project in a fused block: its weights for
     * kern_dw16_row; set, the block runs it in fp16. */
    const unsigned short *w16;
};

/* TF SAME padding: out = ceil(in / stride), the odd pixel of padding goes to
 * the bottom/right. */
void kern_same_pad(int in, int k, int stride, int *out, int *pad_before);

void kern_conv_ref(const struct kern_conv *c, const float *in, float *out);
void kern_dw_ref(const struct kern_conv *c, const float *in, float *out);

/* out[m][c->cout] = a[m][kdim] x c->w + c->b, then ReLU6 if c->relu6, then
 * + skip[m][c->cout] if skip: a dense convolution in matrix form (1x1 as is,
 * others after im2col with kdim = k*k*cin). c->skip is not used. */
void kern_gemm_bias(const struct kern_conv *c, const float *a, int m, int kdim, const float *skip,
                    float *out);

/* Floats of scratch kern_conv_fast needs for `c` (im2col for k > 1). */
size_t kern_conv_fast_scratch(const struct kern_conv *c);
void kern_conv_fast(const struct kern_conv *c, const float *in, float *out, float *scratch);
void kern_dw_fast(const struct kern_conv *c, const float *in, float *out);

/* An inverted-residual block fused: 1x1 expand -> depthwise 3x3 -> 1x1
 * project, run in bands of output rows so the wide expanded tensor only
 * ever exists a few rows at a time (it stays in cache instead of making a
 * round trip through memory). `p->skip`, if set, is the whole residual
 * input. The scratch size depends only on the shapes. */
int kern_block_fusable(const struct kern_conv *e, const struct kern_conv *d,
                       const struct kern_conv *p);
size_t kern_block_fast_scratch(const struct kern_conv *e, const struct kern_conv *d,
                               const struct kern_conv *p);
void kern_block_fast(const struct kern_conv *e, const struct kern_conv *d,
                     const struct kern_conv *p, const float *in, float *out, float *scratch);

/* The first convolution (3x3 over 3 channels, cout a multiple of 16 up to
 * 64) computed directly on AVX-512 (kernels_stem.c), instead of im2col and
 * a GEMM of depth 27. Eligible also means: this CPU has AVX-512, and c is
 * not `portable`. kern_stem_rows writes output rows [oy0, oy1) of c (bias
 * and ReLU6; no residual) from the whole input, as floats, or fp16 if
 * c->out_f16. */
int kern_stem_eligible(const struct kern_conv *c);
void kern_stem_rows(const struct kern_conv *c, const float *in, int oy0, int oy1, void *out);

/* int8 1x1 convolutions (kernels_int8.c), for CPUs with AVX-512 VNNI.
 * Weights: the float tensor requantised per tensor to uint8 on the grid
 * lo + q * scale (for this model's weights, which were stored as uint8 with a
 * per-tensor {min, scale}, that grid is the original one: no loss), kept as
 * q - 128 in int8, packed for vpdpbusd. Activations: each input row (pixel)
 * quantised to uint8 with its own scale and zero point when the GEMM reads
 * it; int32 accumulation; float epilogue (bias, ReLU6, residual), so every
 * tensor between layers stays float. */
struct kern_q8 {
    int k, cout, cpad;    /* input channels (multiple of 4), output channels, padded to 16 */
    float scale, off;     /* w = scale * (q - 128) + off */
    const float *bsum;    /* [cpad]: sum over k of (q - 128), per output channel */
    const signed char *w; /* panels of <= 64 channels: [cpad/.. panel][k/4][width][4] */
    int nonneg;           /* inputs are ReLU6 outputs: fixed range [0, 6], no zero point */
    void *mem;            /* owns bsum and w */
};

/* Whether this CPU runs the int8 kernels (AVX-512 F/BW/VNNI). */
int kern_q8_supported(void);
/* Whether `c` (a dense convolution) runs in int8: 1x1, stride 1, cin % 4 == 0,
 * and wide enough (cin >= 24) for int8 to pay. */
int kern_q8_eligible(const struct kern_conv *c);
/* Requantises c->w into q. Returns 0, or -1 on allocation failure. */
int kern_q8_pack(const struct kern_conv *c, struct kern_q8 *q);
void kern_q8_free(struct kern_q8 *q);
/* kern_gemm_bias for a convolution with c->q8 set (kdim == c->q8->k); out
 * is float, or fp16 if c->out_f16. */
void kern_gemm_q8(const struct kern_conv *c, const float *a, int m, const float *skip, void *out);
/* Codes per unit of a `nonneg` (ReLU6) input: x in [0, 6] codes as
 * round(x * KERN_Q8_RELU6_INV) in [0, 255]. */
#define KERN_Q8_RELU6_INV 42.5f
/* The same from inputs already coded so (codes[m][k], k == c->q8->k, and
 * c->q8->nonneg): what a depthwise layer feeding an int8 1x1 writes. */
void kern_gemm_q8_codes(const struct kern_conv *c, const unsigned char *codes, int m,
                        const float *skip, void *out);

/* The depthwise 3x3 of a fused int8 block in fp16 (kernels_dw16.c), for
 * CPUs with AVX512-FP16: reads the expand's fp16 output rows, writes the
 * project's uint8 codes (kern_gemm_q8_codes). kern_dw16_pack returns the
 * 9 * cout weights and cout biases, scaled to code units, as 10 * cout
 * halves (free()), or NULL without memory; kern_dw16_row computes one
 * output row, rows[ky] being the input row under kernel row ky or NULL for
 * padding. */
int kern_f16_supported(void);
unsigned short *kern_dw16_pack(const struct kern_conv *d);
void kern_dw16_row(const struct kern_conv *d, const unsigned short *const rows[3],
                   const unsigned short *wb, unsigned char *codes);

/* dst[i] = w * src[i] (first) or dst[i] += w * src[i]: the vertical pass of
 * the image resampler, on whole uint8 rows. */
void kern_row_scale_u8(int n, float w, const unsigned char *src, float *dst);
void kern_row_axpy_u8(int n, float w, const unsigned char *src, float *dst);

/* Forces OpenBLAS to one thread: the server parallelises across requests. */
void kern_init(void);

#endif
