/* fuzz_objurl.c: libFuzzer target for the object-store URL and key parsers
 * (storage/objurl.c) and the local store's key-to-path walk behind
 * source_get/source_list. The input is one URL. Invariants: a parsed URL
 * rebuilds (objurl_join) to one that parses back to the same bucket, key and
 * base; a valid key is a valid prefix; encoding round-trips; and no URL ever
 * reads the file placed beside the bucket root, or through the symlink in it.
 * Only object-store URLs reach source_get, so nothing goes to the network. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "config/config.h"
#include "storage/objstore.h"
#include "storage/objurl.h"
#include "storage/source.h"
#include "tests/fuzz/fuzz_source.h"

#define OUTSIDE "OUTSIDE-THE-ROOT"

static struct source *src;
static char root[64];

static void put_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        abort();
}

static char dir[] = "/tmp/fuzz_objurl.XXXXXX";

/* At exit, so long runs leave no scratch trees behind. */
static void cleanup(void)
{
    static const char *const files[] = {"root/a.jpg", "root/d/b.jpg", "root/link",
                                        "secret",     "root/d",       "root"};
    char p[128];
    source_free(src);
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        if (unlink(p) != 0)
            rmdir(p);
    }
    rmdir(dir);
}

/* tmp/secret (must stay unreachable) and tmp/root/{a.jpg,d/b.jpg,link}. */
static void setup(void)
{
    char p[128];
    if (!mkdtemp(dir))
        abort();
    atexit(cleanup);
    snprintf(p, sizeof p, "%s/secret", dir);
    put_file(p, OUTSIDE);
    snprintf(root, sizeof root, "%s/root", dir);
    snprintf(p, sizeof p, "%s/d", root);
    if (mkdir(root, 0700) || mkdir(p, 0700))
        abort();
    snprintf(p, sizeof p, "%s/a.jpg", root);
    put_file(p, "inside a");
    snprintf(p, sizeof p, "%s/d/b.jpg", root);
    put_file(p, "inside b");
    snprintf(p, sizeof p, "%s/link", root);
    if (symlink("../secret", p))
        abort();

    fuzz_local_source(root, &src);
}

static void check_same(const struct objurl *a, const char *url)
{
    struct objurl b;
    if (objurl_parse(url, &b) != OBJURL_OK)
        abort();
    if (strcmp(a->bucket, b.bucket) || strcmp(a->key, b.key) || strcmp(a->base, b.base))
        abort();
    objurl_free(&b);
}

static int is_outside(const struct bytes *b)
{
    return b->len == strlen(OUTSIDE) && !memcmp(b->data, OUTSIDE, b->len);
}

static int list_cb(void *arg, const char *object_url, const char *key, size_t size)
{
    const char *prefix = arg;
    (void)size;
    if (!objurl_key_valid(key) || strncmp(key, prefix, strlen(prefix)) != 0)
        abort();
    struct objurl u;
    if (objurl_parse(object_url, &u) != OBJURL_OK || strcmp(u.key, key) != 0)
        abort();
    objurl_free(&u);
    return 0;
}

static void check_parsed(const char *url, const struct objurl *u)
{
    size_t bl = strlen(u->base);
    if (!u->bucket || !u->key || !*u->bucket || bl == 0 || u->base[bl - 1] != '/' ||
        strlen(u->key) > strlen(url))
        abort();
    char *joined = objurl_join(u->base, u->key);
    if (!joined)
        abort();
    check_same(u, joined);
    free(joined);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!src)
        setup();
    char *url = malloc(size + 1);
    if (!url)
        return 0;
    memcpy(url, data, size);
    url[size] = 0; /* an embedded NUL just ends the URL early */

    struct objurl u;
    enum objurl_status st = objurl_parse(url, &u);
    if (st == OBJURL_OK)
        check_parsed(url, &u);
    else if (u.bucket || u.key || u.base)
        abort(); /* failure must leave nothing to free */

    /* The whole input as a key and as a prefix. */
    if (objurl_key_valid(url) && !objurl_prefix_valid(url))
        abort();
    char *enc = objurl_encode(url, size && (data[0] & 1));
    if (!enc || strlen(enc) > 3 * strlen(url))
        abort();
    if (*url &&
        strspn(enc, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%/") !=
            strlen(enc))
        abort();
    struct objurl e = {.bucket = "b1", .base = "obs://b1/", .key = url};
    char *again = objurl_join("obs://b1/", url);
    if (!again)
        abort();
    check_same(&e, again);
    free(again);
    free(enc);

    /* The local store, through the real entry points. */
    struct bytes b = {0};
    if (source_is_object_url(src, url)) {
        if (source_get(src, url, 1 << 16, &b, NULL, 0) == SRC_OK &&
            (st != OBJURL_OK || !objurl_key_valid(u.key) || b.len == 0 || is_outside(&b)))
            abort();
        bytes_free(&b);
        if (st == OBJURL_OK)
            source_list(src, url, list_cb, u.key);
    }
    /* The back end checks keys itself too: the raw input as a key. */
    if (objstore_local_get(root, url, 1 << 16, &b, NULL, 0) == SRC_OK &&
        (!objurl_key_valid(url) || is_outside(&b)))
        abort();
    bytes_free(&b);

    objurl_free(&u);
    free(url);
    return 0;
}
