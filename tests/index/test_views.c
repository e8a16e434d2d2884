/* test_views.c: the extra image views (index/views.c): area shrink,
 * low-resolution copy and grey contrast stretch. */
#include <stdlib.h>
#include <string.h>
#include "index/views.h"
#include "tests/unit.h"

static struct image make(int w, int h)
{
    struct image img = {w, h, w, h, malloc((size_t)w * h * 3)};
    return img;
}

static uint8_t *px(const struct image *img, int x, int y)
{
    return img->rgb + ((size_t)y * img->width + x) * 3;
}

static void test_shrink_averages_blocks(void)
{
    struct image in = make(4, 2), out;
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 4; x++) {
            uint8_t *p = px(&in, x, y);
            p[0] = (uint8_t)(x < 2 ? 10 * (x + y) : 200); /* left block 0,10,10,20 */
            p[1] = 7;
            p[2] = (uint8_t)(x < 2 ? 0 : 255);
        }
    CHECK_INT(image_shrink(&in, 2, 1, &out), 0);
    CHECK_INT(out.width, 2);
    CHECK_INT(out.height, 1);
    CHECK_INT(px(&out, 0, 0)[0], 10); /* (0 + 10 + 10 + 20) / 4 */
    CHECK_INT(px(&out, 1, 0)[0], 200);
    CHECK_INT(px(&out, 0, 0)[1], 7);
    CHECK_INT(px(&out, 1, 0)[2], 255);
    image_free(&out);
    /* Growing is not a shrink. */
    CHECK_INT(image_shrink(&in, 5, 2, &out), -1);
    CHECK(out.rgb == NULL);
    image_free(&in);
}

/* Output pixel (x, y) of an area shrink, by the definition: the rounded
 * mean of the source block [x*W/w, (x+1)*W/w) x [y*H/h, (y+1)*H/h), at
 * least one pixel wide and high. */
static void shrink_ref(const struct image *in, int w, int h, int x, int y, uint8_t o[3])
{
    int x0 = (int)((long long)x * in->width / w), x1 = (int)((long long)(x + 1) * in->width / w);
    int y0 = (int)((long long)y * in->height / h), y1 = (int)((long long)(y + 1) * in->height / h);
    x1 = x1 > x0 ? x1 : x0 + 1;
    y1 = y1 > y0 ? y1 : y0 + 1;
    for (int c = 0; c < 3; c++) {
        unsigned sum = 0, n = (unsigned)((x1 - x0) * (y1 - y0));
        for (int yy = y0; yy < y1; yy++)
            for (int xx = x0; xx < x1; xx++)
                sum += px(in, xx, yy)[c];
        o[c] = (uint8_t)((sum + n / 2) / n);
    }
}

static void test_shrink_matches_definition(void)
{
    static const int sizes[][4] = {{384, 288, 128, 96}, {384, 288, 256, 192}, {1000, 3, 7, 3},
                                   {97, 61, 96, 60},    {5, 5, 5, 5},         {640, 480, 1, 1},
                                   {333, 777, 100, 233}};
    unsigned seed = 12345;
    for (size_t t = 0; t < sizeof sizes / sizeof *sizes; t++) {
        struct image in = make(sizes[t][0], sizes[t][1]), out;
        for (size_t i = 0; i < (size_t)in.width * in.height * 3; i++)
            in.rgb[i] = (uint8_t)((seed = seed * 1103515245u + 12345u) >> 16);
        CHECK_INT(image_shrink(&in, sizes[t][2], sizes[t][3], &out), 0);
        int bad = 0;
        for (int y = 0; y < out.height; y++)
            for (int x = 0; x < out.width; x++) {
                uint8_t want[3];
                shrink_ref(&in, out.width, out.height, x, y, want);
                bad += memcmp(want, px(&out, x, y), 3) != 0;
            }
        CHECK_INT(bad, 0);
        image_free(&out);
        image_free(&in);
    }
}

static void test_lowres_keeps_aspect(void)
{
    struct image in = make(480, 360), out;
    for (size_t i = 0; i < (size_t)480 * 360 * 3; i++)
        in.rgb[i] = (uint8_t)(i * 31);
    CHECK_INT(image_lowres(&in, VIEW_LOWRES_SIDE, &out), 0);
    CHECK_INT(out.height, 96);
    CHECK_INT(out.width, 128);
    CHECK_INT(out.orig_width, 128);
    image_free(&out);
    /* Portrait, and an odd ratio rounds to the nearest pixel. */
    struct image tall = make(100, 301);
    for (size_t i = 0; i < (size_t)100 * 301 * 3; i++)
        tall.rgb[i] = 9;
    CHECK_INT(image_lowres(&tall, 96, &out), 0);
    CHECK_INT(out.width, 96);
    CHECK_INT(out.height, 289); /* 301 * 96 / 100 = 288.96 */
    CHECK_INT(px(&out, 50, 100)[1], 9);
    image_free(&out);
    image_free(&tall);
    /* Already small: a copy of the same size. */
    struct image small = make(80, 70);
    for (size_t i = 0; i < (size_t)80 * 70 * 3; i++)
        small.rgb[i] = (uint8_t)i;
    CHECK_INT(image_lowres(&small, 96, &out), 0);
    CHECK_INT(out.width, 80);
    CHECK_INT(out.height, 70);
    CHECK(out.rgb != small.rgb && memcmp(out.rgb, small.rgb, (size_t)80 * 70 * 3) == 0);
    image_free(&out);
    image_free(&small);
    image_free(&in);
}

static void test_grey_stretch(void)
{
    /* 100 pixels: levels 100..149 twice, as pure red/green/blue/grey. */
    struct image in = make(10, 10), out;
    for (int i = 0; i < 100; i++) {
        uint8_t v = (uint8_t)(100 + i % 50), *p = in.rgb + i * 3;
        p[0] = p[1] = p[2] = v;
    }
    px(&in, 0, 0)[0] = 255; /* one outlier (1 % of the pixels) at each end */
    px(&in, 0, 0)[1] = px(&in, 0, 0)[2] = 255;
    px(&in, 1, 0)[0] = px(&in, 1, 0)[1] = px(&in, 1, 0)[2] = 0;
    CHECK_INT(image_grey_stretch(&in, &out), 0);
    int lo = 255, hi = 0, grey = 1;
    for (int i = 0; i < 100; i++) {
        uint8_t *p = out.rgb + i * 3;
        grey &= p[0] == p[1] && p[1] == p[2];
        if (i > 1) {
            lo = p[0] < lo ? p[0] : lo;
            hi = p[0] > hi ? p[0] : hi;
        }
    }
    CHECK(grey);
    /* The outliers are clipped away, the rest spans (almost) the full range. */
    CHECK(lo <= 6);
    CHECK(hi >= 249);
    CHECK_INT(px(&out, 0, 0)[0], 255);
    CHECK_INT(px(&out, 1, 0)[0], 0);
    image_free(&out);
    /* BT.601 luma: pure red 255 -> 76, pure green -> 150, pure blue -> 29
     * before the stretch; a flat picture stays as it is. */
    struct image flat = make(3, 1);
    uint8_t cols[3][3] = {{255, 0, 0}, {255, 0, 0}, {255, 0, 0}};
    memcpy(flat.rgb, cols, 9);
    CHECK_INT(image_grey_stretch(&flat, &out), 0);
    CHECK_INT(out.rgb[0], 76);
    CHECK_INT(out.rgb[8], 76);
    image_free(&out);
    image_free(&flat);
    image_free(&in);
    struct image empty = {0};
    CHECK_INT(image_grey_stretch(&empty, &out), -1);
}

int main(void)
{
    RUN(test_shrink_averages_blocks);
    RUN(test_shrink_matches_definition);
    RUN(test_lowres_keeps_aspect);
    RUN(test_grey_stretch);
    return unit_report();
}
