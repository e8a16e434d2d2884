/* decode.c: format sniffing, dispatch to the per-format decoders, and the
 * checks they share (size limits, DCT scale choice, alpha compositing).
 * Formats are recognised from magic bytes only, never from names. */
#include "index/image.h"
#include "index/decode_formats.h"

#include <string.h>

enum image_format image_sniff(const uint8_t *buf, size_t len)
{
    if (!buf)
        return IMG_UNKNOWN;
    if (len >= 3 && buf[0] == 0xFF && buf[1] == 0xD8 && buf[2] == 0xFF)
        return IMG_JPEG;
    if (len >= 8 && memcmp(buf, "\x89PNG\r\n\x1a\n", 8) == 0)
        return IMG_PNG;
    if (len >= 12 && memcmp(buf, "RIFF", 4) == 0 && memcmp(buf + 8, "WEBP", 4) == 0)
        return IMG_WEBP;
    if (len >= 2 && buf[0] == 'B' && buf[1] == 'M')
        return IMG_BMP;
    return IMG_UNKNOWN;
}

const char *image_format_name(enum image_format f)
{
    switch (f) {
    case IMG_JPEG:
        return "jpeg";
    case IMG_PNG:
        return "png";
    case IMG_BMP:
        return "bmp";
    case IMG_WEBP:
        return "webp";
    case IMG_UNKNOWN:
        break;
    }
    return "unknown";
}

const char *decode_status_text(enum decode_status s)
{
    switch (s) {
    case DECODE_OK:
        return "ok";
    case DECODE_UNSUPPORTED:
        return "unsupported image format";
    case DECODE_CORRUPT:
        return "image data is truncated or corrupt";
    case DECODE_TOO_SMALL:
        return "image is too small";
    case DECODE_TOO_LARGE:
        return "image is too large";
    case DECODE_NOMEM:
        return "out of memory while decoding image";
    }
    return "unknown decode status";
}

static int decode_max_side(const struct decode_limits *lim)
{
    if (lim->max_long_side <= 0 || lim->max_long_side > DECODE_HARD_MAX_SIDE)
        return DECODE_HARD_MAX_SIDE;
    return lim->max_long_side;
}

enum decode_status decode_check_size(long width, long height, const struct decode_limits *lim)
{
    if (width <= 0 || height <= 0)
        return DECODE_CORRUPT;
    long lo = width < height ? width : height;
    long hi = width < height ? height : width;
    /* Too large first: it is the check that protects us. */
    if (hi > decode_max_side(lim))
        return DECODE_TOO_LARGE;
    if (lo < lim->min_short_side)
        return DECODE_TOO_SMALL;
    return DECODE_OK;
}

int decode_pick_scale(long width, long height, const struct decode_limits *lim)
{
    long lo = width < height ? width : height;
    if (lim->target_side <= 0)
        return 1;
    for (int d = 8; d > 1; d /= 2) {
        /* libjpeg rounds scaled sizes up. */
        if ((lo + d - 1) / d >= lim->target_side)
            return d;
    }
    return 1;
}

void decode_rgba_over_white(uint8_t *px, size_t npix)
{
    /* Forward in place is safe: the write index 3i never passes the read 4i. */
    for (size_t i = 0; i < npix; i++) {
        const uint8_t *s = px + 4 * i;
        uint8_t *d = px + 3 * i;
        unsigned a = s[3], na = 255 - a;
        uint8_t r = (uint8_t)((s[0] * a + 255 * na + 127) / 255);
        uint8_t g = (uint8_t)((s[1] * a + 255 * na + 127) / 255);
        uint8_t b = (uint8_t)((s[2] * a + 255 * na + 127) / 255);
        d[0] = r;
        d[1] = g;
        d[2] = b;
    }
}

enum decode_status decode_image(const uint8_t *buf, size_t len, const struct decode_limits *lim,
                                struct image *out)
{
    static const struct decode_limits none = {0, 0, 0};
    memset(out, 0, sizeof(*out));
    if (!lim)
        lim = &none;
    switch (image_sniff(buf, len)) {
    case IMG_JPEG:
        return decode_jpeg(buf, len, lim, out);
    case IMG_PNG:
        return decode_png(buf, len, lim, out);
    case IMG_BMP:
        return decode_bmp(buf, len, lim, out);
    case IMG_WEBP:
        return decode_webp(buf, len, lim, out);
    case IMG_UNKNOWN:
        break;
    }
    return DECODE_UNSUPPORTED;
}
