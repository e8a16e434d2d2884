/* objstore.h: the object-store back ends behind source.c: a local directory
 * tree and an S3-compatible server. Keys reach them already validated
 * (objurl_key_valid / objurl_prefix_valid); they check again anyway. */
#ifndef IMGSEARCH_OBJSTORE_H
#define IMGSEARCH_OBJSTORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "config/config.h"
#include "storage/source.h"

/* Called per key in lexical (byte) order; non-zero stops the listing. */
typedef int (*objstore_list_fn)(void *arg, const char *key, size_t size);

/* The body of a streamed put: fills buf with up to n next bytes and returns
 * how many (0 at the end), or (size_t)-1 on an error. */
typedef size_t (*objstore_read_fn)(void *arg, uint8_t *buf, size_t n);

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

/* Large objects (index snapshots) in constant memory: get_file writes the
 * object to `out` (more than max_bytes: SRC_OBS_TOO_BIG), get_head its first
 * `len` bytes at most into head, put_stream writes fn's bytes (the local put
 * is atomic: temporary file, fsync, rename). delete: SRC_OK also when it
 * was not there. */
enum source_status objstore_local_get_file(const char *root, const char *key, uint64_t max_bytes,
                                           FILE *out, char *detail, size_t detail_len);
enum source_status objstore_local_get_head(const char *root, const char *key, uint8_t *head,
                                           size_t len, size_t *got, char *detail,
                                           size_t detail_len);
enum source_status objstore_local_put_stream(const char *root, const char *key, objstore_read_fn fn,
                                             void *arg, char *detail, size_t detail_len);
enum source_status objstore_local_delete(const char *root, const char *key, char *detail,
                                         size_t detail_len);

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
/* The same large-object calls on S3: get_file and put_stream are streamed
 * (no total timeout; a transfer slower than 64 KiB/s for 30 s fails),
 * get_head is a Range request. put_stream needs the body's length and
 * SHA-256 (hex) up front (SigV4 signs them); one PUT, so at most 5 GiB,
 * S3's limit for a single PUT, and never visible half written. */
enum source_status objstore_s3_get_file(const struct bucket_config *b, const char *key,
                                        uint64_t max_bytes, FILE *out, char *detail,
                                        size_t detail_len);
enum source_status objstore_s3_get_head(const struct bucket_config *b, const char *key,
                                        uint8_t *head, size_t len, size_t *got, char *detail,
                                        size_t detail_len);
enum source_status objstore_s3_put_stream(const struct bucket_config *b, const char *key,
                                          uint64_t len, const char sha256[65], objstore_read_fn fn,
                                          void *arg, char *detail, size_t detail_len);
enum source_status objstore_s3_delete(const struct bucket_config *b, const char *key, char *detail,
                                      size_t detail_len);

#endif
