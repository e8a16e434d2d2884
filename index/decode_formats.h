/* decode_formats.h: private interface between decode.c (sniffing, limits,
 * dispatch) and the per-format decoders decode_*.c. Not for other modules. */
#ifndef IMGSEARCH_DECODE_FORMATS_H
#define IMGSEARCH_DECODE_FORMATS_H

#include "index/image.h"

/* Side cap applied even when a caller passes no (or a zero) max_long_side,
 * so no input can make a decoder allocate more than ~800 MB. */
#define DECODE_HARD_MAX_SIDE 16384

/* Each decoder validates the header against `lim` with decode_check_size()
 * before allocating pixels, fills `out` on DECODE_OK and leaves it zeroed
 * otherwise. `lim` is never NULL here. */
enum decode_status decode_jpeg(const uint8_t *buf, size_t len, const struct decode_limits *lim,
                               struct image *out);
enum decode_status decode_png(const uint8_t *buf, size_t len, const struct decode_limits *lim,
                              struct image *out);
enum decode_status decode_bmp(const uint8_t *buf, size_t len, const struct decode_limits *lim,
                              struct image *out);
enum decode_status decode_webp(const uint8_t *buf, size_t len, const struct decode_limits *lim,
                               struct image *out);

/* Shared limit check on header dimensions (orientation does not matter:
 * it only swaps the sides). */
enum decode_status decode_check_size(long width, long height, const struct decode_limits *lim);

/* Power-of-two reduction (1, 2, 4 or 8) that keeps the shorter side
 * >= lim->target_side; 1 when target_side is 0. */
int decode_pick_scale(long width, long height, const struct decode_limits *lim);

/* Composites packed RGBA (premultiplied = 0) over white into packed RGB, in
 * place: `px` holds npix*4 bytes on entry and npix*3 meaningful ones after. */
void decode_rgba_over_white(uint8_t *px, size_t npix);

/* Applies EXIF orientation 1..8 to `img` (replacing its buffer), swapping
 * width/height and orig_width/orig_height for 5..8. Returns 0 or -1 (NOMEM). */
int image_orient(struct image *img, int orientation);

#endif
