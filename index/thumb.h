/* thumb.h: small JPEG thumbnails of stored items, for the web console. */
#ifndef IMGSEARCH_THUMB_H
#define IMGSEARCH_THUMB_H

#include <stddef.h>
#include <stdint.h>
#include "index/image.h"

/* Box-filters `img` so its longer side is at most max_side and encodes it as
 * a JPEG (quality 80). *out is malloc'd. 0 on success. */
int thumb_jpeg(const struct image *img, int max_side, uint8_t **out, size_t *len);

#endif
