/* decode_bmp.c: our own BMP reader. Handles BITMAPCOREHEADER (OS/2 1.x),
 * BITMAPINFOHEADER and its V2..V5 extensions; 1/4/8-bit palettes, 16/24/32
 * bits with BI_RGB or BI_BITFIELDS; bottom-up and top-down rows. RLE and
 * embedded JPEG/PNG are refused as unsupported. Alpha is ignored, as most
 * viewers do. All sizes are checked before reading; nothing trusts the
 * header's own size fields. */
#include "index/image.h"
#include "index/decode_formats.h"

#include <stdlib.h>
#include <string.h>

#define BMP_FILE_HDR 14

enum {
    BI_RGB = 0,
    BI_RLE8 = 1,
    BI_RLE4 = 2,
    BI_BITFIELDS = 3,
    BI_JPEG = 4,
    BI_PNG = 5,
    BI_ALPHABITFIELDS = 6
};

struct bmp_field {
    uint32_t mask;
    int shift, bits;
};

struct bmp {
    long width, height;
    int top_down, bpp;
    uint32_t compression, colors_used;
    size_t data_off, pal_off;
    int pal_entry; /* 3 (core) or 4 bytes */
    uint32_t masks[3];
    int has_masks;
};

static uint32_t le16(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static enum decode_status bmp_parse_header(const uint8_t *b, size_t len, struct bmp *m)
{
    memset(m, 0, sizeof(*m));
    if (len < BMP_FILE_HDR + 4)
        return DECODE_CORRUPT;
    m->data_off = le32(b + 10);
    uint32_t dib = le32(b + 14);
    if (dib != 12 && dib != 40 && dib != 52 && dib != 56 && dib != 108 && dib != 124)
        return DECODE_UNSUPPORTED; /* OS/2 2.x (64) and unknown variants */
    if (len - BMP_FILE_HDR < dib)
        return DECODE_CORRUPT;
    uint32_t planes;
    if (dib == 12) {
        m->width = le16(b + 18);
        m->height = le16(b + 20);
        planes = le16(b + 22);
        m->bpp = (int)le16(b + 24);
        m->compression = BI_RGB;
        m->pal_entry = 3;
        m->pal_off = BMP_FILE_HDR + dib;
    } else {
        int32_t h = (int32_t)le32(b + 22);
        m->width = (int32_t)le32(b + 18);
        if (h == INT32_MIN)
            return DECODE_CORRUPT;
        m->top_down = h < 0;
        m->height = h < 0 ? -(long)h : h;
        planes = le16(b + 26);
        m->bpp = (int)le16(b + 28);
        m->compression = le32(b + 30);
        m->colors_used = le32(b + 46);
        m->pal_entry = 4;
        m->pal_off = BMP_FILE_HDR + dib;
        if (m->compression == BI_BITFIELDS || m->compression == BI_ALPHABITFIELDS) {
            /* With the 40-byte header the masks follow it; later headers hold them. */
            size_t at = BMP_FILE_HDR + 40;
            if (dib == 40) {
                size_t n = m->compression == BI_ALPHABITFIELDS ? 16 : 12;
                if (len - at < n)
                    return DECODE_CORRUPT;
                m->pal_off = at + n;
            }
            for (int i = 0; i < 3; i++)
                m->masks[i] = le32(b + at + 4 * i);
            m->has_masks = 1;
        }
    }
    if (planes != 1)
        return DECODE_CORRUPT;
    switch (m->compression) {
    case BI_RGB:
        break;
    case BI_BITFIELDS:
    case BI_ALPHABITFIELDS:
        if (m->bpp != 16 && m->bpp != 32)
            return DECODE_CORRUPT;
        break;
    case BI_RLE8:
    case BI_RLE4:
    case BI_JPEG:
    case BI_PNG:
        return DECODE_UNSUPPORTED;
    default:
        return DECODE_CORRUPT;
    }
    if (m->bpp != 1 && m->bpp != 4 && m->bpp != 8 && m->bpp != 16 && m->bpp != 24 && m->bpp != 32)
        return DECODE_UNSUPPORTED;
    return DECODE_OK;
}

/* A channel mask must be one contiguous run of bits (or empty). */
static int bmp_field_init(uint32_t mask, struct bmp_field *f)
{
    f->mask = mask;
    f->shift = f->bits = 0;
    if (!mask)
        return 0;
    while (!(mask & 1)) {
        mask >>= 1;
        f->shift++;
    }
    while (mask & 1) {
        mask >>= 1;
        f->bits++;
    }
    return mask ? -1 : 0;
}

static uint8_t bmp_field_get(const struct bmp_field *f, uint32_t px)
{
    if (!f->bits)
        return 0;
    uint32_t v = (px & f->mask) >> f->shift;
    if (f->bits >= 8)
        return (uint8_t)(v >> (f->bits - 8));
    return (uint8_t)(v * 255u / ((1u << f->bits) - 1));
}

static void bmp_row_palette(const uint8_t *s, int bpp, long w, const uint8_t pal[256][3],
                            uint8_t *d)
{
    unsigned mask = (1u << bpp) - 1;
    for (long x = 0; x < w; x++, d += 3) {
        size_t bit = (size_t)x * (size_t)bpp;
        unsigned idx = (s[bit / 8] >> (8 - bpp - bit % 8)) & mask;
        memcpy(d, pal[idx], 3);
    }
}

static void bmp_row_fields(const uint8_t *s, int bpp, long w, const struct bmp_field f[3],
                           uint8_t *d)
{
    for (long x = 0; x < w; x++, d += 3) {
        uint32_t px = bpp == 16 ? le16(s + 2 * x) : le32(s + 4 * x);
        d[0] = bmp_field_get(&f[0], px);
        d[1] = bmp_field_get(&f[1], px);
        d[2] = bmp_field_get(&f[2], px);
    }
}

static void bmp_row_bgr(const uint8_t *s, int step, long w, uint8_t *d)
{
    for (long x = 0; x < w; x++, s += step, d += 3) {
        d[0] = s[2];
        d[1] = s[1];
        d[2] = s[0];
    }
}

/* Reads the palette that sits between the headers and the pixel data;
 * entries the file does not hold stay black. */
static enum decode_status bmp_read_palette(const uint8_t *b, size_t len, const struct bmp *m,
                                           uint8_t pal[256][3])
{
    memset(pal, 0, 256 * 3);
    uint32_t n = m->colors_used ? m->colors_used : 1u << m->bpp;
    if (n > (1u << m->bpp))
        n = 1u << m->bpp;
    size_t e = (size_t)m->pal_entry;
    if (m->pal_off > len || (len - m->pal_off) / e < n)
        return DECODE_CORRUPT;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *p = b + m->pal_off + i * e;
        pal[i][0] = p[2];
        pal[i][1] = p[1];
        pal[i][2] = p[0];
    }
    return DECODE_OK;
}

enum decode_status decode_bmp(const uint8_t *buf, size_t len, const struct decode_limits *lim,
                              struct image *out)
{
    struct bmp m;
    uint8_t pal[256][3];
    struct bmp_field f[3] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}};
    uint8_t *rgb = NULL;
    enum decode_status st = bmp_parse_header(buf, len, &m);
    if (st != DECODE_OK)
        goto fail;
    st = decode_check_size(m.width, m.height, lim);
    if (st != DECODE_OK)
        goto fail;

    /* Sides are <= DECODE_HARD_MAX_SIDE now, so none of this can overflow. */
    size_t w = (size_t)m.width, h = (size_t)m.height;
    size_t stride = (w * (size_t)m.bpp + 31) / 32 * 4;
    size_t last_row = (w * (size_t)m.bpp + 7) / 8; /* tolerate a missing final pad */
    st = DECODE_CORRUPT;
    if (m.data_off > len || len - m.data_off < stride * (h - 1) + last_row)
        goto fail;
    if (m.bpp <= 8 && bmp_read_palette(buf, len, &m, pal) != DECODE_OK)
        goto fail;
    if (m.bpp == 16 || m.bpp == 32) {
        uint32_t r = 0x00FF0000u, g = 0x0000FF00u, b = 0x000000FFu;
        if (m.has_masks) {
            r = m.masks[0];
            g = m.masks[1];
            b = m.masks[2];
        } else if (m.bpp == 16) {
            r = 0x7C00u; /* 5-5-5 */
            g = 0x03E0u;
            b = 0x001Fu;
        }
        if (bmp_field_init(r, &f[0]) || bmp_field_init(g, &f[1]) || bmp_field_init(b, &f[2]))
            goto fail;
    }

    rgb = malloc(w * h * 3);
    if (!rgb) {
        st = DECODE_NOMEM;
        goto fail;
    }
    for (size_t y = 0; y < h; y++) {
        const uint8_t *s = buf + m.data_off + (m.top_down ? y : h - 1 - y) * stride;
        uint8_t *d = rgb + y * w * 3;
        if (m.bpp <= 8)
            bmp_row_palette(s, m.bpp, m.width, (const uint8_t(*)[3])pal, d);
        else if (m.bpp == 24)
            bmp_row_bgr(s, 3, m.width, d);
        else if (m.bpp == 32 && !m.has_masks)
            bmp_row_bgr(s, 4, m.width, d);
        else
            bmp_row_fields(s, m.bpp, m.width, f, d);
    }
    out->rgb = rgb;
    out->width = out->orig_width = (int)w;
    out->height = out->orig_height = (int)h;
    return DECODE_OK;

fail:
    free(rgb);
    memset(out, 0, sizeof(*out));
    return st;
}
