/* decode_png.c: PNG via libpng. IHDR is read from the bytes before libpng
 * sees them, so oversized images are refused before any allocation; libpng
 * then expands palette, gray, tRNS and 16-bit samples to 8-bit RGB(A), and
 * alpha is composited over white. libpng errors longjmp back here. */
#include "index/image.h"
#include "index/decode_formats.h"

#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#define PNG_MAX_CHUNK (8u << 20) /* largest ancillary chunk libpng will inflate */
#define PNG_MAX_CHUNKS 1000      /* ancillary chunks kept; stops chunk floods */

struct png_src {
    const uint8_t *buf;
    size_t len, pos;
};

static void png_on_read(png_structp png, png_bytep dst, size_t n)
{
    struct png_src *s = png_get_io_ptr(png);
    if (s->len - s->pos < n)
        png_error(png, "truncated");
    memcpy(dst, s->buf + s->pos, n);
    s->pos += n;
}

static void png_on_error(png_structp png, png_const_charp msg)
{
    (void)msg;
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg; /* never print to stderr */
}

static uint32_t png_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

enum decode_status decode_png(const uint8_t *buf, size_t len, const struct decode_limits *lim,
                              struct image *out)
{
    png_structp png = NULL;
    png_infop info = NULL;
    struct png_src src = {buf, len, 0};
    uint8_t *volatile px = NULL; /* volatile: freed on the longjmp path */
    volatile enum decode_status st;

    /* Signature (8) + IHDR length (4) + "IHDR" (4) + width (4) + height (4). */
    if (len < 24 || png_be32(buf + 8) != 13 || memcmp(buf + 12, "IHDR", 4) != 0)
        return DECODE_CORRUPT;
    uint32_t w = png_be32(buf + 16), h = png_be32(buf + 20);
    if (w > 0x7FFFFFFFu || h > 0x7FFFFFFFu)
        return DECODE_CORRUPT;
    st = decode_check_size((long)w, (long)h, lim);
    if (st != DECODE_OK)
        return st;

    st = DECODE_NOMEM;
    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, png_on_error, png_on_warning);
    if (!png)
        goto fail;
    info = png_create_info_struct(png);
    if (!info)
        goto fail;
    st = DECODE_CORRUPT;
    if (setjmp(png_jmpbuf(png)))
        goto fail;
    /* Defence in depth: libpng enforces the same side limit itself. */
    png_set_user_limits(png, w, h);
    png_set_chunk_malloc_max(png, PNG_MAX_CHUNK);
    png_set_chunk_cache_max(png, PNG_MAX_CHUNKS);
    png_set_read_fn(png, &src, png_on_read);
    png_read_info(png, info);

    int depth = png_get_bit_depth(png, info);
    int ctype = png_get_color_type(png, info);
    if (png_get_image_width(png, info) != w || png_get_image_height(png, info) != h)
        goto fail;
    if (ctype == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS))
        png_set_tRNS_to_alpha(png);
    if (depth == 16)
        png_set_scale_16(png);
    if (ctype == PNG_COLOR_TYPE_GRAY || ctype == PNG_COLOR_TYPE_GRAY_ALPHA)
        png_set_gray_to_rgb(png);
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int ch = png_get_channels(png, info);
    if ((ch != 3 && ch != 4) || png_get_rowbytes(png, info) != (size_t)w * (size_t)ch)
        goto fail;
    size_t stride = (size_t)w * (size_t)ch;
    px = malloc(stride * h);
    if (!px) {
        st = DECODE_NOMEM;
        goto fail;
    }
    /* Row by row into the full buffer: interlaced passes refine it in place. */
    for (int p = 0; p < passes; p++)
        for (uint32_t y = 0; y < h; y++)
            png_read_row(png, px + (size_t)y * stride, NULL);

    if (ch == 4) {
        decode_rgba_over_white(px, (size_t)w * h);
        uint8_t *shrunk = realloc(px, (size_t)w * h * 3);
        if (shrunk)
            px = shrunk;
    }
    png_destroy_read_struct(&png, &info, NULL);
    out->rgb = px;
    out->width = out->orig_width = (int)w;
    out->height = out->orig_height = (int)h;
    return DECODE_OK;

fail:
    if (png)
        png_destroy_read_struct(&png, info ? &info : NULL, NULL);
    free(px);
    memset(out, 0, sizeof(*out));
    return st;
}
