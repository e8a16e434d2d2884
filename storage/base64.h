/* base64.h: strict, fast base64 decoding of image payloads. */
#ifndef IMGSEARCH_BASE64_H
#define IMGSEARCH_BASE64_H

#include <stddef.h>
#include <stdint.h>

enum b64_status { B64_OK = 0, B64_INVALID, B64_TOO_LARGE, B64_NOMEM };

/* Decodes `in` (standard alphabet, '=' padding optional at the very end).
 * Tolerated: ASCII whitespace anywhere, and a leading "data:image/...;base64,"
 * prefix. Anything else is B64_INVALID. Output larger than max_out is
 * B64_TOO_LARGE (checked before allocating). `*out` is malloc'd. */
enum b64_status base64_decode(const char *in, size_t len, size_t max_out, uint8_t **out,
                              size_t *out_len);

/* Encodes into a malloc'd NUL-terminated string. */
char *base64_encode(const uint8_t *in, size_t len);

#endif
