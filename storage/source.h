/* source.h: where image bytes come from. One entry point resolves an
 * image_url / v1 path to bytes: obs://bucket/key and
 * https://bucket.obs.<region>.myhuaweicloud.com/key go to the configured
 * object-store bucket (local directory or S3-compatible server); other
 * http(s) URLs are fetched with libcurl under the [fetch] rules. */
#ifndef IMGSEARCH_SOURCE_H
#define IMGSEARCH_SOURCE_H

#include <stddef.h>
#include <stdint.h>
#include "config/config.h"

/* Each maps to one cloud error code in the server's table. */
enum source_status {
    SRC_OK = 0,
    SRC_URL_NOT_ALLOWED, /* ModelArts.4601: not http/https (or a denied address) */
    SRC_URL_FAILED,      /* ModelArts.4603: download failed, timed out, too big, not an image */
    SRC_OBS_BAD_URL,     /* ModelArts.4703: unknown bucket, bad key (e.g. ".."), malformed */
    SRC_OBS_FAILED,      /* ModelArts.4704: store unreachable or refused */
    SRC_OBS_TOO_BIG,     /* ModelArts.4705: object larger than the limit */
    SRC_OBS_MISSING,     /* ModelArts.4706: no such object */
    SRC_NOMEM,
};

struct bytes {
    uint8_t *data; /* malloc'd */
    size_t len;
};

struct source; /* immutable after creation; shared by all threads */

/* Process-wide libcurl set-up: call once from main() before any thread
 * starts (tests call it too). Later calls are no-ops. 0 on success. */
int source_global_init(void);

int source_create(const struct config *cfg, struct source **out, char *errbuf, size_t errlen);
void source_free(struct source *src);

/* 1 when `url` names an object in the object store (obs:// or the OBS https
 * host form), 0 otherwise. */
int source_is_object_url(const struct source *src, const char *url);

/* Fetches at most max_bytes; more is an error without buffering the rest.
 * `detail` (optional) gets a short human-readable reason for logs. */
enum source_status source_get(const struct source *src, const char *url, size_t max_bytes,
                              struct bytes *out, char *detail, size_t detail_len);

/* Object-store operations used by imports and tests. `url` is a bucket URL
 * (obs://bucket/prefix or the https form). list calls `fn` for every key
 * under the prefix, in lexical order, with the key's size; stop by returning
 * non-zero. */
enum source_status source_put(const struct source *src, const char *url, const uint8_t *data,
                              size_t len);
typedef int (*source_list_fn)(void *arg, const char *object_url, const char *key, size_t size);
enum source_status source_list(const struct source *src, const char *prefix_url, source_list_fn fn,
                               void *arg);
/* The same, only for keys after `start_after` in byte order (NULL: all):
 * how an interrupted listing resumes. `detail` (optional) gets the reason
 * of a failure. */
enum source_status source_list_after(const struct source *src, const char *prefix_url,
                                     const char *start_after, source_list_fn fn, void *arg,
                                     char *detail, size_t detail_len);

void bytes_free(struct bytes *b);

#endif
