/* registry.c: loads, caches and snapshots per-instance indexes.
 *
 * Files: <data_dir>/index/<id>.faiss with <id>.seq beside it holding the
 * instance's change_seq when it was saved. At load the snapshot is used only
 * if that value still matches SQLite; otherwise (a crash, a kill -9 after
 * writes) the index is rebuilt from the vectors in SQLite, so every
 * acknowledged item is searchable again. Snapshots are written at clean
 * shutdown, atomically (see save): a failed one, e.g. on a full disk, costs
 * only a rebuild at the next start. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "config/config.h"
#include "index/extract.h"
#include "index/vindex.h"
#include "server/http_log.h"
#include "server/metrics.h"
#include "server/registry.h"
#include "storage/db.h"
#include "storage/vectors.h"

struct registry {
    pthread_mutex_t lock;
    struct db *db;
    char *dir; /* <data_dir>/index */
    struct vindex_options opt;
    char *factory;
    struct instance_rt **items;
    size_t n, cap;
};

static void paths(const struct registry *reg, int64_t id, char *faiss, char *seq, size_t len)
{
    snprintf(faiss, len, "%s/%lld.faiss", reg->dir, (long long)id);
    snprintf(seq, len, "%s/%lld.seq", reg->dir, (long long)id);
}

int registry_new(const struct config *cfg, struct db *db, struct registry **out, char *errbuf,
                 size_t errlen)
{
    struct registry *reg = calloc(1, sizeof *reg);
    if (!reg)
        goto nomem;
    pthread_mutex_init(&reg->lock, NULL);
    reg->db = db;
    if (asprintf(&reg->dir, "%s/index", cfg->data_dir) < 0) {
        reg->dir = NULL;
        goto nomem;
    }
    if (mkdir(reg->dir, 0755) != 0 && errno != EEXIST) {
        snprintf(errbuf, errlen, "cannot create %s: %s", reg->dir, strerror(errno));
        registry_free(reg);
        return -1;
    }
    reg->factory = strdup(cfg->index.ann_factory);
    if (!reg->factory)
        goto nomem;
    reg->opt.dim = EXTRACT_DIM;
    reg->opt.exact_max = cfg->index.exact_max;
    reg->opt.ann_factory = reg->factory;
    *out = reg;
    return 0;
nomem:
    snprintf(errbuf, errlen, "out of memory");
    registry_free(reg);
    return -1;
}

static int add_batch(void *arg, size_t n, const int64_t *ids, const float *vecs)
{
    return vindex_add(arg, n, ids, vecs);
}

static long long read_seq(const char *path)
{
    FILE *f = fopen(path, "r");
    long long v = -1;
    if (f) {
        if (fscanf(f, "%lld", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

/* Snapshot if current, else a rebuild from SQLite. */
static struct vindex *load_index(struct registry *reg, int64_t id)
{
    char faiss[4096], seq[4096], err[256];
    paths(reg, id, faiss, seq, sizeof faiss);
    struct vindex *vi = NULL;
    /* exact_max counts items: an instance with views or regions holds
     * several vectors per item and stays exact just as long. */
    struct vindex_options opt = reg->opt;
    opt.exact_max *= vectors_per_item(reg->db, id);
    /* Temp files of a save a crash cut short: never read, and they hold space. */
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", faiss);
    unlink(tmp);
    snprintf(tmp, sizeof tmp, "%s.tmp", seq);
    unlink(tmp);
    long long want = vectors_change_seq(reg->db, id);
    if (want >= 0 && read_seq(seq) == want && access(faiss, R_OK) == 0) {
        if (vindex_load(faiss, &opt, &vi, err, sizeof err) == 0)
            return vi;
        log_info("index %lld: snapshot unusable (%s), rebuilding", (long long)id, err);
    }
    /* Whatever happens next, the old snapshot is stale. */
    unlink(seq);
    if (vindex_create(&opt, &vi, err, sizeof err) != 0) {
        log_info("index %lld: %s", (long long)id, err);
        return NULL;
    }
    if (vectors_for_each(reg->db, id, reg->opt.dim, add_batch, vi) != 0) {
        log_info("index %lld: rebuild failed: %s", (long long)id, vindex_last_error());
        vindex_free(vi);
        return NULL;
    }
    return vi;
}

struct instance_rt *registry_get(struct registry *reg, int64_t instance_id)
{
    pthread_mutex_lock(&reg->lock);
    for (size_t i = 0; i < reg->n; i++)
        if (reg->items[i]->id == instance_id) {
            struct instance_rt *rt = reg->items[i];
            rt->refs++;
            pthread_mutex_unlock(&reg->lock);
            return rt;
        }
    /* Loading under the registry lock keeps two threads from building the
     * same index twice; it happens once per instance per process. */
    struct instance_rt *rt = NULL;
    if (reg->n == reg->cap) {
        size_t cap = reg->cap ? reg->cap * 2 : 16;
        struct instance_rt **g = realloc(reg->items, cap * sizeof *g);
        if (!g)
            goto out;
        reg->items = g;
        reg->cap = cap;
    }
    struct vindex *vi = load_index(reg, instance_id);
    if (!vi)
        goto out;
    rt = calloc(1, sizeof *rt);
    if (!rt) {
        vindex_free(vi);
        goto out;
    }
    rt->id = instance_id;
    rt->vi = vi;
    rt->refs = 2; /* the registry's and the caller's */
    pthread_mutex_init(&rt->write_lock, NULL);
    reg->items[reg->n++] = rt;
out:
    pthread_mutex_unlock(&reg->lock);
    return rt;
}

static void remove_files(struct registry *reg, int64_t id)
{
    char faiss[4096], seq[4096];
    paths(reg, id, faiss, seq, sizeof faiss);
    unlink(seq);
    unlink(faiss);
}

static void rt_free(struct instance_rt *rt)
{
    vindex_free(rt->vi);
    pthread_mutex_destroy(&rt->write_lock);
    free(rt);
}

void registry_put(struct registry *reg, struct instance_rt *rt)
{
    if (!rt)
        return;
    pthread_mutex_lock(&reg->lock);
    int last = --rt->refs == 0;
    pthread_mutex_unlock(&reg->lock);
    if (last)
        rt_free(rt);
}

void registry_drop(struct registry *reg, int64_t instance_id)
{
    struct instance_rt *rt = NULL;
    pthread_mutex_lock(&reg->lock);
    for (size_t i = 0; i < reg->n; i++)
        if (reg->items[i]->id == instance_id) {
            rt = reg->items[i];
            reg->items[i] = reg->items[--reg->n];
            rt->dropped = 1;
            break;
        }
    remove_files(reg, instance_id);
    pthread_mutex_unlock(&reg->lock);
    registry_put(reg, rt);
}

/* Writes `v` to `path` through a temp file + fsync + rename, every step
 * checked, so a full disk leaves the old file whole. */
static int write_seq(const char *path, long long v)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "we");
    if (!f)
        return -1;
    int ok = fprintf(f, "%lld\n", v) > 0;
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* The snapshot pair is written index first, then seq, each atomically. A
 * failure or crash between them leaves the new index beside the old seq,
 * which no longer matches change_seq: the next start rebuilds from SQLite.
 * An unchanged instance is not rewritten, so an old snapshot that is still
 * current survives a save that would fail (a full disk at shutdown). */
static void save(struct registry *reg, struct instance_rt *rt)
{
    char faiss[4096], seq[4096], err[256];
    paths(reg, rt->id, faiss, seq, sizeof faiss);
    /* Under the write lock no add sits between its COMMIT and the index, so
     * the index written is exactly the state change_seq names. */
    pthread_mutex_lock(&rt->write_lock);
    long long cs = vectors_change_seq(reg->db, rt->id);
    if (cs < 0 || (read_seq(seq) == cs && access(faiss, R_OK) == 0)) {
        pthread_mutex_unlock(&rt->write_lock);
        return;
    }
    if (vindex_save(rt->vi, faiss, err, sizeof err) != 0)
        log_info("index %lld: snapshot failed, the next start rebuilds it: %s", (long long)rt->id,
                 err);
    else if (write_seq(seq, cs) != 0)
        log_info("index %lld: snapshot seq failed, the next start rebuilds it: %s",
                 (long long)rt->id, strerror(errno));
    pthread_mutex_unlock(&rt->write_lock);
}

void registry_free(struct registry *reg)
{
    if (!reg)
        return;
    for (size_t i = 0; i < reg->n; i++) {
        save(reg, reg->items[i]);
        registry_put(reg, reg->items[i]);
    }
    free(reg->items);
    free(reg->factory);
    free(reg->dir);
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

int registry_render_metrics(struct registry *reg, char **buf, size_t *len, size_t *cap)
{
    int rc = metrics_printf(buf, len, cap,
                            "# HELP imgsearch_index_vectors Vectors in each loaded index.\n"
                            "# TYPE imgsearch_index_vectors gauge\n");
    pthread_mutex_lock(&reg->lock);
    for (size_t i = 0; i < reg->n && rc == 0; i++)
        rc = metrics_printf(buf, len, cap, "imgsearch_index_vectors{instance_id=\"%lld\"} %zu\n",
                            (long long)reg->items[i]->id, vindex_count(reg->items[i]->vi));
    if (rc == 0)
        rc = metrics_printf(buf, len, cap,
                            "# HELP imgsearch_index_exact 1: exact search, 0: ANN index.\n"
                            "# TYPE imgsearch_index_exact gauge\n");
    for (size_t i = 0; i < reg->n && rc == 0; i++)
        rc = metrics_printf(buf, len, cap, "imgsearch_index_exact{instance_id=\"%lld\"} %d\n",
                            (long long)reg->items[i]->id, vindex_is_exact(reg->items[i]->vi));
    pthread_mutex_unlock(&reg->lock);
    return rc;
}
