/* views.c: the low-resolution and grey views of views.h. */
#include "index/views.h"

#include <stdlib.h>
#include <string.h>

static int valid(const struct image *in)
{
    return in && in->rgb && in->width > 0 && in->height > 0;
}

static uint8_t *alloc_rgb(int w, int h)
{
    if (w <= 0 || h <= 0 || (size_t)w > SIZE_MAX / 3 / (size_t)h)
        return NULL;
    return malloc((size_t)w * (size_t)h * 3);
}

int image_shrink(const struct image *in, int w, int h, struct image *out)
{
    memset(out, 0, sizeof *out);
    if (!valid(in) || w <= 0 || h <= 0 || w > in->width || h > in->height)
        return -1;
    uint8_t *px = alloc_rgb(w, h);
    int *xs = malloc(sizeof(int) * ((size_t)w + 1));
    if (!px || !xs) {
        free(px);
        free(xs);
        return -2;
    }
    /* Column spans once, not two divisions a pixel: output x averages
     * source columns xs[x] .. max(xs[x + 1], xs[x] + 1) - 1. */
    for (int x = 0; x <= w; x++)
        xs[x] = (int)((long long)x * in->width / w);
    for (int y = 0; y < h; y++) {
        int y0 = (int)((long long)y * in->height / h);
        int y1 = (int)((long long)(y + 1) * in->height / h);
        if (y1 <= y0)
            y1 = y0 + 1;
        for (int x = 0; x < w; x++) {
            int x0 = xs[x], x1 = xs[x + 1] > x0 ? xs[x + 1] : x0 + 1;
            unsigned sum[3] = {0, 0, 0};
            for (int yy = y0; yy < y1; yy++) {
                const uint8_t *p = in->rgb + ((size_t)yy * (size_t)in->width + (size_t)x0) * 3;
                for (int xx = x0; xx < x1; xx++, p += 3) {
                    sum[0] += p[0];
                    sum[1] += p[1];
                    sum[2] += p[2];
                }
            }
            unsigned n = (unsigned)((y1 - y0) * (x1 - x0));
            uint8_t *o = px + ((size_t)y * (size_t)w + (size_t)x) * 3;
            for (int c = 0; c < 3; c++)
                o[c] = (uint8_t)((sum[c] + n / 2) / n);
        }
    }
    free(xs);
    *out = (struct image){w, h, w, h, px};
    return 0;
}

int image_lowres(const struct image *in, int side, struct image *out)
{
    memset(out, 0, sizeof *out);
    if (!valid(in) || side <= 0)
        return -1;
    int s = in->width < in->height ? in->width : in->height;
    if (s <= side) {
        size_t bytes = (size_t)in->width * (size_t)in->height * 3;
        uint8_t *px = alloc_rgb(in->width, in->height);
        if (!px)
            return -2;
        memcpy(px, in->rgb, bytes);
        *out = (struct image){in->width, in->height, in->width, in->height, px};
        return 0;
    }
    int w = (int)(((long long)in->width * side + s / 2) / s);
    int h = (int)(((long long)in->height * side + s / 2) / s);
    return image_shrink(in, w < 1 ? 1 : w, h < 1 ? 1 : h, out);
}

int image_grey_stretch(const struct image *in, struct image *out)
{
    memset(out, 0, sizeof *out);
    if (!valid(in))
        return -1;
    size_t n = (size_t)in->width * (size_t)in->height;
    uint8_t *px = alloc_rgb(in->width, in->height);
    if (!px)
        return -2;
    size_t hist[256] = {0};
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = in->rgb + i * 3;
        /* BT.601 luma in 16-bit fixed point, as PIL's "L" conversion. */
        uint8_t l = (uint8_t)((p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u) >> 16);
        px[i * 3] = l;
        hist[l]++;
    }
    /* Clip 1 % at each end: lo/hi are the first levels past the cut. */
    size_t cut = n / 100, acc = 0;
    int lo = 0, hi = 255;
    while (lo < 255 && acc + hist[lo] <= cut)
        acc += hist[lo++];
    acc = 0;
    while (hi > 0 && acc + hist[hi] <= cut)
        acc += hist[hi--];
    uint8_t map[256];
    for (int v = 0; v < 256; v++) {
        if (hi <= lo) {
            map[v] = (uint8_t)v; /* flat picture: nothing to stretch */
            continue;
        }
        int m = (int)((v - lo) * 255L / (hi - lo));
        map[v] = (uint8_t)(m < 0 ? 0 : m > 255 ? 255 : m);
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t g = map[px[i * 3]];
        px[i * 3] = px[i * 3 + 1] = px[i * 3 + 2] = g;
    }
    *out = (struct image){in->width, in->height, in->width, in->height, px};
    return 0;
}
