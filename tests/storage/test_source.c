/* test_source.c: URL classification, key checks, the local object store,
 * CIDR parsing/matching and the fetch address policy. Offline: the only
 * "fetch" tried is to 127.0.0.1, which the default deny list refuses before
 * any socket is opened. */
#include "config/config.h"
#include "storage/fetch.h"
#include "storage/objurl.h"
#include "storage/source.h"
#include "tests/unit.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp_root[64];
static char outside[64];

static struct source *make_source(struct cidr *allow, size_t n_allow)
{
    struct bucket_config b[2];
    struct config cfg;
    struct source *src = NULL;
    char err[256] = "";

    memset(&cfg, 0, sizeof cfg);
    memset(b, 0, sizeof b);
    b[0].name = "local";
    b[0].kind = BUCKET_LOCAL;
    b[0].root = tmp_root;
    b[1].name = "s3b";
    b[1].kind = BUCKET_S3;
    b[1].endpoint = "http://127.0.0.1:1";
    cfg.buckets = b;
    cfg.n_buckets = 2;
    cfg.fetch.connect_timeout_ms = 1000;
    cfg.fetch.timeout_ms = 2000;
    cfg.fetch.max_redirects = 3;
    cfg.fetch.allow = allow;
    cfg.fetch.n_allow = n_allow;
    fetch_default_deny(&cfg.fetch.deny, &cfg.fetch.n_deny);
    if (source_create(&cfg, &src, err, sizeof err) != 0)
        fprintf(stderr, "source_create: %s\n", err);
    free(cfg.fetch.deny); /* the source keeps its own copy */
    return src;
}

static enum source_status get(struct source *src, const char *url, size_t max, struct bytes *b)
{
    char detail[256] = "";
    enum source_status st = source_get(src, url, max, b, detail, sizeof detail);
    if (st != SRC_OK)
        fprintf(stderr, "    (%s -> %d: %s)\n", url, st, detail);
    return st;
}

static void test_url_forms(void)
{
    struct objurl u;

    CHECK_INT(objurl_parse("obs://bk/dir/a%20b.jpg", &u), OBJURL_OK);
    CHECK_STR(u.bucket, "bk");
    CHECK_STR(u.key, "dir/a b.jpg");
    CHECK_STR(u.base, "obs://bk/");
    objurl_free(&u);

    CHECK_INT(objurl_parse("https://bk.obs.cn-north-4.myhuaweicloud.com/a.jpg?x=1#f", &u),
              OBJURL_OK);
    CHECK_STR(u.bucket, "bk");
    CHECK_STR(u.key, "a.jpg");
    CHECK_STR(u.base, "https://bk.obs.cn-north-4.myhuaweicloud.com/");
    objurl_free(&u);

    CHECK_INT(objurl_parse("HTTP://My.Bucket.OBS.ap-southeast-1.MyHuaweiCloud.CN/k/%E4%B8%AD", &u),
              OBJURL_OK);
    CHECK_STR(u.bucket, "my.bucket");
    CHECK_STR(u.key, "k/\xe4\xb8\xad");
    CHECK_STR(u.base, "http://my.bucket.obs.ap-southeast-1.myhuaweicloud.cn/");
    objurl_free(&u);

    CHECK_INT(objurl_parse("obs://bk", &u), OBJURL_OK);
    CHECK_STR(u.key, "");
    objurl_free(&u);

    CHECK_INT(objurl_parse("https://example.com/a.jpg", &u), OBJURL_NOT_OBS);
    CHECK_INT(objurl_parse("https://obs.cn-north-4.myhuaweicloud.com/bk/a.jpg", &u),
              OBJURL_NOT_OBS);
    CHECK_INT(objurl_parse("https://bk.obs.myhuaweicloud.com.evil.com/a", &u), OBJURL_NOT_OBS);
    CHECK_INT(objurl_parse("ftp://bk.obs.r.myhuaweicloud.com/a", &u), OBJURL_NOT_OBS);
    CHECK_INT(objurl_parse("https://bk.obs.r.myhuaweicloud.com:8443/a", &u), OBJURL_BAD);
    CHECK_INT(objurl_parse("https://u:p@bk.obs.r.myhuaweicloud.com/a", &u), OBJURL_BAD);
    CHECK_INT(objurl_parse("obs:///a", &u), OBJURL_BAD);
    CHECK_INT(objurl_parse("obs://bk/a%zz", &u), OBJURL_BAD);
    CHECK_INT(objurl_parse("obs://bk/a%00b", &u), OBJURL_BAD);
    CHECK_INT(objurl_parse("obs://bk/a%4", &u), OBJURL_BAD);

    char *j = objurl_join("obs://bk/", "d/a b%?.jpg");
    CHECK_STR(j, "obs://bk/d/a%20b%25%3F.jpg");
    CHECK_INT(objurl_parse(j, &u), OBJURL_OK);
    CHECK_STR(u.key, "d/a b%?.jpg");
    objurl_free(&u);
    free(j);
}

static void test_keys(void)
{
    CHECK(objurl_key_valid("a.jpg"));
    CHECK(objurl_key_valid("d/e/..f/a..b/.hidden"));
    CHECK(!objurl_key_valid(""));
    CHECK(!objurl_key_valid(".."));
    CHECK(!objurl_key_valid("a/../b"));
    CHECK(!objurl_key_valid("a/.."));
    CHECK(!objurl_key_valid("./a"));
    CHECK(!objurl_key_valid("/etc/passwd"));
    CHECK(!objurl_key_valid("a//b"));
    CHECK(!objurl_key_valid("a/"));
    CHECK(!objurl_key_valid("a\nb"));
    CHECK(objurl_prefix_valid(""));
    CHECK(objurl_prefix_valid("dir/"));
    CHECK(objurl_prefix_valid("dir/pa"));
    CHECK(objurl_prefix_valid("dir/.."));
    CHECK(!objurl_prefix_valid("../"));
    CHECK(!objurl_prefix_valid("/abs"));
    CHECK(!objurl_prefix_valid("a//b"));
}

static void test_classify(void)
{
    struct source *src = make_source(NULL, 0);
    struct bytes b;

    CHECK(src != NULL);
    if (!src)
        return;
    CHECK(source_is_object_url(src, "obs://local/a.jpg"));
    CHECK(source_is_object_url(src, "obs://nope/a.jpg"));
    CHECK(source_is_object_url(src, "https://local.obs.cn-north-4.myhuaweicloud.com/a.jpg"));
    CHECK(source_is_object_url(src, "http://local.obs.cn-north-4.myhuaweicloud.cn/a.jpg"));
    CHECK(!source_is_object_url(src, "https://example.com/a.jpg"));
    CHECK(!source_is_object_url(src, "ftp://example.com/a.jpg"));

    CHECK_INT(get(src, "obs://nope/a.jpg", 1000, &b), SRC_OBS_BAD_URL);
    CHECK_INT(get(src, "https://nope.obs.cn-north-4.myhuaweicloud.com/a.jpg", 1000, &b),
              SRC_OBS_BAD_URL);
    CHECK_INT(get(src, "obs://local/", 1000, &b), SRC_OBS_BAD_URL);
    CHECK_INT(get(src, "obs://local", 1000, &b), SRC_OBS_BAD_URL);
    CHECK_INT(get(src, "obs://local/../etc/passwd", 1000, &b), SRC_OBS_BAD_URL);
    CHECK_INT(get(src, "obs://local/%2e%2e/etc/passwd", 1000, &b), SRC_OBS_BAD_URL);
    CHECK_INT(get(src, "obs://local/a/%2E%2E/%2e%2e/x", 1000, &b), SRC_OBS_BAD_URL);
    CHECK_INT(get(src, "https://local.obs.r1.myhuaweicloud.com/%2e%2e%2fx", 1000, &b),
              SRC_OBS_BAD_URL);
    CHECK_INT(get(src, "obs://local//etc/passwd", 1000, &b), SRC_OBS_BAD_URL);
    CHECK_INT(get(src, "obs://local/%2Fetc%2Fpasswd", 1000, &b), SRC_OBS_BAD_URL);
    CHECK_INT(get(src, "obs://local/a%00.jpg", 1000, &b), SRC_OBS_BAD_URL);
    CHECK_INT(get(src, "https://local.obs.r1.myhuaweicloud.com:444/a.jpg", 1000, &b),
              SRC_OBS_BAD_URL);

    CHECK_INT(get(src, "ftp://example.com/a.jpg", 1000, &b), SRC_URL_NOT_ALLOWED);
    CHECK_INT(get(src, "file:///etc/passwd", 1000, &b), SRC_URL_NOT_ALLOWED);
    CHECK_INT(get(src, "/etc/passwd", 1000, &b), SRC_URL_NOT_ALLOWED);
    CHECK_INT(get(src, "", 1000, &b), SRC_URL_NOT_ALLOWED);
    CHECK_INT(get(src, "gopher://127.0.0.1/", 1000, &b), SRC_URL_NOT_ALLOWED);

    CHECK_INT(source_put(src, "https://example.com/a.jpg", (const uint8_t *)"x", 1),
              SRC_OBS_BAD_URL);
    CHECK_INT(source_put(src, "obs://local/../x", (const uint8_t *)"x", 1), SRC_OBS_BAD_URL);
    source_free(src);
}

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(data, 1, len, f);
        fclose(f);
    }
}

struct seen {
    char keys[16][128];
    char urls[16][256];
    size_t sizes[16];
    int n, stop_after;
};

static int collect(void *arg, const char *object_url, const char *key, size_t size)
{
    struct seen *s = arg;
    if (s->n < 16) {
        snprintf(s->keys[s->n], sizeof s->keys[0], "%s", key);
        snprintf(s->urls[s->n], sizeof s->urls[0], "%s", object_url);
        s->sizes[s->n] = size;
    }
    s->n++;
    return s->stop_after && s->n >= s->stop_after;
}

static void test_local(void)
{
    struct source *src = make_source(NULL, 0);
    struct bytes b = {0};
    struct seen s;
    char path[256];

    CHECK(src != NULL);
    if (!src)
        return;
    CHECK_INT(source_put(src, "obs://local/d/e/a.jpg", (const uint8_t *)"hello", 5), SRC_OK);
    CHECK_INT(
        source_put(src, "https://local.obs.r.myhuaweicloud.com/d/a-c", (const uint8_t *)"12", 2),
        SRC_OK);
    CHECK_INT(source_put(src, "obs://local/d/b%20c", (const uint8_t *)"", 0), SRC_OK);
    CHECK_INT(source_put(src, "obs://local/top", (const uint8_t *)"t", 1), SRC_OK);
    /* overwrite is atomic and replaces the content */
    CHECK_INT(source_put(src, "obs://local/top", (const uint8_t *)"top!", 4), SRC_OK);

    CHECK_INT(get(src, "obs://local/d/e/a.jpg", 5, &b), SRC_OK);
    CHECK_INT(b.len, 5);
    CHECK(b.data && memcmp(b.data, "hello", 5) == 0);
    bytes_free(&b);
    CHECK_INT(get(src, "https://local.obs.cn-north-4.myhuaweicloud.com/top", 100, &b), SRC_OK);
    CHECK(b.len == 4 && memcmp(b.data, "top!", 4) == 0);
    bytes_free(&b);
    CHECK_INT(get(src, "obs://local/d/e/a.jpg", 4, &b), SRC_OBS_TOO_BIG);
    CHECK(b.data == NULL);
    CHECK_INT(get(src, "obs://local/d/e/missing.jpg", 100, &b), SRC_OBS_MISSING);
    CHECK_INT(get(src, "obs://local/nodir/x.jpg", 100, &b), SRC_OBS_MISSING);
    CHECK_INT(get(src, "obs://local/top/x.jpg", 100, &b), SRC_OBS_MISSING);
    CHECK_INT(get(src, "obs://local/d/e", 100, &b), SRC_OBS_MISSING);

    /* symlinks never lead out of the root, not even to a readable file */
    snprintf(path, sizeof path, "%s/secret", outside);
    write_file(path, "secret", 6);
    snprintf(path, sizeof path, "%s/link", tmp_root);
    CHECK(symlink(outside, path) == 0);
    snprintf(path, sizeof path, "%s/d/flink", tmp_root);
    char target[256];
    snprintf(target, sizeof target, "%s/secret", outside);
    CHECK(symlink(target, path) == 0);
    CHECK_INT(get(src, "obs://local/link/secret", 100, &b), SRC_OBS_FAILED);
    CHECK(b.data == NULL);
    CHECK_INT(get(src, "obs://local/d/flink", 100, &b), SRC_OBS_FAILED);
    CHECK(b.data == NULL);
    /* a put through a symlinked directory is refused too */
    CHECK(source_put(src, "obs://local/link/new", (const uint8_t *)"x", 1) != SRC_OK);
    snprintf(path, sizeof path, "%s/new", outside);
    CHECK(access(path, F_OK) != 0);
    /* a FIFO must not hang the reader */
    snprintf(path, sizeof path, "%s/fifo", tmp_root);
    CHECK(mkfifo(path, 0600) == 0);
    CHECK_INT(get(src, "obs://local/fifo", 100, &b), SRC_OBS_FAILED);

    memset(&s, 0, sizeof s);
    CHECK_INT(source_list(src, "obs://local", collect, &s), SRC_OK);
    CHECK_INT(s.n, 4); /* symlinks and the FIFO are not objects */
    CHECK_STR(s.keys[0], "d/a-c");
    CHECK_STR(s.keys[1], "d/b c");
    CHECK_STR(s.keys[2], "d/e/a.jpg");
    CHECK_STR(s.keys[3], "top");
    CHECK_STR(s.urls[1], "obs://local/d/b%20c");
    CHECK_INT(s.sizes[0], 2);
    CHECK_INT(s.sizes[2], 5);

    memset(&s, 0, sizeof s);
    CHECK_INT(source_list(src, "https://local.obs.r.myhuaweicloud.com/d/", collect, &s), SRC_OK);
    CHECK_INT(s.n, 3);
    CHECK_STR(s.urls[0], "https://local.obs.r.myhuaweicloud.com/d/a-c");

    memset(&s, 0, sizeof s);
    CHECK_INT(source_list(src, "obs://local/d/e", collect, &s), SRC_OK);
    CHECK_INT(s.n, 1);
    CHECK_STR(s.keys[0], "d/e/a.jpg");

    memset(&s, 0, sizeof s);
    s.stop_after = 2;
    CHECK_INT(source_list(src, "obs://local/", collect, &s), SRC_OK);
    CHECK_INT(s.n, 2);

    /* A resumed listing: only keys after the last one seen, in order. */
    memset(&s, 0, sizeof s);
    CHECK_INT(source_list_after(src, "obs://local/", "d/b c", collect, &s, NULL, 0), SRC_OK);
    CHECK_INT(s.n, 2);
    CHECK_STR(s.keys[0], "d/e/a.jpg");
    CHECK_STR(s.keys[1], "top");
    memset(&s, 0, sizeof s);
    CHECK_INT(source_list_after(src, "obs://local/d/", "d/b", collect, &s, NULL, 0), SRC_OK);
    CHECK_INT(s.n, 2); /* "d/b c" sorts after "d/b" */
    CHECK_STR(s.keys[0], "d/b c");
    memset(&s, 0, sizeof s);
    CHECK_INT(source_list_after(src, "obs://local/", "top", collect, &s, NULL, 0), SRC_OK);
    CHECK_INT(s.n, 0);
    /* Folders before the start key are passed over whole; the one holding
     * it is entered. */
    memset(&s, 0, sizeof s);
    CHECK_INT(source_list_after(src, "obs://local/", "d/z", collect, &s, NULL, 0), SRC_OK);
    CHECK_INT(s.n, 1);
    CHECK_STR(s.keys[0], "top");
    memset(&s, 0, sizeof s);
    CHECK_INT(source_list_after(src, "obs://local/", "d/e/", collect, &s, NULL, 0), SRC_OK);
    CHECK_INT(s.n, 2);
    CHECK_STR(s.keys[0], "d/e/a.jpg");
    memset(&s, 0, sizeof s);
    CHECK_INT(source_list_after(src, "obs://local/", "d/e/a.jpg", collect, &s, NULL, 0), SRC_OK);
    CHECK_INT(s.n, 1);
    CHECK_STR(s.keys[0], "top");
    char why[128] = "";
    CHECK_INT(source_list_after(src, "obs://nope/", NULL, collect, &s, why, sizeof why),
              SRC_OBS_BAD_URL);
    CHECK(strstr(why, "not configured") != NULL);

    memset(&s, 0, sizeof s);
    CHECK_INT(source_list(src, "obs://local/nothing/here/", collect, &s), SRC_OK);
    CHECK_INT(s.n, 0);
    CHECK_INT(source_list(src, "obs://local/../", collect, &s), SRC_OBS_BAD_URL);
    CHECK_INT(source_list(src, "obs://local/link/", collect, &s), SRC_OK);
    CHECK_INT(s.n, 0);
    CHECK_INT(source_list(src, "obs://nope/", collect, &s), SRC_OBS_BAD_URL);
    source_free(src);
}

static void test_local_boundaries(void)
{
    struct source *src = make_source(NULL, 0);
    struct bytes b = {0};
    char big[4096];

    if (!src)
        return;
    memset(big, 'x', sizeof big);
    CHECK_INT(source_put(src, "obs://local/big", (const uint8_t *)big, sizeof big), SRC_OK);
    CHECK_INT(get(src, "obs://local/big", sizeof big, &b), SRC_OK);
    CHECK_INT(b.len, sizeof big);
    bytes_free(&b);
    CHECK_INT(get(src, "obs://local/big", sizeof big - 1, &b), SRC_OBS_TOO_BIG);
    CHECK_INT(get(src, "obs://local/d/b%20c", 0, &b), SRC_OK); /* empty object */
    CHECK_INT(b.len, 0);
    bytes_free(&b);
    source_free(src);
}

static void test_cidr(void)
{
    struct cidr c;
    uint8_t a4[4], a6[16];

    CHECK_INT(cidr_parse("10.0.0.0/8", &c), 0);
    CHECK_INT(c.family, AF_INET);
    CHECK_INT(c.prefix, 8);
    inet_pton(AF_INET, "10.200.1.2", a4);
    CHECK(cidr_match(&c, AF_INET, a4));
    inet_pton(AF_INET, "11.0.0.1", a4);
    CHECK(!cidr_match(&c, AF_INET, a4));
    inet_pton(AF_INET6, "::ffff:10.9.8.7", a6);
    CHECK(cidr_match(&c, AF_INET6, a6));  /* mapped address vs v4 network */
    inet_pton(AF_INET6, "::a09:807", a6); /* IPv4-compatible, not mapped */
    CHECK(!cidr_match(&c, AF_INET6, a6));

    CHECK_INT(cidr_parse("172.16.0.0/12", &c), 0);
    inet_pton(AF_INET, "172.31.255.255", a4);
    CHECK(cidr_match(&c, AF_INET, a4));
    inet_pton(AF_INET, "172.32.0.0", a4);
    CHECK(!cidr_match(&c, AF_INET, a4));

    CHECK_INT(cidr_parse("192.0.2.7", &c), 0);
    CHECK_INT(c.prefix, 32);
    CHECK_INT(cidr_parse("0.0.0.0/0", &c), 0);
    inet_pton(AF_INET, "8.8.8.8", a4);
    CHECK(cidr_match(&c, AF_INET, a4));

    CHECK_INT(cidr_parse("fe80::/10", &c), 0);
    CHECK_INT(c.family, AF_INET6);
    inet_pton(AF_INET6, "febf::1", a6);
    CHECK(cidr_match(&c, AF_INET6, a6));
    inet_pton(AF_INET6, "fec0::1", a6);
    CHECK(!cidr_match(&c, AF_INET6, a6));
    CHECK(!cidr_match(&c, AF_INET, a4));

    CHECK_INT(cidr_parse("::1", &c), 0);
    CHECK_INT(c.prefix, 128);
    CHECK_INT(cidr_parse("::ffff:127.0.0.0/104", &c), 0);
    CHECK_INT(c.family, AF_INET);
    CHECK_INT(c.prefix, 8);
    inet_pton(AF_INET, "127.1.2.3", a4);
    CHECK(cidr_match(&c, AF_INET, a4));

    CHECK(cidr_parse("10.0.0.0/33", &c) != 0);
    CHECK(cidr_parse("::/129", &c) != 0);
    CHECK(cidr_parse("10.0.0.0/", &c) != 0);
    CHECK(cidr_parse("10.0.0.0/+8", &c) != 0);
    CHECK(cidr_parse("10.0.0.0/ 8", &c) != 0);
    CHECK(cidr_parse("10.0.0/8", &c) != 0);
    CHECK(cidr_parse("example.com", &c) != 0);
    CHECK(cidr_parse("", &c) != 0);
    CHECK(cidr_parse("/8", &c) != 0);
}

static int allowed_str(const struct fetch_config *fc, const char *ip)
{
    struct sockaddr_in s4;
    struct sockaddr_in6 s6;

    memset(&s4, 0, sizeof s4);
    memset(&s6, 0, sizeof s6);
    if (inet_pton(AF_INET, ip, &s4.sin_addr) == 1) {
        s4.sin_family = AF_INET;
        return fetch_addr_allowed(fc, (struct sockaddr *)&s4);
    }
    inet_pton(AF_INET6, ip, &s6.sin6_addr);
    s6.sin6_family = AF_INET6;
    return fetch_addr_allowed(fc, (struct sockaddr *)&s6);
}

static void test_policy(void)
{
    struct fetch_config fc;
    struct cidr allow;

    memset(&fc, 0, sizeof fc);
    CHECK_INT(fetch_default_deny(&fc.deny, &fc.n_deny), 0);
    CHECK(!allowed_str(&fc, "127.0.0.1"));
    CHECK(!allowed_str(&fc, "127.255.0.9"));
    CHECK(!allowed_str(&fc, "0.0.0.0"));
    CHECK(!allowed_str(&fc, "10.1.2.3"));
    CHECK(!allowed_str(&fc, "172.20.0.1"));
    CHECK(!allowed_str(&fc, "192.168.1.1"));
    CHECK(!allowed_str(&fc, "169.254.169.254"));
    CHECK(!allowed_str(&fc, "100.100.0.1"));
    CHECK(!allowed_str(&fc, "::1"));
    CHECK(!allowed_str(&fc, "::"));
    CHECK(!allowed_str(&fc, "fe80::1"));
    CHECK(!allowed_str(&fc, "fd12::1"));
    CHECK(!allowed_str(&fc, "::ffff:127.0.0.1"));
    CHECK(!allowed_str(&fc, "::ffff:169.254.169.254"));
    CHECK(allowed_str(&fc, "8.8.8.8"));
    CHECK(allowed_str(&fc, "100.128.0.1"));
    CHECK(allowed_str(&fc, "2001:db8::1"));
    CHECK(allowed_str(&fc, "::ffff:8.8.8.8"));

    cidr_parse("127.0.0.1/32", &allow);
    fc.allow = &allow;
    fc.n_allow = 1;
    CHECK(allowed_str(&fc, "127.0.0.1"));
    CHECK(allowed_str(&fc, "::ffff:127.0.0.1"));
    CHECK(!allowed_str(&fc, "127.0.0.2"));
    free(fc.deny);
}

static void test_fetch_denied(void)
{
    struct source *src = make_source(NULL, 0);
    struct bytes b = {0};

    if (!src)
        return;
    /* Refused in the open-socket hook: no connection is ever attempted. */
    CHECK_INT(get(src, "http://127.0.0.1:9/a.jpg", 1000, &b), SRC_URL_NOT_ALLOWED);
    CHECK_INT(get(src, "http://[::1]:9/a.jpg", 1000, &b), SRC_URL_NOT_ALLOWED);
    CHECK_INT(get(src, "http://[::ffff:127.0.0.1]:9/a.jpg", 1000, &b), SRC_URL_NOT_ALLOWED);
    CHECK_INT(get(src, "http://localhost:9/a.jpg", 1000, &b), SRC_URL_NOT_ALLOWED);
    CHECK_INT(get(src, "HTTPS://10.0.0.1:9/a.jpg", 1000, &b), SRC_URL_NOT_ALLOWED);
    CHECK(b.data == NULL);
    source_free(src);
}

static struct source *source_with_deny(int configured)
{
    struct bucket_config b = {.name = "local", .kind = BUCKET_LOCAL, .root = tmp_root};
    struct config cfg;
    struct source *src = NULL;
    char err[256];

    memset(&cfg, 0, sizeof cfg);
    cfg.buckets = &b;
    cfg.n_buckets = 1;
    cfg.fetch.connect_timeout_ms = 1000;
    cfg.fetch.timeout_ms = 2000;
    cfg.fetch.deny_configured = configured;
    if (source_create(&cfg, &src, err, sizeof err) != 0)
        fprintf(stderr, "source_create: %s\n", err);
    return src;
}

static void test_deny_defaults(void)
{
    struct source *src = source_with_deny(0);
    struct bytes b = {0};

    /* No deny list given and none configured: the built-in one applies. */
    CHECK(src != NULL);
    if (src)
        CHECK_INT(get(src, "http://127.0.0.1:9/a.jpg", 1000, &b), SRC_URL_NOT_ALLOWED);
    source_free(src);
    /* An explicitly empty deny list lets the connection be tried (and fail:
     * nothing listens on the discard port). */
    src = source_with_deny(1);
    CHECK(src != NULL);
    if (src)
        CHECK_INT(get(src, "http://127.0.0.1:9/a.jpg", 1000, &b), SRC_URL_FAILED);
    source_free(src);
}

static void test_sniff(void)
{
    static const uint8_t jpg[] = {0xff, 0xd8, 0xff, 0xe0};
    static const uint8_t png[] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
    static const uint8_t webp[] = "RIFF\x10\0\0\0WEBPVP8 ";
    static const uint8_t bmp[] = "BM\x36\0\0\0\0\0\0\0\x36\0\0\0";

    CHECK(fetch_sniff_image(jpg, sizeof jpg));
    CHECK(fetch_sniff_image(png, sizeof png));
    CHECK(fetch_sniff_image(webp, 16));
    CHECK(fetch_sniff_image(bmp, 14));
    CHECK(fetch_sniff_image((const uint8_t *)"GIF89a....", 10));
    CHECK(!fetch_sniff_image((const uint8_t *)"<html>", 6));
    CHECK(!fetch_sniff_image(jpg, 2));
    CHECK(!fetch_sniff_image(NULL, 0));
}

static void rm_rf(const char *dir)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", dir);
}

int main(void)
{
    strcpy(tmp_root, "/tmp/imgsearch-src-XXXXXX");
    strcpy(outside, "/tmp/imgsearch-out-XXXXXX");
    if (!mkdtemp(tmp_root) || !mkdtemp(outside)) {
        perror("mkdtemp");
        return 1;
    }
    source_global_init();
    RUN(test_url_forms);
    RUN(test_keys);
    RUN(test_classify);
    RUN(test_local);
    RUN(test_local_boundaries);
    RUN(test_cidr);
    RUN(test_policy);
    RUN(test_fetch_denied);
    RUN(test_deny_defaults);
    RUN(test_sniff);
    rm_rf(tmp_root);
    rm_rf(outside);
    return unit_report();
}
