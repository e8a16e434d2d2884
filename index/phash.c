/* phash.c: 64-bit DCT perceptual hash. The image is box-averaged to a 32x32
 * grey thumbnail, DCT-II transformed, and the 8x8 lowest frequencies are
 * thresholded at their median: bit 63 is coefficient (0,0), then row-major
 * down to bit 0 = (7,7). Robust to rescaling and recompression, not to crops
 * or flips; the CNN descriptor covers those. */
#include "index/extract.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define THUMB 32
#define LOW 8

static void thumbnail(const struct image *img, double *g)
{
    for (int ty = 0; ty < THUMB; ty++) {
        int y0 = (int)((long)ty * img->height / THUMB);
        int y1 = (int)((long)(ty + 1) * img->height / THUMB);
        if (y1 <= y0)
            y1 = y0 + 1;
        for (int tx = 0; tx < THUMB; tx++) {
            int x0 = (int)((long)tx * img->width / THUMB);
            int x1 = (int)((long)(tx + 1) * img->width / THUMB);
            if (x1 <= x0)
                x1 = x0 + 1;
            double sum = 0.0;
            for (int y = y0; y < y1; y++) {
                const uint8_t *p = img->rgb + ((size_t)y * img->width + x0) * 3;
                for (int x = x0; x < x1; x++, p += 3)
                    sum += 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
            }
            g[ty * THUMB + tx] = sum / ((double)(y1 - y0) * (x1 - x0));
        }
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

uint64_t image_phash(const struct image *img)
{
    if (!img || !img->rgb || img->width <= 0 || img->height <= 0)
        return 0;
    double g[THUMB * THUMB], basis[LOW][THUMB], rows[LOW][THUMB], coef[LOW * LOW],
        sorted[LOW * LOW];
    thumbnail(img, g);
    for (int u = 0; u < LOW; u++)
        for (int x = 0; x < THUMB; x++)
            basis[u][x] = cos(M_PI * (2 * x + 1) * u / (2.0 * THUMB));
    /* Separable: DCT along x for each row (low u only), then along y. */
    for (int u = 0; u < LOW; u++)
        for (int y = 0; y < THUMB; y++) {
            double s = 0.0;
            for (int x = 0; x < THUMB; x++)
                s += basis[u][x] * g[y * THUMB + x];
            rows[u][y] = s;
        }
    for (int v = 0; v < LOW; v++)
        for (int u = 0; u < LOW; u++) {
            double s = 0.0;
            for (int y = 0; y < THUMB; y++)
                s += basis[v][y] * rows[u][y];
            coef[v * LOW + u] = s;
        }
    memcpy(sorted, coef, sizeof coef);
    qsort(sorted, LOW * LOW, sizeof(double), cmp_double);
    double median = 0.5 * (sorted[LOW * LOW / 2 - 1] + sorted[LOW * LOW / 2]);
    uint64_t h = 0;
    for (int i = 0; i < LOW * LOW; i++)
        if (coef[i] > median)
            h |= (uint64_t)1 << (63 - i);
    return h;
}
