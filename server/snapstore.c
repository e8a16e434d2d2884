/* snapstore.c: see snapstore.h. The registry calls it from its snapshot
 * thread (put), from an index load (fetch) and from an instance drop
 * (delete); it keeps no state but its copy of the bucket, so any thread may
 * call it. */
#include "server/snapstore.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "config/config.h"
#include "server/http_log.h"
#include "storage/instances.h"
#include "storage/objstore.h"

/* The registry's snapshot header: magic, then the seq (native int64). */
#define SNAP_MAGIC "IMGSNAP1"
#define HEAD_LEN 16
#define TRAILER_MAGIC "IMGSNAPR"
#define TRAILER_LEN 80
/* S3's limit for one PUT; local directories take any size. */
#define S3_PUT_MAX (5ULL << 30)
#define LOCAL_MAX (1ULL << 40)
#define CHUNK (1 << 16)

struct snapstore {
    struct bucket_config b; /* own copies of the strings */
    char *prefix;           /* "" or ending in '/' */
    char where[512];        /* for logs: s3://remote/prefix or the directory */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

int snapstore_new(const struct config *cfg, struct snapstore **out, char *errbuf, size_t errlen)
{
    const char *name = cfg->cluster.snapshot_bucket;
    const struct bucket_config *b = NULL;
    *out = NULL;
    if (!name || !*name)
        return 0;
    for (size_t i = 0; i < cfg->n_buckets && !b; i++)
        if (!strcmp(cfg->buckets[i].name, name))
            b = &cfg->buckets[i];
    if (!b) {
        snprintf(errbuf, errlen, "[cluster] snapshot_bucket = %s: no such [bucket:%s]", name, name);
        return -1;
    }
    struct snapstore *ss = calloc(1, sizeof *ss);
    const char *p = cfg->cluster.snapshot_prefix ? cfg->cluster.snapshot_prefix : "";
    size_t pl = strlen(p);
    if (!ss || !(ss->prefix = malloc(pl + 2)))
        goto nomem;
    snprintf(ss->prefix, pl + 2, "%s%s", p, pl && p[pl - 1] != '/' ? "/" : "");
    ss->b.kind = b->kind;
    ss->b.name = dup_or_null(b->name);
    ss->b.root = dup_or_null(b->root);
    ss->b.endpoint = dup_or_null(b->endpoint);
    ss->b.remote = dup_or_null(b->remote);
    ss->b.region = dup_or_null(b->region);
    ss->b.access_key = dup_or_null(b->access_key);
    ss->b.secret_key = dup_or_null(b->secret_key);
    if (!ss->b.name || (b->root && !ss->b.root) || (b->endpoint && !ss->b.endpoint) ||
        (b->remote && !ss->b.remote) || (b->region && !ss->b.region) ||
        (b->access_key && !ss->b.access_key) || (b->secret_key && !ss->b.secret_key))
        goto nomem;
    if (b->kind == BUCKET_S3)
        snprintf(ss->where, sizeof ss->where, "s3://%s/%s", b->remote, ss->prefix);
    else
        snprintf(ss->where, sizeof ss->where, "%s/%s", b->root, ss->prefix);
    *out = ss;
    return 0;
nomem:
    snapstore_free(ss);
    snprintf(errbuf, errlen, "out of memory");
    return -1;
}

void snapstore_free(struct snapstore *ss)
{
    if (!ss)
        return;
    bucket_config_free(&ss->b);
    free(ss->prefix);
    free(ss);
}

int snapstore_ref(struct db *db, int64_t instance, int shard, struct snap_ref *ref)
{
    long long ms = 0;
    if (instances_created_ms(db, instance, &ms) != DB_OK)
        return -1;
    ref->instance = instance;
    ref->shard = shard;
    ref->created_ms = ms;
    return 0;
}

int snapstore_key(const char *prefix, const struct snap_ref *ref, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%ssnapshots/%lld/%d.snap", prefix, (long long)ref->instance,
                     ref->shard);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* --- trailer ------------------------------------------------------------- */

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* magic 8 | body length 8 | instance 8 | created_ms 8 | seq 8 | shard 4 |
 * zero 4 | SHA-256 of the body 32, integers little-endian. */
static void trailer_make(uint8_t t[TRAILER_LEN], const struct snap_ref *ref, uint64_t len,
                         int64_t seq, const uint8_t sha[32])
{
    memset(t, 0, TRAILER_LEN);
    memcpy(t, TRAILER_MAGIC, 8);
    put_le(t + 8, len, 8);
    put_le(t + 16, (uint64_t)ref->instance, 8);
    put_le(t + 24, (uint64_t)ref->created_ms, 8);
    put_le(t + 32, (uint64_t)seq, 8);
    put_le(t + 40, (uint64_t)(uint32_t)ref->shard, 4);
    memcpy(t + 48, sha, 32);
}

/* NULL when the trailer matches ref, a body of `len` bytes at `seq` and
 * hash `sha`; else why not. */
static const char *trailer_check(const uint8_t t[TRAILER_LEN], const struct snap_ref *ref,
                                 uint64_t len, int64_t seq, const uint8_t sha[32])
{
    if (memcmp(t, TRAILER_MAGIC, 8) != 0)
        return "no trailer (truncated?)";
    if (get_le(t + 8, 8) != len)
        return "length does not match (truncated?)";
    if ((int64_t)get_le(t + 16, 8) != ref->instance || get_le(t + 40, 4) != (uint32_t)ref->shard)
        return "it is another instance's or shard's";
    if ((int64_t)get_le(t + 24, 8) != ref->created_ms)
        return "it is an older instance's of the same id";
    if ((int64_t)get_le(t + 32, 8) != seq)
        return "its seq does not match its header";
    if (memcmp(t + 48, sha, 32) != 0)
        return "checksum mismatch (corrupt)";
    return NULL;
}

/* The seq of a snapshot header, -1 if it is none. */
static int64_t head_seq(const uint8_t *h, size_t n)
{
    int64_t seq;
    if (n < HEAD_LEN || memcmp(h, SNAP_MAGIC, 8) != 0)
        return -1;
    memcpy(&seq, h + 8, sizeof seq);
    return seq < 0 ? -1 : seq;
}

/* SHA-256 of the first len bytes of f (read from its start); 0 on success.
 * `also` (or NULL) is fed the same bytes: the S3 payload hash, in the same
 * pass over a file of hundreds of MB. */
static int hash_file(FILE *f, uint64_t len, uint8_t sha[32], EVP_MD_CTX *also)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint8_t *buf = malloc(CHUNK);
    unsigned int n = 0;
    int rc = -1;
    if (!ctx || !buf || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 || fseeko(f, 0, SEEK_SET))
        goto out;
    while (len > 0) {
        size_t want = len < CHUNK ? (size_t)len : CHUNK;
        if (fread(buf, 1, want, f) != want || EVP_DigestUpdate(ctx, buf, want) != 1 ||
            (also && EVP_DigestUpdate(also, buf, want) != 1))
            goto out;
        len -= want;
    }
    rc = EVP_DigestFinal_ex(ctx, sha, &n) == 1 && n == 32 ? 0 : -1;
out:
    EVP_MD_CTX_free(ctx);
    free(buf);
    return rc;
}

/* --- put ----------------------------------------------------------------- */

struct upload {
    FILE *f;
    uint64_t left; /* of the file */
    const uint8_t *trailer;
    size_t tpos;
};

static size_t upload_read(void *arg, uint8_t *buf, size_t n)
{
    struct upload *u = arg;
    size_t got = 0;
    if (u->left > 0) {
        size_t want = n < u->left ? n : (size_t)u->left;
        got = fread(buf, 1, want, u->f);
        if (got != want)
            return (size_t)-1; /* the file shrank or failed under us */
        u->left -= got;
        return got;
    }
    got = TRAILER_LEN - u->tpos < n ? TRAILER_LEN - u->tpos : n;
    memcpy(buf, u->trailer + u->tpos, got);
    u->tpos += got;
    return got;
}

static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* The S3 payload hash: `ctx` has seen the file; the trailer follows. */
static int payload_hash(EVP_MD_CTX *ctx, const uint8_t t[TRAILER_LEN], char out[65])
{
    uint8_t md[32];
    unsigned int n = 0;
    if (EVP_DigestUpdate(ctx, t, TRAILER_LEN) != 1 || EVP_DigestFinal_ex(ctx, md, &n) != 1 ||
        n != 32)
        return -1;
    hex(md, 32, out);
    return 0;
}

int snapstore_put(struct snapstore *ss, const struct snap_ref *ref, const char *path, int64_t seq)
{
    char key[1024], detail[512] = "", sha_hex[65];
    uint8_t head[HEAD_LEN], sha[32], trailer[TRAILER_LEN];
    struct stat sb;
    double t0 = now_s();
    const char *why = NULL;
    enum source_status st = SRC_OBS_FAILED;
    EVP_MD_CTX *payload = NULL;
    if (snapstore_key(ss->prefix, ref, key, sizeof key) != 0)
        return -1;
    FILE *f = fopen(path, "rbe");
    /* The file is renamed over, never rewritten: this one stays whole. */
    if (!f || fstat(fileno(f), &sb) != 0) {
        why = strerror(errno);
    } else if (fread(head, 1, HEAD_LEN, f) != HEAD_LEN || head_seq(head, HEAD_LEN) != seq) {
        why = "not the snapshot just written";
    } else if (ss->b.kind == BUCKET_S3 && (uint64_t)sb.st_size + TRAILER_LEN > S3_PUT_MAX) {
        why = "larger than 5 GiB, S3's limit for one PUT (multipart is not implemented): "
              "it stays local only";
    } else if (!(payload = EVP_MD_CTX_new()) ||
               EVP_DigestInit_ex(payload, EVP_sha256(), NULL) != 1 ||
               hash_file(f, (uint64_t)sb.st_size, sha, payload) != 0) {
        why = "cannot read it";
    } else {
        trailer_make(trailer, ref, (uint64_t)sb.st_size, seq, sha);
        struct upload u = {.f = f, .left = (uint64_t)sb.st_size, .trailer = trailer};
        if (ss->b.kind == BUCKET_S3) {
            if (payload_hash(payload, trailer, sha_hex) != 0 || fseeko(f, 0, SEEK_SET) != 0)
                why = "cannot read it";
            else
                st = objstore_s3_put_stream(&ss->b, key, (uint64_t)sb.st_size + TRAILER_LEN,
                                            sha_hex, upload_read, &u, detail, sizeof detail);
        } else if (fseeko(f, 0, SEEK_SET) != 0) {
            why = "cannot read it";
        } else {
            st = objstore_local_put_stream(ss->b.root, key, upload_read, &u, detail, sizeof detail);
        }
        if (!why && st != SRC_OK)
            why = detail[0] ? detail : "the store refused it";
    }
    EVP_MD_CTX_free(payload);
    if (f)
        fclose(f);
    if (why) {
        log_info("index %lld: snapshot at seq %lld not uploaded to %s%s: %s",
                 (long long)ref->instance, (long long)seq, ss->where, key + strlen(ss->prefix),
                 why);
        return -1;
    }
    log_info("index %lld: snapshot at seq %lld uploaded to %s%s (%lld bytes, %.3f s)",
             (long long)ref->instance, (long long)seq, ss->where, key + strlen(ss->prefix),
             (long long)sb.st_size, now_s() - t0);
    return 0;
}

/* --- fetch --------------------------------------------------------------- */

static enum source_status get_head(struct snapstore *ss, const char *key, uint8_t *head,
                                   size_t *got, char *detail, size_t dl)
{
    if (ss->b.kind == BUCKET_S3)
        return objstore_s3_get_head(&ss->b, key, head, HEAD_LEN, got, detail, dl);
    return objstore_local_get_head(ss->b.root, key, head, HEAD_LEN, got, detail, dl);
}

static enum source_status get_file(struct snapstore *ss, const char *key, FILE *out, char *detail,
                                   size_t dl)
{
    if (ss->b.kind == BUCKET_S3)
        return objstore_s3_get_file(&ss->b, key, S3_PUT_MAX, out, detail, dl);
    return objstore_local_get_file(ss->b.root, key, LOCAL_MAX, out, detail, dl);
}

/* Checks the downloaded object in f (size bytes) and cuts its trailer off. */
static const char *verify(FILE *f, uint64_t size, const struct snap_ref *ref, int64_t seq)
{
    uint8_t t[TRAILER_LEN], sha[32];
    const char *why;
    if (size < HEAD_LEN + TRAILER_LEN)
        return "too short to be a snapshot";
    uint64_t len = size - TRAILER_LEN;
    if (fseeko(f, (off_t)len, SEEK_SET) != 0 || fread(t, 1, TRAILER_LEN, f) != TRAILER_LEN)
        return "cannot read the local copy";
    if (memcmp(t, TRAILER_MAGIC, 8) != 0 || get_le(t + 8, 8) != len)
        return trailer_check(t, ref, len, seq, t + 48); /* says which */
    if (hash_file(f, len, sha, NULL) != 0)
        return "cannot read the local copy";
    if ((why = trailer_check(t, ref, len, seq, sha)) != NULL)
        return why;
    if (fflush(f) != 0 || ftruncate(fileno(f), (off_t)len) != 0 || fsync(fileno(f)) != 0)
        return "cannot write the local copy";
    return NULL;
}

int64_t snapstore_fetch(struct snapstore *ss, const struct snap_ref *ref, const char *path,
                        const char *tmp, int64_t than, int64_t lo, int64_t hi, int64_t *stored)
{
    char key[1024], detail[512] = "";
    uint8_t head[HEAD_LEN];
    size_t got = 0;
    double t0 = now_s();
    long long id = (long long)ref->instance;
    if (snapstore_key(ss->prefix, ref, key, sizeof key) != 0)
        return -1;
    const char *name = key + strlen(ss->prefix);
    *stored = -1;
    /* The header first: a snapshot the log cannot bring up to date, or no
     * newer than the local one, is not worth downloading. */
    enum source_status st = get_head(ss, key, head, &got, detail, sizeof detail);
    if (st == SRC_OBS_MISSING) {
        log_info("index %lld: no snapshot in %s%s", id, ss->where, name);
        return -1;
    }
    if (st != SRC_OK) {
        log_info("index %lld: snapshot store %s unusable (%s)", id, ss->where,
                 detail[0] ? detail : "failed");
        return -1;
    }
    int64_t seq = head_seq(head, got);
    if (seq < 0) {
        log_info("index %lld: %s%s is not a snapshot, ignored", id, ss->where, name);
        return -1;
    }
    if (seq < lo || seq > hi) {
        log_info("index %lld: stored snapshot at seq %lld is outside the change log "
                 "(%lld..%lld), ignored",
                 id, (long long)seq, (long long)lo, (long long)hi);
        return -1;
    }
    if (seq <= than) {
        *stored = seq; /* not checked whole: if it is bad, a fetch refuses it */
        log_info("index %lld: stored snapshot at seq %lld is no newer than the local one "
                 "(seq %lld)",
                 id, (long long)seq, (long long)than);
        return -1;
    }
    const char *why = NULL, *verb = "not fetched";
    struct stat sb;
    FILE *f = fopen(tmp, "w+be");
    if (!f) {
        why = strerror(errno);
    } else if ((st = get_file(ss, key, f, detail, sizeof detail)) != SRC_OK) {
        why = detail[0] ? detail : "download failed";
    } else if (fstat(fileno(f), &sb) != 0) {
        why = strerror(errno);
    } else if ((why = verify(f, (uint64_t)sb.st_size, ref, seq)) != NULL) {
        verb = "refused";
    } else {
        /* Renamed only once whole and checked: path is never half written. */
        if (fclose(f) != 0)
            why = "cannot write the local copy";
        else if (rename(tmp, path) != 0)
            why = strerror(errno);
        f = NULL;
    }
    if (f)
        fclose(f);
    if (why) {
        unlink(tmp);
        log_info("index %lld: stored snapshot %s%s %s: %s", id, ss->where, name, verb, why);
        return -1;
    }
    *stored = seq;
    log_info("index %lld: fetched snapshot at seq %lld from %s%s (%lld bytes, %.3f s)", id,
             (long long)seq, ss->where, name, (long long)sb.st_size - TRAILER_LEN, now_s() - t0);
    return seq;
}

int snapstore_delete(struct snapstore *ss, int64_t instance, int shard)
{
    char key[1024], detail[512] = "";
    struct snap_ref ref = {.instance = instance, .shard = shard};
    if (snapstore_key(ss->prefix, &ref, key, sizeof key) != 0)
        return -1;
    enum source_status st = ss->b.kind == BUCKET_S3
                                ? objstore_s3_delete(&ss->b, key, detail, sizeof detail)
                                : objstore_local_delete(ss->b.root, key, detail, sizeof detail);
    if (st == SRC_OK || st == SRC_OBS_MISSING)
        return 0;
    log_info("index %lld: stored snapshot %s%s not deleted (%s); it is refused if ever read",
             (long long)instance, ss->where, key + strlen(ss->prefix), detail);
    return -1;
}
