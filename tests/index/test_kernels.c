/* test_kernels.c: single kernels against the plain-C reference on shapes
 * the network does not reach (odd widths and heights, tails of tiles and of
 * 16-row groups), where the extractor's golden tests would not look. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

/* kern_gemm_q8_codes on codes of ReLU6 rows against kern_gemm_q8 quantising
 * the same rows: the same codes and constants, so the same output. */
static void q8_codes_case(int m, int k, int cout)
{
    struct kern_conv c = {.in_h = 1, .in_w = m, .cin = k, .out_h = 1, .out_w = m, .cout = cout};
    c.k = 1;
    c.stride = 1;
    float *a = rand_buf((size_t)m * k, 29, -1.0f, 7.0f);
    float *w = rand_buf((size_t)k * cout, 31, -0.4f, 0.6f);
    float *b = rand_buf((size_t)cout, 37, -0.5f, 0.5f);
    float *skip = rand_buf((size_t)m * cout, 41, -1.0f, 1.0f);
    float *want = malloc(sizeof(float) * m * cout), *got = malloc(sizeof(float) * m * cout);
    unsigned char *codes = malloc((size_t)m * k);
    struct kern_q8 q;
    CHECK(a && w && b && skip && want && got && codes);
    if (!a || !w || !b || !skip || !want || !got || !codes)
        goto done;
    for (size_t i = 0; i < (size_t)m * k; i++) {
        a[i] = a[i] < 0.0f ? 0.0f : a[i] > 6.0f ? 6.0f : a[i]; /* ReLU6, some at the ends */
        codes[i] = (unsigned char)lrintf(a[i] * KERN_Q8_RELU6_INV);
    }
    c.w = w;
    c.b = b;
    CHECK_INT(kern_q8_pack(&c, &q), 0);
    q.nonneg = 1;
    c.q8 = &q;
    kern_gemm_q8(&c, a, m, skip, want);
    kern_gemm_q8_codes(&c, codes, m, skip, got);
    double e = rel_err(got, want, (size_t)m * cout);
    if (e > 1e-6)
        fprintf(stderr, "  q8 codes m %d k %d -> %d: rel err %g\n", m, k, cout, e);
    CHECK(e <= 1e-6);
    kern_q8_free(&q);
done:
    free(a);
    free(w);
    free(b);
    free(skip);
    free(want);
    free(got);
    free(codes);
}

static void test_q8_codes(void)
{
    if (!kern_q8_supported()) {
        fprintf(stderr, "  no AVX-512 VNNI here: skipped\n");
        return;
    }
    q8_codes_case(1, 24, 16);
    q8_codes_case(200, 144, 24);  /* k past one 64-byte group, tail of 16 */
    q8_codes_case(250, 64, 40);   /* k exactly one group */
    q8_codes_case(37, 1344, 224); /* k of the 7x7 stage */
}

/* A fused block with an int8 project whose ReLU6 inputs the depthwise
 * writes as codes, against the same layers run one by one (expand, float
 * depthwise, int8 project quantising the floats): the same codes, so the
 * same output. Narrow rows and a channel count off 16 take the per-pixel
 * depthwise. With `f16`, an int8 expand writes fp16 and the depthwise runs
 * in fp16 (kernels_dw16.c): close, not equal. */
static void block_q8_case(int h, int w, int stride, int cin, int mid, int cout, int f16)
{
    struct kern_conv e = {.in_h = h, .in_w = w, .cin = cin, .out_h = h, .out_w = w, .cout = mid};
    e.k = 1;
    e.stride = 1;
    e.relu6 = 1;
    struct kern_conv d = {.in_h = h, .in_w = w, .cin = mid, .cout = mid, .k = 3, .relu6 = 1};
    d.stride = stride;
    kern_same_pad(h, 3, stride, &d.out_h, &d.pad_top);
    kern_same_pad(w, 3, stride, &d.out_w, &d.pad_left);
    struct kern_conv p = {.in_h = d.out_h, .in_w = d.out_w, .cin = mid, .cout = cout, .k = 1};
    p.out_h = d.out_h;
    p.out_w = d.out_w;
    p.stride = 1;
    size_t nin = (size_t)h * w * cin, nmid = (size_t)h * w * mid;
    size_t nd = (size_t)d.out_h * d.out_w * mid, nout = (size_t)d.out_h * d.out_w * cout;
    float *in = rand_buf(nin, 43, -2.0f, 2.0f);
    float *ew = rand_buf((size_t)cin * mid, 47, -0.5f, 0.6f);
    float *eb = rand_buf((size_t)mid, 53, -0.5f, 1.0f);
    float *dw = rand_buf((size_t)9 * mid, 59, -1.0f, 1.0f);
    float *db = rand_buf((size_t)mid, 61, -0.5f, 1.0f);
    float *pw = rand_buf((size_t)mid * cout, 67, -0.3f, 0.3f);
    float *pb = rand_buf((size_t)cout, 71, -0.5f, 0.5f);
    float *t1 = malloc(sizeof(float) * nmid), *t2 = malloc(sizeof(float) * nd);
    float *want = malloc(sizeof(float) * nout), *got = malloc(sizeof(float) * nout);
    float *scratch = malloc(sizeof(float) * kern_block_fast_scratch(&e, &d, &p));
    struct kern_q8 q = {0}, qe = {0};
    unsigned short *w16 = NULL;
    CHECK(in && ew && eb && dw && db && pw && pb && t1 && t2 && want && got && scratch);
    if (!in || !ew || !eb || !dw || !db || !pw || !pb || !t1 || !t2 || !want || !got || !scratch)
        goto done;
    e.w = ew;
    e.b = eb;
    d.w = dw;
    d.b = db;
    p.w = pw;
    p.b = pb;
    CHECK_INT(kern_q8_pack(&p, &q), 0);
    q.nonneg = 1;
    p.q8 = &q;
    if (f16) { /* int8 expand writing fp16, fp16 depthwise */
        CHECK_INT(kern_q8_pack(&e, &qe), 0);
        e.q8 = &qe;
        w16 = kern_dw16_pack(&d);
        CHECK(w16 != NULL);
    }
    kern_conv_fast(&e, in, t1, NULL);
    kern_dw_fast(&d, t1, t2);
    kern_gemm_q8(&p, t2, d.out_h * d.out_w, NULL, want);
    d.w16 = w16;
    kern_block_fast(&e, &d, &p, in, got, scratch);
    double err = rel_err(got, want, nout), bar = f16 ? 1e-2 : 1e-6;
    if (err > bar)
        fprintf(stderr, "  block q8 %dx%d s%d %d-%d-%d f16 %d: rel err %g\n", h, w, stride, cin,
                mid, cout, f16, err);
    CHECK(err <= bar);
done:
    kern_q8_free(&q);
    kern_q8_free(&qe);
    free(w16);
    free(in);
    free(ew);
    free(eb);
    free(dw);
    free(db);
    free(pw);
    free(pb);
    free(t1);
    free(t2);
    free(want);
    free(got);
    free(scratch);
}

static void test_block_q8_codes(void)
{
    if (!kern_q8_supported()) {
        fprintf(stderr, "  no AVX-512 VNNI here: skipped\n");
        return;
    }
    for (int f16 = 0; f16 <= kern_f16_supported(); f16++) {
        block_q8_case(28, 28, 1, 32, 192, 32, f16);
        block_q8_case(29, 23, 2, 24, 144, 48, f16);
        block_q8_case(7, 7, 1, 64, 384, 96, f16);
        block_q8_case(5, 2, 1, 24, 48, 24, f16);  /* too narrow for the row kernel */
        block_q8_case(9, 11, 2, 24, 40, 32, f16); /* 40 channels: per pixel */
    }
}

/* The fp16 depthwise row kernel against the float reference on the same
 * (fp16-representable) inputs, both as the project's codes: fp16 sums of
 * 9 taps (11 bits: up to ~0.2 of a code near 255) may round a code the
 * other way, never further. Every kernel-row
 * variant (top and bottom padding, a single input row), both strides, edge
 * pixels on both sides, channel tails of 16 and 8. */
static void dw16_case(int h, int w, int stride, int ch)
{
    struct kern_conv d = {.in_h = h, .in_w = w, .cin = ch, .cout = ch, .k = 3, .relu6 = 1};
    d.stride = stride;
    kern_same_pad(h, 3, stride, &d.out_h, &d.pad_top);
    kern_same_pad(w, 3, stride, &d.out_w, &d.pad_left);
    size_t nin = (size_t)h * w * ch, nout = (size_t)d.out_h * d.out_w * ch;
    float *in = rand_buf(nin, 73, 0.0f, 6.0f);
    float *dw = rand_buf((size_t)9 * ch, 79, -1.0f, 1.0f);
    float *db = rand_buf((size_t)ch, 83, -1.0f, 3.0f);
    float *want = malloc(sizeof(float) * nout);
    unsigned short *in16 = malloc(sizeof(unsigned short) * nin), *wb = NULL;
    unsigned char *got = malloc(nout);
    CHECK(in && dw && db && want && in16 && got);
    if (!in || !dw || !db || !want || !in16 || !got)
        goto done;
    for (size_t i = 0; i < nin; i++) {
        _Float16 x = (_Float16)in[i];
        in[i] = (float)x;
        memcpy(in16 + i, &x, sizeof x);
    }
    d.w = dw;
    d.b = db;
    kern_dw_ref(&d, in, want);
    wb = kern_dw16_pack(&d);
    CHECK(wb != NULL);
    if (!wb)
        goto done;
    size_t row = (size_t)w * ch;
    for (int oy = 0; oy < d.out_h; oy++) {
        const unsigned short *rows[3];
        for (int ky = 0; ky < 3; ky++) {
            int iy = oy * stride + ky - d.pad_top;
            rows[ky] = iy >= 0 && iy < h ? in16 + (size_t)iy * row : NULL;
        }
        kern_dw16_row(&d, rows, wb, got + (size_t)oy * d.out_w * ch);
    }
    int worst = 0, off = 0;
    for (size_t i = 0; i < nout; i++) {
        int code = (int)lrintf(want[i] * KERN_Q8_RELU6_INV);
        int diff = abs(code - (int)got[i]);
        worst = diff > worst ? diff : worst;
        off += diff != 0;
    }
    if (worst > 1 || off * 20 > (int)nout)
        fprintf(stderr, "  dw16 %dx%d s%d ch %d: codes off by up to %d, %d of %zu\n", h, w, stride,
                ch, worst, off, nout);
    CHECK(worst <= 1);
    CHECK(off * 20 <= (int)nout); /* measured ~3 % one code off (rounding noise +1 %) */
done:
    free(in);
    free(dw);
    free(db);
    free(want);
    free(in16);
    free(got);
    free(wb);
}

static void test_dw16_matches_ref(void)
{
    if (!kern_f16_supported()) {
        fprintf(stderr, "  no AVX512-FP16 here: skipped\n");
        return;
    }
    dw16_case(14, 14, 1, 96);
    dw16_case(15, 17, 2, 48);
    dw16_case(8, 9, 2, 144);
    dw16_case(1, 1, 1, 40);
    dw16_case(2, 2, 2, 16);
    dw16_case(3, 1, 1, 56);
    dw16_case(1, 5, 2, 32);
}

int main(void)
{
    RUN(test_stem_matches_ref);
    RUN(test_q8_matches_float);
    RUN(test_q8_codes);
    RUN(test_block_q8_codes);
    RUN(test_dw16_matches_ref);
    return unit_report();
}
