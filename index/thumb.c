/* thumb.c: thumbnails by area averaging (image_shrink), encoded with libjpeg-turbo's TurboJPEG. */
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>
#include "index/thumb.h"
#include "index/views.h"

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
    struct image small = {0};
    const uint8_t *px = img->rgb;
    if (w != img->width || h != img->height) {
        if (image_shrink(img, w, h, &small) != 0)
            return -1;
        px = small.rgb;
    }
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
    image_free(&small);
    return rc;
}
