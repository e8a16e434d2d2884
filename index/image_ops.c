/* image_ops.c: pixel-level operations on decoded images: crop (box given in
 * original coordinates), rotation, EXIF orientation, free.
 * Return codes: 0 ok, -1 invalid/empty input, -2 out of memory. */
#include "index/image.h"
#include "index/decode_formats.h"

#include <stdlib.h>
#include <string.h>

static uint8_t *image_alloc(int w, int h)
{
    if (w <= 0 || h <= 0 || (size_t)w > SIZE_MAX / 3 / (size_t)h)
        return NULL;
    return malloc((size_t)w * (size_t)h * 3);
}

static int image_valid(const struct image *in)
{
    return in && in->rgb && in->width > 0 && in->height > 0;
}

/* Maps an original coordinate to the decoded grid; floor for starts, ceil
 * for ends, so a box never loses its border pixels to rounding. */
static long scale_coord(long v, int decoded, int orig, int round_up)
{
    if (orig <= 0 || orig == decoded)
        return v;
    long long num = (long long)v * decoded;
    long long q = num / orig;
    if (round_up && num % orig)
        q++;
    return (long)q;
}

static long clampl(long v, long lo, long hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

int image_crop(const struct image *in, int x1, int y1, int x2, int y2, struct image *out)
{
    memset(out, 0, sizeof(*out));
    if (!image_valid(in))
        return -1;
    int ow = in->orig_width > 0 ? in->orig_width : in->width;
    int oh = in->orig_height > 0 ? in->orig_height : in->height;
    long ox1 = clampl(x1, 0, ow), ox2 = clampl(x2, 0, ow);
    long oy1 = clampl(y1, 0, oh), oy2 = clampl(y2, 0, oh);
    if (ox2 <= ox1 || oy2 <= oy1)
        return -1;
    long dx1 = clampl(scale_coord(ox1, in->width, ow, 0), 0, in->width);
    long dx2 = clampl(scale_coord(ox2, in->width, ow, 1), 0, in->width);
    long dy1 = clampl(scale_coord(oy1, in->height, oh, 0), 0, in->height);
    long dy2 = clampl(scale_coord(oy2, in->height, oh, 1), 0, in->height);
    if (dx2 <= dx1 || dy2 <= dy1)
        return -1;
    int w = (int)(dx2 - dx1), h = (int)(dy2 - dy1);
    uint8_t *rgb = image_alloc(w, h);
    if (!rgb)
        return -2;
    for (int y = 0; y < h; y++)
        memcpy(rgb + (size_t)y * w * 3, in->rgb + ((size_t)(dy1 + y) * in->width + (size_t)dx1) * 3,
               (size_t)w * 3);
    out->rgb = rgb;
    out->width = w;
    out->height = h;
    out->orig_width = (int)(ox2 - ox1);
    out->orig_height = (int)(oy2 - oy1);
    return 0;
}

/* Source coordinates of destination pixel (dx, dy) for EXIF orientation o,
 * where the source is w x h. 5..8 swap the axes. */
static void orient_src(int o, int w, int h, int dx, int dy, int *sx, int *sy)
{
    switch (o) {
    case 2: /* mirror horizontal */
        *sx = w - 1 - dx;
        *sy = dy;
        break;
    case 3: /* rotate 180 */
        *sx = w - 1 - dx;
        *sy = h - 1 - dy;
        break;
    case 4: /* mirror vertical */
        *sx = dx;
        *sy = h - 1 - dy;
        break;
    case 5: /* transpose */
        *sx = dy;
        *sy = dx;
        break;
    case 6: /* rotate 90 cw */
        *sx = dy;
        *sy = h - 1 - dx;
        break;
    case 7: /* transverse */
        *sx = w - 1 - dy;
        *sy = h - 1 - dx;
        break;
    case 8: /* rotate 270 cw */
        *sx = w - 1 - dy;
        *sy = dx;
        break;
    default:
        *sx = dx;
        *sy = dy;
        break;
    }
}

/* Writes `in` transformed by orientation o into a new buffer. */
static int orient_copy(const struct image *in, int o, struct image *out)
{
    int swap = o >= 5 && o <= 8;
    int w = swap ? in->height : in->width, h = swap ? in->width : in->height;
    uint8_t *rgb = image_alloc(w, h);
    if (!rgb)
        return -2;
    for (int dy = 0; dy < h; dy++) {
        uint8_t *d = rgb + (size_t)dy * w * 3;
        for (int dx = 0; dx < w; dx++, d += 3) {
            int sx, sy;
            orient_src(o, in->width, in->height, dx, dy, &sx, &sy);
            const uint8_t *s = in->rgb + ((size_t)sy * in->width + (size_t)sx) * 3;
            d[0] = s[0];
            d[1] = s[1];
            d[2] = s[2];
        }
    }
    out->rgb = rgb;
    out->width = w;
    out->height = h;
    out->orig_width = swap ? in->orig_height : in->orig_width;
    out->orig_height = swap ? in->orig_width : in->orig_height;
    return 0;
}

int image_rotate(const struct image *in, int quarter_turns, struct image *out)
{
    /* Clockwise quarter turns as EXIF orientations: 0 -> 1, 1 -> 6, 2 -> 3, 3 -> 8. */
    static const int as_orientation[4] = {1, 6, 3, 8};
    memset(out, 0, sizeof(*out));
    if (!image_valid(in))
        return -1;
    int q = ((quarter_turns % 4) + 4) % 4;
    return orient_copy(in, as_orientation[q], out);
}

int image_orient(struct image *img, int orientation)
{
    if (orientation < 2 || orientation > 8)
        return 0;
    struct image tmp = {0};
    if (orient_copy(img, orientation, &tmp) != 0)
        return -1;
    free(img->rgb);
    *img = tmp;
    return 0;
}

void image_free(struct image *img)
{
    if (!img)
        return;
    free(img->rgb);
    memset(img, 0, sizeof(*img));
}
