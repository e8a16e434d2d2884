/* thumb.c: thumbnails by area averaging (each output pixel is the mean of
 * the source pixels it covers), encoded with libjpeg-turbo's TurboJPEG. */
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>
#include "index/thumb.h"

static uint8_t *shrink(const struct image *img, int w, int h)
{
    uint8_t *out = malloc((size_t)w * (size_t)h * 3);
    if (!out)
        return NULL;
    for (int y = 0; y < h; y++) {
        int y0 = (int)((long long)y * img->height / h);
        int y1 = (int)((long long)(y + 1) * img->height / h);
        if (y1 <= y0)
            y1 = y0 + 1;
        for (int x = 0; x < w; x++) {
            int x0 = (int)((long long)x * img->width / w);
            int x1 = (int)((long long)(x + 1) * img->width / w);
            if (x1 <= x0)
                x1 = x0 + 1;
            unsigned sum[3] = {0, 0, 0};
            for (int yy = y0; yy < y1; yy++) {
                const uint8_t *p = img->rgb + ((size_t)yy * (size_t)img->width + (size_t)x0) * 3;
                for (int xx = x0; xx < x1; xx++, p += 3) {
                    sum[0] += p[0];
                    sum[1] += p[1];
                    sum[2] += p[2];
                }
            }
            unsigned n = (unsigned)((y1 - y0) * (x1 - x0));
            uint8_t *o = out + ((size_t)y * (size_t)w + (size_t)x) * 3;
            for (int c = 0; c < 3; c++)
                o[c] = (uint8_t)((sum[c] + n / 2) / n);
        }
    }
    return out;
}

int thumb_jpeg(const struct image *img, int max_side, uint8_t **out, size_t *len)
{
    if (!img->rgb || img->width <= 0 || img->height <= 0 || max_side <= 0)
        return -1;
    int w = img->width, h = img->height;
    if (w > max_side || h > max_side) {
        if (w >= h) {
            h = (int)((long long)h * max_side / w);
            w = max_side;
        } else {
            w = (int)((long long)w * max_side / h);
            h = max_side;
        }
        if (w < 1)
            w = 1;
        if (h < 1)
            h = 1;
    }
    uint8_t *px = (w == img->width && h == img->height) ? img->rgb : shrink(img, w, h);
    if (!px)
        return -1;
    tjhandle tj = tjInitCompress();
    unsigned char *jpeg = NULL;
    unsigned long jlen = 0;
    int rc = -1;
    if (tj &&
        tjCompress2(tj, px, w, 0, h, TJPF_RGB, &jpeg, &jlen, TJSAMP_420, 80, TJFLAG_FASTDCT) == 0) {
        *out = malloc(jlen);
        if (*out) {
            memcpy(*out, jpeg, jlen);
            *len = jlen;
            rc = 0;
        }
    }
    tjFree(jpeg);
    if (tj)
        tjDestroy(tj);
    if (px != img->rgb)
        free(px);
    return rc;
}
