/* curlbuf.h: a capped in-memory download for one libcurl easy handle, shared
 * by the URL fetcher and the S3 back end. A 2xx body may hold at most `max`
 * bytes: a larger Content-Length, or the byte that crosses the cap, aborts
 * the transfer (CURLE_WRITE_ERROR with too_big set) so nothing more is read.
 * Bodies of other responses (error XML, redirects) are kept up to 64 KiB.
 * With `sink` set, a 2xx body goes to that file instead of memory (large
 * objects: index snapshots), counted in `len` against the same cap. */
#ifndef IMGSEARCH_CURLBUF_H
#define IMGSEARCH_CURLBUF_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "storage/source.h"

struct curlbuf {
    uint8_t *data;
    size_t len, cap;
    size_t max;             /* cap for a 2xx body */
    long status;            /* of the response being received (0 before any) */
    int too_big;            /* the transfer was aborted for size */
    int nomem;              /* ... or for lack of memory */
    char content_type[128]; /* of the latest response, trimmed; "" if none */
    FILE *sink;             /* NULL: keep the 2xx body in data */
    int sink_failed;        /* a write to sink failed */
};

void curlbuf_init(struct curlbuf *b, size_t max);
/* Sets the write and header callbacks of `c` to fill `b`. */
void curlbuf_attach(struct curlbuf *b, CURL *c);
/* Moves the body into `out` (empty body: data may be NULL). */
void curlbuf_take(struct curlbuf *b, struct bytes *out);
void curlbuf_release(struct curlbuf *b);

#endif
