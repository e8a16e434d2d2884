/* image.h: the one decoded-image type every loader produces, and the entry
 * point that sniffs the format from the bytes. */
#ifndef IMGSEARCH_IMAGE_H
#define IMGSEARCH_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* Packed RGB8, row-major, width*3 bytes a row. `orig_width`/`orig_height`
 * are the picture's size after EXIF orientation, before any decode-time
 * downscaling; `width`/`height` are what `rgb` holds (smaller when the
 * decoder used DCT scaling to land near decode_limits.target_side). */
struct image {
    int width, height;
    int orig_width, orig_height;
    uint8_t *rgb;
};

enum image_format { IMG_UNKNOWN = 0, IMG_JPEG, IMG_PNG, IMG_BMP, IMG_WEBP };

enum decode_status {
    DECODE_OK = 0,
    DECODE_UNSUPPORTED, /* not a format we read */
    DECODE_CORRUPT,     /* truncated or malformed */
    DECODE_TOO_SMALL,   /* shortest side < min_short_side */
    DECODE_TOO_LARGE,   /* longest side > max_long_side, or pixels > max_pixels */
    DECODE_NOMEM,
};

struct decode_limits {
    int min_short_side; /* inclusive: v2 65, v1 100 */
    int max_long_side;  /* inclusive: v2 4095, v1 2048 */
    int target_side;    /* decode downscaled while both sides stay >= this; 0 = full size */
};

enum image_format image_sniff(const uint8_t *buf, size_t len);
const char *image_format_name(enum image_format f);

/* Checks the header against `lim` before decoding anything, so a
 * decompression bomb costs nothing. On success `out` owns a malloc'd buffer. */
enum decode_status decode_image(const uint8_t *buf, size_t len, const struct decode_limits *lim,
                                struct image *out);
const char *decode_status_text(enum decode_status s);

/* Copies the region [x1,x2) x [y1,y2), given in original-image coordinates,
 * into `out` (scaled to the decoded size). Returns -1 on an empty region. */
int image_crop(const struct image *in, int x1, int y1, int x2, int y2, struct image *out);

/* Rotates by 90 * quarter_turns degrees clockwise into `out`. */
int image_rotate(const struct image *in, int quarter_turns, struct image *out);

void image_free(struct image *img);

#endif
