/* objstore.h: the object-store back ends behind source.c: a local directory
 * tree and an S3-compatible server. Keys reach them already validated
 * (objurl_key_valid / objurl_prefix_valid); they check again anyway. */
#ifndef IMGSEARCH_OBJSTORE_H
#define IMGSEARCH_OBJSTORE_H

#include <stddef.h>
#include <stdint.h>
#include "config/config.h"
#include "storage/source.h"

/* Called per key in lexical (byte) order; non-zero stops the listing. */
typedef int (*objstore_list_fn)(void *arg, const char *key, size_t size);

/* Local directory: keys map to files under `root`, never outside it. */
enum source_status objstore_local_get(const char *root, const char *key, size_t max_bytes,
                                      struct bytes *out, char *detail, size_t detail_len);
enum source_status objstore_local_put(const char *root, const char *key, const uint8_t *data,
                                      size_t len, char *detail, size_t detail_len);
/* start_after (or NULL): only keys after it; folders wholly before it are
 * not opened. */
enum source_status objstore_local_list(const char *root, const char *prefix,
                                       const char *start_after, objstore_list_fn fn, void *arg,
                                       char *detail, size_t detail_len);

/* S3-compatible server (path-style, SigV4). `b->remote` and `b->region`
 * must be set (source.c fills the defaults). */
enum source_status objstore_s3_get(const struct bucket_config *b, const char *key, size_t max_bytes,
                                   struct bytes *out, char *detail, size_t detail_len);
enum source_status objstore_s3_put(const struct bucket_config *b, const char *key,
                                   const uint8_t *data, size_t len, char *detail,
                                   size_t detail_len);
/* start_after (or NULL): list only keys after it (S3's start-after). */
enum source_status objstore_s3_list(const struct bucket_config *b, const char *prefix,
                                    const char *start_after, objstore_list_fn fn, void *arg,
                                    char *detail, size_t detail_len);

#endif
