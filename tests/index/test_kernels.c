/* test_kernels.c: single kernels against the plain-C reference on shapes
 * the network does not reach (odd widths and heights, tails of tiles and of
 * 16-row groups), where the extractor's golden tests would not look. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "index/kernels.h"
#include "tests/unit.h"

static float frand(uint32_t *s, float lo, float hi)
{
    *s = *s * 1664525u + 1013904223u;
    return lo + (hi - lo) * (float)(*s >> 8) / (float)(1u << 24);
}

static float *rand_buf(size_t n, uint32_t seed, float lo, float hi)
{
    float *p = malloc(sizeof(float) * n);
    for (size_t i = 0; p && i < n; i++)
        p[i] = frand(&seed, lo, hi);
    return p;
}

/* Largest |a - b| relative to the largest |b|. */
static double rel_err(const float *a, const float *b, size_t n)
{
    double err = 0, mag = 1e-30;
    for (size_t i = 0; i < n; i++) {
        err = fmax(err, fabs((double)a[i] - b[i]));
        mag = fmax(mag, fabs((double)b[i]));
    }
    return err / mag;
}

static void stem_case(int in_h, int in_w, int stride, int cout, int relu6)
{
    struct kern_conv c = {.in_h = in_h, .in_w = in_w, .cin = 3, .cout = cout, .k = 3};
    c.stride = stride;
    c.relu6 = relu6;
    kern_same_pad(in_h, 3, stride, &c.out_h, &c.pad_top);
    kern_same_pad(in_w, 3, stride, &c.out_w, &c.pad_left);
    size_t nout = (size_t)c.out_h * c.out_w * cout;
    float *in = rand_buf((size_t)in_h * in_w * 3, 7, -1.0f, 1.0f);
    float *w = rand_buf((size_t)27 * cout, 11, -1.0f, 1.0f);
    float *b = rand_buf((size_t)cout, 13, -0.5f, 0.5f);
    float *want = malloc(sizeof(float) * nout), *got = malloc(sizeof(float) * nout);
    float *scratch = malloc(sizeof(float) * (kern_conv_fast_scratch(&c) + 1));
    CHECK(in && w && b && want && got && scratch);
    if (!in || !w || !b || !want || !got || !scratch)
        goto done;
    c.w = w;
    c.b = b;
    kern_conv_ref(&c, in, want);
    kern_conv_fast(&c, in, got, scratch);
    double e = rel_err(got, want, nout);
    if (e > 1e-5)
        fprintf(stderr, "  stem %dx%d s%d -> %d: rel err %g\n", in_h, in_w, stride, cout, e);
    CHECK(e <= 1e-5);
    /* Rows of a band, as the fused block asks for them. */
    if (kern_stem_eligible(&c) && c.out_h > 2) {
        kern_stem_rows(&c, in, 1, 3, got);
        size_t row = (size_t)c.out_w * cout;
        CHECK(rel_err(got, want + row, 2 * row) <= 1e-5);
    }
done:
    free(in);
    free(w);
    free(b);
    free(want);
    free(got);
    free(scratch);
}

/* The direct stem kernel: tails of its 8-pixel tiles, both strides, every
 * channel count it takes, ReLU6 on and off. */
static void test_stem_matches_ref(void)
{
    if (!kern_stem_eligible(&(struct kern_conv){.k = 3, .cin = 3, .cout = 48, .in_w = 224}))
        fprintf(stderr, "  no AVX-512 here: the stem runs through im2col\n");
    stem_case(224, 224, 2, 48, 1);
    stem_case(17, 23, 2, 16, 0);
    stem_case(9, 13, 1, 32, 1);
    stem_case(30, 41, 2, 64, 1);
    stem_case(5, 3, 2, 48, 0);
    stem_case(1, 1, 1, 16, 1);
}

static void q8_case(int m, int k, int cout, int nonneg)
{
    struct kern_conv c = {.in_h = 1, .in_w = m, .cin = k, .out_h = 1, .out_w = m, .cout = cout};
    c.k = 1;
    c.stride = 1;
    float *a = rand_buf((size_t)m * k, 17, nonneg ? 0.0f : -3.0f, 6.0f);
    float *w = rand_buf((size_t)k * cout, 19, -0.5f, 0.3f);
    float *b = rand_buf((size_t)cout, 23, -0.5f, 0.5f);
    float *want = malloc(sizeof(float) * m * cout), *got = malloc(sizeof(float) * m * cout);
    struct kern_q8 q;
    CHECK(a && w && b && want && got);
    if (!a || !w || !b || !want || !got)
        goto done;
    for (int r = 3; r < m; r += 5) /* all-zero rows: no range to quantise */
        for (int i = 0; i < k; i++)
            a[(size_t)r * k + i] = 0.0f;
    c.w = w;
    c.b = b;
    kern_gemm_bias(&c, a, m, k, NULL, want);
    CHECK_INT(kern_q8_pack(&c, &q), 0);
    q.nonneg = nonneg;
    c.q8 = &q;
    kern_gemm_q8(&c, a, m, NULL, got);
    double e = rel_err(got, want, (size_t)m * cout);
    if (e > 0.01)
        fprintf(stderr, "  q8 m %d k %d -> %d: rel err %g\n", m, k, cout, e);
    CHECK(e <= 0.01);
    kern_q8_free(&q);
done:
    free(a);
    free(w);
    free(b);
    free(want);
    free(got);
}

/* The int8 GEMM against the float one: row counts off the 16-row groups of
 * the quantiser and the tiles, channel tails, signed and ReLU inputs. */
static void test_q8_matches_float(void)
{
    if (!kern_q8_supported()) {
        fprintf(stderr, "  no AVX-512 VNNI here: skipped\n");
        return;
    }
    q8_case(1, 24, 144, 0);
    q8_case(37, 24, 144, 0);
    q8_case(200, 48, 24, 1);
    q8_case(17, 88, 528, 0);
    q8_case(250, 136, 40, 1);
    q8_case(33, 1344, 224, 1);
}

int main(void)
{
    RUN(test_stem_matches_ref);
    RUN(test_q8_matches_float);
    return unit_report();
}
