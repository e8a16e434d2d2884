/* decode_jpeg.c: JPEG via libjpeg-turbo's libjpeg API. Reads the header
 * first (limits are checked before any pixel buffer exists), picks a DCT
 * scale factor that keeps the shorter side >= target_side, decodes to RGB
 * (YCbCr, grayscale, CMYK and YCCK inputs) and applies EXIF orientation.
 * libjpeg errors longjmp back here; a premature end of data, which libjpeg
 * only warns about and pads with grey, is treated as corruption. */
#include "index/image.h"
#include "index/decode_formats.h"

#include <setjmp.h>
#include <stdio.h> /* jpeglib.h needs FILE */
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

#define JPEG_MAX_SCANS 256         /* progressive files need ~10; more is a CPU bomb */
#define JPEG_MAX_WARNINGS 100      /* each corrupt MCU warns; many means garbage */
#define JPEG_MAX_MEMORY (1L << 30) /* libjpeg's own working memory */

struct jpeg_ctx {
    struct jpeg_error_mgr pub; /* first: libjpeg hands us a pointer to it */
    struct jpeg_progress_mgr progress;
    jmp_buf jmp;
    enum decode_status fail; /* status to return after the longjmp */
    int warnings;
};

static void jpeg_on_error(j_common_ptr cinfo)
{
    struct jpeg_ctx *c = (struct jpeg_ctx *)cinfo->err;
    switch (c->pub.msg_code) {
    case JERR_OUT_OF_MEMORY:
        c->fail = DECODE_NOMEM;
        break;
    case JERR_SOF_UNSUPPORTED: /* lossless, hierarchical */
    case JERR_BAD_PRECISION:   /* 12/16-bit samples */
    case JERR_ARITH_NOTIMPL:
    case JERR_NOT_COMPILED:
        c->fail = DECODE_UNSUPPORTED;
        break;
    default:
        c->fail = DECODE_CORRUPT;
    }
    longjmp(c->jmp, 1);
}

static void jpeg_on_message(j_common_ptr cinfo, int level)
{
    struct jpeg_ctx *c = (struct jpeg_ctx *)cinfo->err;
    if (level >= 0)
        return; /* trace messages */
    /* Truncated data decodes to grey filler: reject instead. */
    if (c->pub.msg_code == JWRN_JPEG_EOF || ++c->warnings > JPEG_MAX_WARNINGS) {
        c->fail = DECODE_CORRUPT;
        longjmp(c->jmp, 1);
    }
}

static void jpeg_on_output(j_common_ptr cinfo)
{
    (void)cinfo; /* never print to stderr */
}

static void jpeg_on_progress(j_common_ptr cinfo)
{
    struct jpeg_ctx *c = (struct jpeg_ctx *)cinfo->err;
    if (cinfo->is_decompressor && ((j_decompress_ptr)cinfo)->input_scan_number > JPEG_MAX_SCANS) {
        c->fail = DECODE_CORRUPT;
        longjmp(c->jmp, 1);
    }
}

static unsigned exif_u16(const uint8_t *p, int be)
{
    return be ? (unsigned)(p[0] << 8 | p[1]) : (unsigned)(p[1] << 8 | p[0]);
}

static uint32_t exif_u32(const uint8_t *p, int be)
{
    return be ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
              : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* Orientation (1..8) from an APP1 payload, or 1 when absent or malformed.
 * Only IFD0 is read; every offset is bounds-checked against `len`. */
static int exif_orientation(const uint8_t *p, size_t len)
{
    if (len < 6 + 8 || memcmp(p, "Exif\0\0", 6) != 0)
        return 1;
    const uint8_t *t = p + 6; /* TIFF header; offsets are relative to it */
    size_t tlen = len - 6;
    int be;
    if (t[0] == 'I' && t[1] == 'I')
        be = 0;
    else if (t[0] == 'M' && t[1] == 'M')
        be = 1;
    else
        return 1;
    if (exif_u16(t + 2, be) != 42)
        return 1;
    uint32_t ifd = exif_u32(t + 4, be);
    if (ifd > tlen || tlen - ifd < 2)
        return 1;
    unsigned count = exif_u16(t + ifd, be);
    size_t pos = (size_t)ifd + 2;
    for (unsigned i = 0; i < count; i++, pos += 12) {
        if (tlen - pos < 12)
            return 1;
        const uint8_t *e = t + pos;
        if (exif_u16(e, be) != 0x0112)
            continue;
        if (exif_u16(e + 2, be) != 3 || exif_u32(e + 4, be) != 1) /* one SHORT */
            return 1;
        unsigned v = exif_u16(e + 8, be);
        return v >= 1 && v <= 8 ? (int)v : 1;
    }
    return 1;
}

static int jpeg_orientation(j_decompress_ptr cinfo)
{
    for (jpeg_saved_marker_ptr m = cinfo->marker_list; m; m = m->next) {
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 &&
            memcmp(m->data, "Exif\0\0", 6) == 0)
            return exif_orientation(m->data, m->data_length);
    }
    return 1;
}

/* CMYK to RGB in place (4 -> 3 bytes a pixel). Adobe writes inverted
 * CMYK, which libjpeg passes through as stored. */
static void cmyk_to_rgb(uint8_t *px, size_t npix, int inverted)
{
    for (size_t i = 0; i < npix; i++) {
        const uint8_t *s = px + 4 * i;
        unsigned c = s[0], m = s[1], y = s[2], k = s[3];
        if (!inverted) {
            c = 255 - c;
            m = 255 - m;
            y = 255 - y;
            k = 255 - k;
        }
        uint8_t *d = px + 3 * i;
        d[0] = (uint8_t)((c * k + 127) / 255);
        d[1] = (uint8_t)((m * k + 127) / 255);
        d[2] = (uint8_t)((y * k + 127) / 255);
    }
}

enum decode_status decode_jpeg(const uint8_t *buf, size_t len, const struct decode_limits *lim,
                               struct image *out)
{
    struct jpeg_decompress_struct cinfo;
    struct jpeg_ctx ctx;
    /* volatile: written after setjmp and read on the longjmp path. */
    uint8_t *volatile rgb = NULL;
    volatile enum decode_status st = DECODE_CORRUPT;

    memset(&ctx, 0, sizeof(ctx));
    memset(&cinfo, 0, sizeof(cinfo)); /* so the fail path may destroy it early */
    cinfo.err = jpeg_std_error(&ctx.pub);
    ctx.pub.error_exit = jpeg_on_error;
    ctx.pub.emit_message = jpeg_on_message;
    ctx.pub.output_message = jpeg_on_output;
    if (setjmp(ctx.jmp)) {
        st = ctx.fail;
        goto fail;
    }
    jpeg_create_decompress(&cinfo);
    ctx.progress.progress_monitor = jpeg_on_progress;
    cinfo.progress = &ctx.progress;
    cinfo.mem->max_memory_to_use = JPEG_MAX_MEMORY;
    jpeg_mem_src(&cinfo, buf, (unsigned long)len);
    jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
    if (jpeg_read_header(&cinfo, TRUE) != JPEG_HEADER_OK)
        goto fail;

    st = decode_check_size(cinfo.image_width, cinfo.image_height, lim);
    if (st != DECODE_OK)
        goto fail;
    st = DECODE_CORRUPT;

    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    cinfo.scale_num = 1;
    cinfo.scale_denom = (unsigned)decode_pick_scale(cinfo.image_width, cinfo.image_height, lim);
    jpeg_start_decompress(&cinfo);

    int ncomp = cinfo.output_components;
    if (ncomp != (cmyk ? 4 : 3))
        goto fail;
    size_t w = cinfo.output_width, h = cinfo.output_height;
    if (w == 0 || h == 0)
        goto fail;
    rgb = malloc(w * h * (size_t)ncomp);
    if (!rgb) {
        st = DECODE_NOMEM;
        goto fail;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = rgb + (size_t)cinfo.output_scanline * w * (size_t)ncomp;
        if (jpeg_read_scanlines(&cinfo, &row, 1) != 1)
            goto fail; /* suspension cannot happen with a memory source */
    }
    if (cmyk)
        cmyk_to_rgb(rgb, w * h, cinfo.saw_Adobe_marker);

    out->rgb = rgb;
    out->width = (int)w;
    out->height = (int)h;
    out->orig_width = (int)cinfo.image_width;
    out->orig_height = (int)cinfo.image_height;
    rgb = NULL;
    /* Not jpeg_finish_decompress: it would also demand the EOI marker,
     * which many otherwise complete files lack. */
    int orientation = jpeg_orientation(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    if (image_orient(out, orientation) != 0) {
        image_free(out);
        return DECODE_NOMEM;
    }
    return DECODE_OK;

fail:
    jpeg_destroy_decompress(&cinfo);
    free(rgb);
    memset(out, 0, sizeof(*out));
    return st;
}
