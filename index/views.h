/* views.h: extra views of an image whose descriptors make search robust to
 * common copy edits: a low-resolution copy (thumbnails, blur, blockiness), a
 * grey contrast-stretched copy (colour grading, tints, black-and-white) and
 * an area shrink shared with the thumbnails. Measured in
 * docs/bench/quality.md. */
#ifndef IMGSEARCH_VIEWS_H
#define IMGSEARCH_VIEWS_H

#include "index/image.h"

/* The low-resolution view's shortest side: near the API's 65 px minimum,
 * so a thumbnail-sized query meets a stored view of about its own detail. */
#define VIEW_LOWRES_SIDE 96

/* Area-averages `in` down to w x h (each output pixel is the mean of the
 * source pixels it covers). 0 ok, -1 invalid, -2 out of memory. */
int image_shrink(const struct image *in, int w, int h, struct image *out);

/* `in` shrunk so its shortest side is `side` (a copy when already smaller). */
int image_lowres(const struct image *in, int side, struct image *out);

/* Luma (BT.601) with 1 % of the pixels clipped at each end and the rest
 * stretched to 0..255, written back as grey RGB. */
int image_grey_stretch(const struct image *in, struct image *out);

#endif
