/* decode_webp.c: WebP via libwebp's advanced API. The canvas size (VP8X
 * chunk, else the bitstream header) is checked before decoding; libwebp's
 * own scaler applies the same power-of-two reduction JPEG gets from DCT
 * scaling; alpha is composited over white. Animations are unsupported. */
#include "index/image.h"
#include "index/decode_formats.h"

#include <stdlib.h>
#include <string.h>

#include <webp/decode.h>

static uint32_t le24(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
}

/* An extended file's VP8X chunk declares the canvas; check it ourselves, as
 * libwebp wants to see the image chunk too before it reports features. */
static enum decode_status webp_check_vp8x(const uint8_t *buf, size_t len,
                                          const struct decode_limits *lim)
{
    if (len < 30 || memcmp(buf + 12, "VP8X", 4) != 0)
        return DECODE_OK;
    return decode_check_size(1 + (long)le24(buf + 24), 1 + (long)le24(buf + 27), lim);
}

static enum decode_status webp_status(VP8StatusCode s)
{
    switch (s) {
    case VP8_STATUS_OK:
        return DECODE_OK;
    case VP8_STATUS_OUT_OF_MEMORY:
        return DECODE_NOMEM;
    case VP8_STATUS_UNSUPPORTED_FEATURE:
        return DECODE_UNSUPPORTED;
    default:
        return DECODE_CORRUPT;
    }
}

enum decode_status decode_webp(const uint8_t *buf, size_t len, const struct decode_limits *lim,
                               struct image *out)
{
    WebPDecoderConfig cfg;
    uint8_t *px = NULL;
    enum decode_status st = webp_check_vp8x(buf, len, lim);
    if (st != DECODE_OK)
        goto fail;
    st = DECODE_NOMEM;
    if (!WebPInitDecoderConfig(&cfg))
        goto fail;
    st = webp_status(WebPGetFeatures(buf, len, &cfg.input));
    if (st != DECODE_OK)
        goto fail;
    st = DECODE_UNSUPPORTED;
    if (cfg.input.has_animation)
        goto fail;
    long w0 = cfg.input.width, h0 = cfg.input.height;
    st = decode_check_size(w0, h0, lim);
    if (st != DECODE_OK)
        goto fail;

    int d = decode_pick_scale(w0, h0, lim);
    long w = (w0 + d - 1) / d, h = (h0 + d - 1) / d;
    if (d > 1) {
        cfg.options.use_scaling = 1;
        cfg.options.scaled_width = (int)w;
        cfg.options.scaled_height = (int)h;
    }
    int ch = cfg.input.has_alpha ? 4 : 3;
    size_t size = (size_t)w * (size_t)h * (size_t)ch;
    px = malloc(size);
    st = DECODE_NOMEM;
    if (!px)
        goto fail;
    cfg.output.colorspace = ch == 4 ? MODE_RGBA : MODE_RGB;
    cfg.output.is_external_memory = 1;
    cfg.output.u.RGBA.rgba = px;
    cfg.output.u.RGBA.stride = (int)(w * ch);
    cfg.output.u.RGBA.size = size;
    st = webp_status(WebPDecode(buf, len, &cfg));
    WebPFreeDecBuffer(&cfg.output); /* no-op for external memory; keeps the API contract */
    if (st != DECODE_OK)
        goto fail;
    if (cfg.output.width != w || cfg.output.height != h) {
        st = DECODE_CORRUPT;
        goto fail;
    }
    if (ch == 4) {
        decode_rgba_over_white(px, (size_t)w * (size_t)h);
        uint8_t *shrunk = realloc(px, (size_t)w * (size_t)h * 3);
        if (shrunk)
            px = shrunk;
    }
    out->rgb = px;
    out->width = (int)w;
    out->height = (int)h;
    out->orig_width = (int)w0;
    out->orig_height = (int)h0;
    return DECODE_OK;

fail:
    free(px);
    memset(out, 0, sizeof(*out));
    return st;
}
