/* kernels_ref.c: plain-C reference convolutions. Straight loops in the
 * order the maths is written, no blocking, no intrinsics: the yardstick the
 * fast kernels are tested against (IMGSEARCH_EXTRACT_REF=1 runs these). */
#include "index/kernels.h"

void kern_same_pad(int in, int k, int stride, int *out, int *pad_before)
{
    int o = (in + stride - 1) / stride;
    int total = (o - 1) * stride + k - in;
    *out = o;
    *pad_before = total > 0 ? total / 2 : 0;
}

static float epilogue(float v, int relu6, const float *skip, size_t i)
{
    if (relu6)
        v = v < 0.0f ? 0.0f : (v > 6.0f ? 6.0f : v);
    if (skip)
        v += skip[i];
    return v;
}

void kern_conv_ref(const struct kern_conv *c, const float *in, float *out)
{
    for (int oy = 0; oy < c->out_h; oy++) {
        for (int ox = 0; ox < c->out_w; ox++) {
            float *o = out + ((size_t)oy * c->out_w + ox) * c->cout;
            for (int co = 0; co < c->cout; co++)
                o[co] = c->b[co];
            for (int ky = 0; ky < c->k; ky++) {
                int iy = oy * c->stride + ky - c->pad_top;
                if (iy < 0 || iy >= c->in_h)
                    continue;
                for (int kx = 0; kx < c->k; kx++) {
                    int ix = ox * c->stride + kx - c->pad_left;
                    if (ix < 0 || ix >= c->in_w)
                        continue;
                    const float *p = in + ((size_t)iy * c->in_w + ix) * c->cin;
                    const float *w = c->w + ((size_t)ky * c->k + kx) * c->cin * c->cout;
                    for (int ci = 0; ci < c->cin; ci++)
                        for (int co = 0; co < c->cout; co++)
                            o[co] += p[ci] * w[(size_t)ci * c->cout + co];
                }
            }
            size_t base = ((size_t)oy * c->out_w + ox) * c->cout;
            for (int co = 0; co < c->cout; co++)
                o[co] = epilogue(o[co], c->relu6, c->skip, base + co);
        }
    }
}

void kern_dw_ref(const struct kern_conv *c, const float *in, float *out)
{
    int ch = c->cout;
    for (int oy = 0; oy < c->out_h; oy++) {
        for (int ox = 0; ox < c->out_w; ox++) {
            size_t base = ((size_t)oy * c->out_w + ox) * ch;
            for (int ch_i = 0; ch_i < ch; ch_i++) {
                float acc = c->b[ch_i];
                for (int ky = 0; ky < c->k; ky++) {
                    int iy = oy * c->stride + ky - c->pad_top;
                    if (iy < 0 || iy >= c->in_h)
                        continue;
                    for (int kx = 0; kx < c->k; kx++) {
                        int ix = ox * c->stride + kx - c->pad_left;
                        if (ix < 0 || ix >= c->in_w)
                            continue;
                        acc += in[((size_t)iy * c->in_w + ix) * ch + ch_i] *
                               c->w[((size_t)ky * c->k + kx) * ch + ch_i];
                    }
                }
                out[base + ch_i] = epilogue(acc, c->relu6, c->skip, base + ch_i);
            }
        }
    }
}
