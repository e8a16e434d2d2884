/* test_snapstore.c: server/snapstore.c on a local-directory bucket. Key
 * naming with and without a prefix; a put stores the file plus its trailer
 * and a fetch brings back the same bytes; the fetch rules (newer than the
 * local one, inside the log); refusals of a truncated, corrupt, or another
 * instance's object, each leaving the local file alone; delete; and the
 * [cluster] snapshot_bucket set-up errors. The S3 back end of the same calls
 * runs in tests/e2e/test_snapshot_s3.py, which also runs this binary with
 * SNAPSTORE_S3="endpoint|bucket|access_key|secret_key|MB": a snapshot of
 * that many MB goes to S3 and back in constant memory (test_s3_large). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include "config/config.h"
#include "server/snapstore.h"
#include "tests/unit.h"

#define TRAILER 80

static char dir[64];
static char root[128], conf[128];

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        CHECK_INT(fwrite(data, 1, len, f), len);
        fclose(f);
    }
}

/* The whole file into a malloc'd buffer; *len its size (NULL: no file). */
static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    *len = 0;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && fread(b, 1, (size_t)n, f) == (size_t)n)
        *len = (size_t)n;
    fclose(f);
    return b;
}

/* A fake snapshot: the registry's header (magic, seq) and `n` bytes. */
static unsigned char *fake_snapshot(int64_t seq, size_t n, size_t *len)
{
    unsigned char *b = malloc(16 + n);
    memcpy(b, "IMGSNAP1", 8);
    memcpy(b + 8, &seq, 8);
    for (size_t i = 0; i < n; i++)
        b[16 + i] = (unsigned char)(i * 131 + 7);
    *len = 16 + n;
    return b;
}

static struct snapstore *open_store(const char *prefix)
{
    char text[512], err[256] = "";
    struct config cfg;
    struct snapstore *ss = NULL;
    snprintf(text, sizeof text,
             "[bucket:snaps]\ntype = local\nroot = %s\n[cluster]\n"
             "snapshot_bucket = snaps\n%s%s\n",
             root, prefix ? "snapshot_prefix = " : "", prefix ? prefix : "");
    write_file(conf, text, strlen(text));
    CHECK_INT(config_load_file(conf, &cfg, err, sizeof err), 0);
    CHECK_INT(snapstore_new(&cfg, &ss, err, sizeof err), 0);
    CHECK(ss != NULL);
    config_free(&cfg);
    return ss;
}

static void test_key(void)
{
    char key[128];
    struct snap_ref r = {.instance = 7, .shard = 0, .created_ms = 1};
    CHECK_INT(snapstore_key("", &r, key, sizeof key), 0);
    CHECK_STR(key, "snapshots/7/0.snap");
    r.shard = 3;
    CHECK_INT(snapstore_key("prod/eu/", &r, key, sizeof key), 0);
    CHECK_STR(key, "prod/eu/snapshots/7/3.snap");
    CHECK_INT(snapstore_key("prod/", &r, key, 10), -1);
}

static void test_off_by_default(void)
{
    struct config cfg;
    char err[256];
    struct snapstore *ss = (struct snapstore *)1;
    config_defaults(&cfg);
    CHECK_INT(snapstore_new(&cfg, &ss, err, sizeof err), 0);
    CHECK(ss == NULL);
    config_free(&cfg);
}

static void test_round_trip(void)
{
    struct snapstore *ss = open_store("p1");
    struct snap_ref r = {.instance = 12, .shard = 0, .created_ms = 1700000000123LL};
    char local[256], dest[256], tmp[256], obj[256];
    size_t len, got;
    unsigned char *snap = fake_snapshot(42, 300000, &len);
    snprintf(local, sizeof local, "%s/local.snap", dir);
    snprintf(dest, sizeof dest, "%s/dest.snap", dir);
    snprintf(tmp, sizeof tmp, "%s/dest.snap.tmp", dir);
    snprintf(obj, sizeof obj, "%s/p1/snapshots/12/0.snap", root);
    write_file(local, snap, len);
    /* The seq must be the file's: a put of another file is refused. */
    CHECK_INT(snapstore_put(ss, &r, local, 41), -1);
    CHECK_INT(snapstore_put(ss, &r, local, 42), 0);
    unsigned char *o = read_file(obj, &got);
    CHECK_INT(got, len + TRAILER);
    CHECK(o && memcmp(o, snap, len) == 0 && memcmp(o + len, "IMGSNAPR", 8) == 0);
    free(o);

    int64_t stored = 0;
    CHECK_INT(snapstore_fetch(ss, &r, dest, tmp, -1, 0, 100, &stored), 42);
    CHECK_INT(stored, 42);
    unsigned char *d = read_file(dest, &got);
    CHECK_INT(got, len);
    CHECK(d && memcmp(d, snap, len) == 0);
    free(d);
    CHECK(access(tmp, F_OK) != 0);
    unlink(dest);

    /* Not newer than the local one: not fetched, but known to be there. */
    CHECK_INT(snapstore_fetch(ss, &r, dest, tmp, 42, 0, 100, &stored), -1);
    CHECK_INT(stored, 42);
    CHECK(access(dest, F_OK) != 0);
    /* Outside the log: useless, so as good as none. */
    CHECK_INT(snapstore_fetch(ss, &r, dest, tmp, -1, 0, 41, &stored), -1);
    CHECK_INT(stored, -1);
    CHECK_INT(snapstore_fetch(ss, &r, dest, tmp, -1, 43, 100, &stored), -1);
    CHECK(access(dest, F_OK) != 0);

    /* Delete, twice. */
    CHECK_INT(snapstore_delete(ss, 12, 0), 0);
    CHECK(access(obj, F_OK) != 0);
    CHECK_INT(snapstore_delete(ss, 12, 0), 0);
    CHECK_INT(snapstore_fetch(ss, &r, dest, tmp, -1, 0, 100, &stored), -1);
    CHECK_INT(stored, -1);
    free(snap);
    snapstore_free(ss);
}

/* Every bad object is refused and leaves the local file as it was. */
static void test_refusals(void)
{
    struct snapstore *ss = open_store(NULL);
    struct snap_ref r = {.instance = 5, .shard = 1, .created_ms = 99};
    char local[256], dest[256], tmp[256], obj[256];
    size_t len, olen;
    int64_t stored;
    unsigned char *snap = fake_snapshot(9, 5000, &len);
    snprintf(local, sizeof local, "%s/l5.snap", dir);
    snprintf(dest, sizeof dest, "%s/d5.snap", dir);
    snprintf(tmp, sizeof tmp, "%s/d5.snap.tmp", dir);
    snprintf(obj, sizeof obj, "%s/snapshots/5/1.snap", root);
    write_file(local, snap, len);
    write_file(dest, "old", 3);
    CHECK_INT(snapstore_put(ss, &r, local, 9), 0);
    unsigned char *o = read_file(obj, &olen);
    CHECK_INT(olen, len + TRAILER);

    /* Another incarnation of id 5 (SQLite reuses ids), another shard. */
    struct snap_ref other = r;
    other.created_ms = 100;
    CHECK_INT(snapstore_fetch(ss, &other, dest, tmp, -1, 0, 100, &stored), -1);
    other = r;
    other.shard = 0;
    CHECK_INT(snapstore_fetch(ss, &other, dest, tmp, -1, 0, 100, &stored), -1); /* missing */

    /* One flipped byte in the index. */
    o[3000] ^= 1;
    write_file(obj, o, olen);
    CHECK_INT(snapstore_fetch(ss, &r, dest, tmp, -1, 0, 100, &stored), -1);
    o[3000] ^= 1;
    /* Truncated: the end, or all but the header. */
    write_file(obj, o, olen - 10);
    CHECK_INT(snapstore_fetch(ss, &r, dest, tmp, -1, 0, 100, &stored), -1);
    write_file(obj, o, 16);
    CHECK_INT(snapstore_fetch(ss, &r, dest, tmp, -1, 0, 100, &stored), -1);
    /* Not a snapshot at all. */
    write_file(obj, "hello world, not a snapshot", 27);
    CHECK_INT(snapstore_fetch(ss, &r, dest, tmp, -1, 0, 100, &stored), -1);
    CHECK_INT(stored, -1);

    size_t dl;
    unsigned char *d = read_file(dest, &dl);
    CHECK(dl == 3 && memcmp(d, "old", 3) == 0);
    CHECK(access(tmp, F_OK) != 0);
    free(d);
    /* Whole again: fetched over the old local file. */
    write_file(obj, o, olen);
    CHECK_INT(snapstore_fetch(ss, &r, dest, tmp, -1, 0, 100, &stored), 9);
    d = read_file(dest, &dl);
    CHECK(dl == len && memcmp(d, snap, len) == 0);
    free(d);
    free(o);
    free(snap);
    snapstore_free(ss);
}

/* A store that cannot be reached is not an error for the load. */
static void test_unreachable(void)
{
    char text[512], err[256];
    struct config cfg;
    struct snapstore *ss = NULL;
    snprintf(text, sizeof text,
             "[bucket:s]\ntype = s3\nendpoint = http://127.0.0.1:1\naccess_key = a\n"
             "secret_key = b\n[cluster]\nsnapshot_bucket = s\n");
    write_file(conf, text, strlen(text));
    CHECK_INT(config_load_file(conf, &cfg, err, sizeof err), 0);
    CHECK_INT(snapstore_new(&cfg, &ss, err, sizeof err), 0);
    config_free(&cfg);
    struct snap_ref r = {.instance = 1, .shard = 0, .created_ms = 1};
    char dest[256], tmp[256], local[256];
    int64_t stored = 0;
    size_t len;
    snprintf(dest, sizeof dest, "%s/u.snap", dir);
    snprintf(tmp, sizeof tmp, "%s/u.snap.tmp", dir);
    snprintf(local, sizeof local, "%s/u-local.snap", dir);
    CHECK_INT(snapstore_fetch(ss, &r, dest, tmp, -1, 0, 10, &stored), -1);
    CHECK_INT(stored, -1);
    unsigned char *snap = fake_snapshot(3, 100, &len);
    write_file(local, snap, len);
    CHECK_INT(snapstore_put(ss, &r, local, 3), -1);
    CHECK_INT(snapstore_delete(ss, 1, 0), -1);
    free(snap);
    snapstore_free(ss);
}

static long max_rss_kb(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
}

/* Two files hold the same bytes; read a piece at a time. */
static int same_files(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    static unsigned char x[1 << 16], y[1 << 16];
    int same = fa && fb;
    while (same) {
        size_t n = fread(x, 1, sizeof x, fa), m = fread(y, 1, sizeof y, fb);
        same = n == m && memcmp(x, y, n) == 0;
        if (n == 0)
            break;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return same;
}

static void test_s3_large(void)
{
    const char *spec = getenv("SNAPSTORE_S3");
    char ep[256], bucket[64], ak[64], sk[64], text[1024], err[256];
    int mb = 0;
    if (!spec || sscanf(spec, "%255[^|]|%63[^|]|%63[^|]|%63[^|]|%d", ep, bucket, ak, sk, &mb) != 5)
        return; /* not driven by the e2e test */
    snprintf(text, sizeof text,
             "[bucket:%s]\ntype = s3\nendpoint = %s\naccess_key = %s\nsecret_key = %s\n"
             "[cluster]\nsnapshot_bucket = %s\nsnapshot_prefix = large\n",
             bucket, ep, ak, sk, bucket);
    write_file(conf, text, strlen(text));
    struct config cfg;
    struct snapstore *ss = NULL;
    CHECK_INT(config_load_file(conf, &cfg, err, sizeof err), 0);
    CHECK_INT(snapstore_new(&cfg, &ss, err, sizeof err), 0);
    config_free(&cfg);
    if (!ss)
        return;
    char local[256], dest[256], tmp[256];
    snprintf(local, sizeof local, "%s/big.snap", dir);
    snprintf(dest, sizeof dest, "%s/big-dest.snap", dir);
    snprintf(tmp, sizeof tmp, "%s/big-dest.snap.tmp", dir);
    /* Written a MB at a time, so only the transfers could grow the RSS. */
    size_t len;
    unsigned char *head = fake_snapshot(77, (1 << 20) - 16, &len);
    FILE *f = fopen(local, "wb");
    CHECK(f != NULL);
    for (int i = 0; f && i < mb; i++) {
        head[100] = (unsigned char)i; /* not one MB repeated */
        CHECK_INT(fwrite(head, 1, len, f), len);
    }
    if (f)
        fclose(f);
    free(head);
    long before = max_rss_kb();
    struct snap_ref r = {.instance = 3, .shard = 0, .created_ms = 5};
    int64_t stored = -1;
    CHECK_INT(snapstore_put(ss, &r, local, 77), 0);
    CHECK_INT(snapstore_fetch(ss, &r, dest, tmp, -1, 0, 100, &stored), 77);
    long grew = max_rss_kb() - before;
    fprintf(stderr, "  %d MB up and down; peak RSS grew by %ld KB\n", mb, grew);
    CHECK(grew < 16 * 1024);
    CHECK(same_files(local, dest));
    CHECK_INT(snapstore_delete(ss, 3, 0), 0);
    snapstore_free(ss);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/imgsearch-test-snapstore-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    snprintf(root, sizeof root, "%s/bucket", dir);
    snprintf(conf, sizeof conf, "%s/c.ini", dir);
    RUN(test_key);
    RUN(test_off_by_default);
    RUN(test_round_trip);
    RUN(test_refusals);
    RUN(test_unreachable);
    RUN(test_s3_large);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return unit_report();
}
