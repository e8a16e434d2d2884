/* objurl.h: syntax of object-store URLs (obs://bucket/key and
 * http(s)://bucket.obs.<region>.myhuaweicloud.com|cn/key) and of keys. */
#ifndef IMGSEARCH_OBJURL_H
#define IMGSEARCH_OBJURL_H

#include <stddef.h>

enum objurl_status {
    OBJURL_OK = 0,
    OBJURL_NOT_OBS, /* some other URL: not an object-store URL at all */
    OBJURL_BAD,     /* object-store form, but malformed (bad escape, port, no bucket, ...) */
    OBJURL_NOMEM,
};

struct objurl {
    char *bucket; /* as written (host form: lower-cased) */
    char *key;    /* percent-decoded; may be "" (a bucket root / empty prefix) */
    char *base;   /* the URL up to the key, ending in '/': rebuilds object URLs */
};

/* Splits `url`; the key is not validated here (see objurl_key_valid). */
enum objurl_status objurl_parse(const char *url, struct objurl *out);
void objurl_free(struct objurl *u);

/* A key names one object: 1..1024 bytes, no control characters, no empty,
 * "." or ".." segment (so no leading, trailing or doubled '/'). */
int objurl_key_valid(const char *key);

/* A list prefix: "" or a key-like string whose complete segments (those
 * followed by '/') are valid; the last, partial segment is free text. */
int objurl_prefix_valid(const char *prefix);

/* base + key with every byte outside [A-Za-z0-9-._~/] percent-encoded;
 * malloc'd, NULL on OOM. */
char *objurl_join(const char *base, const char *key);

/* Percent-encodes `s` into a malloc'd string; '/' is kept when keep_slash. */
char *objurl_encode(const char *s, int keep_slash);

#endif
