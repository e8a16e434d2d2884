/* fetch.h: downloads an http(s) image URL under the [fetch] rules: timeouts,
 * a redirect limit, a size cap, an image content check, and the allow/deny
 * address policy applied to every connection curl opens. */
#ifndef IMGSEARCH_FETCH_H
#define IMGSEARCH_FETCH_H

#include <stddef.h>
#include <sys/socket.h>
#include "config/config.h"
#include "storage/source.h"

/* Status mapping:
 *   not http/https (also as a redirect target)         -> SRC_URL_NOT_ALLOWED
 *   every address tried was refused by the policy       -> SRC_URL_NOT_ALLOWED
 *   anything else (DNS, connect, timeout, stall, HTTP
 *   status not 2xx, too many redirects, over max_bytes,
 *   not an image)                                       -> SRC_URL_FAILED */
enum source_status fetch_url(const struct fetch_config *fc, const char *url, size_t max_bytes,
                             struct bytes *out, char *detail, size_t detail_len);

/* The address policy alone: 1 when a connection to `sa` (AF_INET or
 * AF_INET6) may be opened. An allow match wins; otherwise a deny match
 * refuses; otherwise allowed. Other families are refused. */
int fetch_addr_allowed(const struct fetch_config *fc, const struct sockaddr *sa);

/* The built-in deny list: loopback, "this network", private, CGNAT,
 * link-local, unique-local, unspecified. *out is malloc'd (caller frees).
 * Returns 0, or -1 (with *out NULL, *n 0) when out of memory. */
int fetch_default_deny(struct cidr **out, size_t *n);

/* 1 when `data` starts like a JPEG, PNG, BMP, WEBP or GIF file. */
int fetch_sniff_image(const uint8_t *data, size_t len);

#endif
