/* registry.c: loads, caches and snapshots per-instance indexes.
 *
 * Snapshot: <data_dir>/index/<id>.snap, one file: an 8-byte magic, the
 * instance's change_seq S at the time, then the FAISS index, exactly the
 * state of SQLite at S (it is serialised under the instance's write lock, and
 * every write COMMITs then indexes under that lock). One file, written to a
 * temp file, fsynced and renamed, so the seq can never disagree with the
 * index beside it, and a failure (a full disk) leaves the previous one whole.
 *
 * Replay: every item write logs itself in SQLite in its own transaction
 * (storage/items.c): an inserted row carries the seq that inserted it, a
 * removed row leaves a tombstone (row, seq). A load reads the snapshot at S
 * and, if the log is complete past S (S >= replay_floor), removes the vectors
 * of every row tombstoned or inserted after S, then adds the rows inserted
 * after S that still exist: restart cost follows the changes since the
 * snapshot, not the size of the instance. Anything else (no snapshot, a
 * corrupt one, one older than the log) rebuilds from SQLite.
 *
 * Background: a thread snapshots an instance once snapshot_changes changes
 * or a snapshot_seconds-old change are pending, then prunes the tombstones
 * the snapshot covers. Searches go on meanwhile (the index read lock); item
 * writes of that instance wait only while the index is serialised.
 *
 * Legacy files (<id>.faiss + <id>.seq, from before the change log) are still
 * read, with the same replay rule, and replaced by the next snapshot.
 *
 * Shared database (PostgreSQL, docs/cluster.md): other nodes write too, and
 * their writes never take this node's write lock, so an index is a cache at
 * its applied_seq. Every get reads change_seq and, when it is ahead, replays
 * the log past applied_seq onto the live index under the write lock, in one
 * REPEATABLE READ transaction so the tombstones, rows and seq it reads are
 * one state. Loads read in such a transaction too. Snapshots are taken at
 * applied_seq, and tombstones are pruned only below the lowest seq every
 * live node recorded (storage/nodes.h); an index whose log was pruned past
 * it anyway (its node was taken for dead) is reloaded.
 *
 * Compact instances grow into [index] compact_ann_factory (a PQ index: a few
 * dozen bytes a vector in RAM and in the snapshot) whose top compact_rerank
 * candidates vindex re-scores with the exact int8 codes read back from the
 * database (vectors_fetch), the copy the snapshot does not duplicate. Float
 * instances keep ann_factory and its own scores.
 *
 * Snapshot store ([cluster] snapshot_bucket, server/snapstore.h): each
 * snapshot is also uploaded, by the snapshot thread (or a clean stop), and
 * the log is pruned only after that succeeded, so the stored copy stays
 * replayable. A load fetches the stored one when it is newer than a usable
 * local one and inside the log; it replaces the local file and is then read
 * and replayed like it. A drop deletes it too. Each shard of an instance
 * has its own object (snapshots/<instance>/<shard>.snap). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "config/config.h"
#include "index/extract.h"
#include "index/projection.h"
#include "index/vindex.h"
#include "server/compactor.h"
#include "server/http_log.h"
#include "server/metrics.h"
#include "server/registry.h"
#include "server/snapstore.h"
#include "server/spaces.h"
#include "storage/db.h"
#include "storage/nodes.h"
#include "storage/shard.h"
#include "storage/vectors.h"

#define SNAP_MAGIC "IMGSNAP1"
#define SNAP_MAGIC_LEN 8

struct registry {
    pthread_mutex_t lock;
    struct db *db;
    char *dir;                 /* <data_dir>/index */
    struct vindex_options opt; /* dim: float instances' */
    struct spaces *spaces;
    char *factory;
    char *compact_factory;
    int compact_rerank;
    long compact_exact_max; /* items: min([index] exact_max, compact_exact_max) */
    long compact_list_max;
    struct instance_rt **items;
    size_t n, cap;
    long snapshot_changes, snapshot_seconds;
    int shared;                /* PostgreSQL: other nodes write the same instances */
    long long node_timeout_ms; /* [cluster]: whose applied seqs bound pruning */
    pthread_t saver;
    int saver_running, stopping;
    pthread_cond_t wake;
    struct snapstore *snaps; /* NULL: snapshots stay in dir only */
};

enum file_kind { F_SNAP, F_LEGACY_FAISS, F_LEGACY_SEQ };

/* The one place that names an index file: shard 0 (every instance of one
 * shard) keeps <id>.snap and the legacy names, shard s > 0 is <id>.<s>.snap. */
static void path_of(const struct registry *reg, int64_t id, int shard, enum file_kind k,
                    const char *suffix, char *buf, size_t len)
{
    static const char *const ext[] = {"snap", "faiss", "seq"};
    if (shard > 0)
        snprintf(buf, len, "%s/%lld.%d.%s%s", reg->dir, (long long)id, shard, ext[k], suffix);
    else
        snprintf(buf, len, "%s/%lld.%s%s", reg->dir, (long long)id, ext[k], suffix);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *saver_main(void *arg);

/* " shard N" for the log, "" for an instance of one shard. Thread-local:
 * several threads log at once. */
static const char *shard_label(const struct instance_rt *rt)
{
    static _Thread_local char buf[32];
    if (rt->filter < 0)
        return "";
    snprintf(buf, sizeof buf, " shard %d", rt->shard);
    return buf;
}

/* A factory string FAISS refuses (a typo, a fast-scan index) stops the
 * start, rather than every add past exact_max later. */
static int check_factory(const char *factory, int dim, const char *key, char *errbuf, size_t errlen)
{
    struct vindex_options opt = {.dim = dim, .exact_max = 1, .ann_factory = factory};
    struct vindex *vi = NULL;
    char err[256];
    if (vindex_create(&opt, &vi, err, sizeof err) != 0) {
        snprintf(errbuf, errlen, "[index] %s = %s: %s", key, factory, err);
        return -1;
    }
    vindex_free(vi);
    return 0;
}

int registry_new(const struct config *cfg, struct spaces *sp, struct db *db, struct registry **out,
                 char *errbuf, size_t errlen)
{
    struct registry *reg = calloc(1, sizeof *reg);
    if (!reg)
        goto nomem;
    pthread_mutex_init(&reg->lock, NULL);
    pthread_cond_init(&reg->wake, NULL);
    reg->db = db;
    reg->spaces = sp;
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
    reg->compact_factory = strdup(cfg->index.compact_ann_factory);
    if (!reg->factory || !reg->compact_factory)
        goto nomem;
    reg->compact_rerank = (int)cfg->index.compact_rerank;
    reg->compact_list_max = cfg->index.compact_list_max;
    reg->compact_exact_max = cfg->index.compact_exact_max < cfg->index.exact_max
                                 ? cfg->index.compact_exact_max
                                 : cfg->index.exact_max;
    reg->opt.dim = EXTRACT_DIM;
    reg->opt.exact_max = cfg->index.exact_max;
    reg->opt.ann_factory = reg->factory;
    if (check_factory(reg->factory, EXTRACT_DIM, "ann_factory", errbuf, errlen) != 0 ||
        check_factory(reg->compact_factory, COMPACT_OUT_DIM, "compact_ann_factory", errbuf,
                      errlen) != 0) {
        registry_free(reg);
        return -1;
    }
    reg->snapshot_changes = cfg->index.snapshot_changes;
    reg->snapshot_seconds = cfg->index.snapshot_seconds;
    reg->shared = cfg->storage.backend == STORAGE_POSTGRES;
    reg->node_timeout_ms = cfg->cluster.node_timeout_ms;
    if (snapstore_new(cfg, &reg->snaps, errbuf, errlen) != 0) {
        registry_free(reg);
        return -1;
    }
    if (reg->snapshot_changes > 0 || reg->snapshot_seconds > 0) {
        if (pthread_create(&reg->saver, NULL, saver_main, reg) != 0) {
            snprintf(errbuf, errlen, "cannot start the snapshot thread");
            registry_free(reg);
            return -1;
        }
        reg->saver_running = 1;
    }
    *out = reg;
    return 0;
nomem:
    snprintf(errbuf, errlen, "out of memory");
    registry_free(reg);
    return -1;
}

/* --- load -------------------------------------------------------------------- */

static int add_batch(void *arg, size_t n, const int64_t *ids, const float *vecs)
{
    return vindex_add(arg, n, ids, vecs);
}

/* A re-partition's threads fetched on connections of their own: closed as
 * they exit. */
static void fetch_done(void *arg)
{
    struct instance_rt *rt = arg;
    db_thread_done(rt->reg->db);
}

/* The re-rank's exact vectors: a compact instance's codes in the database. */
static int fetch_codes(void *arg, size_t n, const int64_t *ids, float *vecs, unsigned char *found)
{
    struct instance_rt *rt = arg;
    return vectors_fetch(rt->reg->db, rt->id, n, ids, rt->dim, rt->pr, vecs, found);
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

/* The snapshot's seq (-1: none) and, when `opt` is given, its index. */
static int64_t read_snapshot(struct registry *reg, int64_t id, int shard,
                             const struct vindex_options *opt, struct vindex **vi)
{
    char path[4096], err[256];
    path_of(reg, id, shard, F_SNAP, "", path, sizeof path);
    FILE *f = fopen(path, "rbe");
    if (!f)
        return -1;
    char magic[SNAP_MAGIC_LEN];
    int64_t seq = -1;
    if (fread(magic, 1, sizeof magic, f) != sizeof magic ||
        memcmp(magic, SNAP_MAGIC, SNAP_MAGIC_LEN) != 0 || fread(&seq, sizeof seq, 1, f) != 1 ||
        seq < 0) {
        log_info("index %lld: %s is not a snapshot", (long long)id, path);
        seq = -1;
    } else if (opt && vindex_read(f, opt, vi, err, sizeof err) != 0) {
        log_info("index %lld: snapshot unusable (%s)", (long long)id, err);
        seq = -1;
    }
    fclose(f);
    return seq;
}

static int64_t read_legacy(struct registry *reg, int64_t id, const struct vindex_options *opt,
                           struct vindex **vi)
{
    char faiss[4096], seq[4096], err[256];
    path_of(reg, id, 0, F_LEGACY_FAISS, "", faiss, sizeof faiss);
    path_of(reg, id, 0, F_LEGACY_SEQ, "", seq, sizeof seq);
    long long s = read_seq(seq);
    if (s < 0 || access(faiss, R_OK) != 0)
        return -1;
    if (opt && vindex_load(faiss, opt, vi, err, sizeof err) != 0) {
        log_info("index %lld: snapshot unusable (%s)", (long long)id, err);
        return -1;
    }
    return s;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Brings a snapshot taken at `since` up to date: removes every vector of a
 * row tombstoned or inserted after it (absent ones are skipped, so a replay
 * is idempotent), then adds the rows inserted after it that still exist. */
static int replay(struct registry *reg, const struct instance_rt *rt, struct vindex *vi,
                  int64_t since, int dim, const struct projection *pr)
{
    int64_t id = rt->id;
    int64_t *rows = NULL, *ids = NULL;
    size_t n = 0;
    int rc = -1;
    if (vectors_changed_rows(reg->db, id, since, &rows, &n) != 0)
        goto out;
    if (n) {
        ids = malloc(n * VEC_KINDS * sizeof *ids);
        if (!ids)
            goto out;
        for (size_t i = 0; i < n; i++)
            for (int k = 0; k < VEC_KINDS; k++)
                ids[i * VEC_KINDS + (size_t)k] = vec_id(rows[i], k);
        qsort(ids, n * VEC_KINDS, sizeof *ids, cmp_i64);
        if (vindex_remove(vi, n * VEC_KINDS, ids) < 0)
            goto out;
    }
    /* Removals above cover every shard (an absent id is skipped); the
     * additions are this shard's rows only. */
    rc = vectors_for_each_shard(reg->db, id, rt->filter, since, dim, pr, add_batch, vi);
out:
    free(rows);
    free(ids);
    return rc;
}

/* A stored snapshot newer than a usable local one (or than none) replaces
 * the local file, which the load then reads like any other. An instance
 * without a change yet (a new one) has nothing worth fetching. */
static void fetch_stored(struct registry *reg, struct instance_rt *rt, int64_t floor, int64_t cs)
{
    char path[4096], tmp[4200];
    struct snap_ref ref;
    if (!reg->snaps || cs <= 0 || snapstore_ref(reg->db, rt->id, rt->shard, &ref) != 0)
        return;
    int64_t s = read_snapshot(reg, rt->id, rt->shard, NULL, NULL);
    path_of(reg, rt->id, rt->shard, F_SNAP, "", path, sizeof path);
    path_of(reg, rt->id, rt->shard, F_SNAP, ".tmp", tmp, sizeof tmp);
    snapstore_fetch(reg->snaps, &ref, path, tmp, s >= floor && s <= cs ? s : -1, floor, cs,
                    &rt->stored_seq);
}

/* A snapshot (replayed) when one is usable, else a rebuild from SQLite. */
static struct vindex *load_index(struct registry *reg, struct instance_rt *rt)
{
    char path[4096], err[256];
    int64_t id = rt->id, cs, floor;
    struct vindex *vi = NULL;
    double t0 = now_s();
    /* exact_max counts items: an instance with views or regions holds
     * several vectors per item and stays exact just as long. */
    struct vindex_options opt = reg->opt;
    long per_item = vectors_per_item(reg->db, id);
    opt.exact_max *= per_item;
    /* A compact instance's index holds its decoded codes (out_dim-d); a
     * snapshot of another dimension fails vindex_read and is rebuilt. */
    char *digest = NULL;
    const struct projection *pr = NULL;
    if (vectors_projection(reg->db, id, &digest) == DB_ERROR) {
        log_info("index %lld: cannot read its descriptor space", (long long)id);
        return NULL;
    }
    if (digest) {
        pr = spaces_get(reg->spaces, digest);
        if (!pr) {
            log_info("index %lld: compact descriptors of projection %.12s, which this server "
                     "does not know",
                     (long long)id, digest);
            free(digest);
            return NULL;
        }
        opt.dim = pr->out_dim;
        opt.ann_factory = reg->compact_factory;
        opt.exact_max = reg->compact_exact_max * per_item;
        opt.rerank = reg->compact_rerank;
        opt.list_max = reg->compact_list_max;
        opt.fetch = fetch_codes;
        opt.fetch_done = fetch_done;
        opt.fetch_arg = rt;
        free(digest);
    }
    rt->dim = opt.dim;
    rt->pr = pr;
    /* An instance of several shards: this index holds one shard's rows. */
    int shards = vectors_shards(reg->db, id);
    if (shards < 0) {
        log_info("index %lld: cannot read its number of shards", (long long)id);
        return NULL;
    }
    rt->filter = shards > 1 ? rt->shard : -1;
    if (rt->filter < 0 && rt->shard > 0)
        return NULL; /* no such shard */
    /* Temp files of a save a crash cut short: never read, and they hold space. */
    for (int k = F_SNAP; k <= F_LEGACY_SEQ; k++) {
        path_of(reg, id, rt->shard, k, ".tmp", path, sizeof path);
        unlink(path);
    }
    rt->snap_seq = rt->stored_seq = -1;
    if (vectors_log_state(reg->db, id, &cs, &floor) == 0) {
        fetch_stored(reg, rt, floor, cs);
        /* Peek at the seq first: a snapshot the log cannot bring up to date
         * is not worth reading. */
        int64_t s = read_snapshot(reg, id, rt->shard, NULL, NULL);
        int legacy = s < 0 && rt->shard == 0;
        if (legacy)
            s = read_legacy(reg, id, NULL, NULL);
        if (s >= 0 && s >= floor && s <= cs) {
            s = legacy ? read_legacy(reg, id, &opt, &vi)
                       : read_snapshot(reg, id, rt->shard, &opt, &vi);
            if (s >= 0 && replay(reg, rt, vi, s, opt.dim, pr) == 0) {
                rt->snap_seq = legacy ? -1 : s; /* a legacy file is replaced soon */
                rt->load_replayed = cs - s;
                atomic_store(&rt->applied_seq, cs);
                rt->load_s = now_s() - t0;
                log_info("index %lld%s: loaded snapshot at seq %lld, replayed %lld changes "
                         "(%.3f s)",
                         (long long)id, shard_label(rt), (long long)s, (long long)(cs - s),
                         rt->load_s);
                return vi;
            }
            if (s >= 0)
                log_info("index %lld: replay failed (%s), rebuilding", (long long)id,
                         vindex_last_error());
            vindex_free(vi);
            vi = NULL;
        } else if (s >= 0) {
            log_info("index %lld: snapshot at seq %lld is outside the change log (%lld..%lld)",
                     (long long)id, (long long)s, (long long)floor, (long long)cs);
        }
    }
    /* Read before the rows: a change after it is replayed again, harmlessly. */
    atomic_store(&rt->applied_seq, vectors_log_state(reg->db, id, &cs, &floor) == 0 ? cs : 0);
    if (vindex_create(&opt, &vi, err, sizeof err) != 0) {
        log_info("index %lld: %s", (long long)id, err);
        return NULL;
    }
    if (vectors_for_each_shard(reg->db, id, rt->filter, -1, opt.dim, pr, add_batch, vi) != 0) {
        log_info("index %lld: rebuild failed: %s", (long long)id, vindex_last_error());
        vindex_free(vi);
        return NULL;
    }
    rt->load_rebuilt = 1;
    rt->load_s = now_s() - t0;
    log_info("index %lld%s: rebuilt from SQLite, %zu vectors (%.3f s)", (long long)id,
             shard_label(rt), vindex_count(vi), rt->load_s);
    return vi;
}

/* On a shared database: a read-only transaction that sees one state of it
 * for all its statements (READ COMMITTED would let a commit land between
 * the tombstones and the rows of a replay). */
static int snapshot_txn_begin(struct sql_conn *c)
{
    if (sql_begin(c) != 0)
        return -1;
    if (sql_exec(c, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY") != 0) {
        sql_rollback(c);
        return -1;
    }
    return 0;
}

/* Loaded (a big rebuild switches to the ANN index on the way, in line);
 * from then on, live adds switch in the background (index/vindex.h), so an
 * instance's adds do not wait minutes for a training. */
static struct vindex *load_index_shared(struct registry *reg, struct instance_rt *rt)
{
    struct vindex *vi = NULL;
    struct sql_conn *c = reg->shared ? db_conn(reg->db) : NULL;
    if (!reg->shared) {
        vi = load_index(reg, rt);
    } else if (c && snapshot_txn_begin(c) == 0) {
        vi = load_index(reg, rt);
        sql_rollback(c); /* read only: nothing to commit */
    }
    if (vi)
        vindex_set_background_switch(vi, 1);
    return vi;
}

/* Brings a live index up to the database's change_seq. 0: current; 1: the
 * log no longer reaches back to it (pruned past it): reload; -1: error. */
static int catch_up(struct registry *reg, struct instance_rt *rt)
{
    long long cs = vectors_change_seq(reg->db, rt->id);
    if (cs < 0)
        return -1;
    if (cs <= atomic_load(&rt->applied_seq))
        return 0;
    pthread_mutex_lock(&rt->write_lock);
    int rc = 0;
    int64_t applied = atomic_load(&rt->applied_seq), now, floor;
    if (applied < cs) {
        struct sql_conn *c = db_conn(reg->db);
        if (!c || snapshot_txn_begin(c) != 0) {
            rc = -1;
        } else {
            if (vectors_log_state(reg->db, rt->id, &now, &floor) != 0)
                rc = -1;
            else if (floor > applied)
                rc = 1;
            else if (replay(reg, rt, rt->vi, applied, rt->dim, rt->pr) != 0)
                rc = 1; /* half applied: only a reload is right */
            else
                atomic_store(&rt->applied_seq, now);
            sql_rollback(c);
        }
    }
    pthread_mutex_unlock(&rt->write_lock);
    if (rc > 0)
        log_info("index %lld: the change log no longer reaches seq %lld, reloading",
                 (long long)rt->id, (long long)applied);
    return rc;
}

/* Takes rt out of the registry (holders keep it until their put); no
 * snapshot of it is written any more. */
static void evict(struct registry *reg, struct instance_rt *rt)
{
    int found = 0;
    pthread_mutex_lock(&reg->lock);
    for (size_t i = 0; i < reg->n; i++)
        if (reg->items[i] == rt) {
            reg->items[i] = reg->items[--reg->n];
            rt->dropped = 1;
            found = 1;
            break;
        }
    pthread_mutex_unlock(&reg->lock);
    if (found)
        registry_put(reg, rt);
}

static struct instance_rt *get_loaded(struct registry *reg, int64_t instance_id, int shard);

struct instance_rt *registry_get(struct registry *reg, int64_t instance_id)
{
    return registry_get_shard(reg, instance_id, 0);
}

struct instance_rt *registry_get_shard(struct registry *reg, int64_t instance_id, int shard)
{
    if (shard < 0)
        return NULL;
    for (int attempt = 0;; attempt++) {
        struct instance_rt *rt = get_loaded(reg, instance_id, shard);
        if (rt)
            atomic_store(&rt->used_ms, now_ms());
        if (!rt || !reg->shared)
            return rt;
        int s = catch_up(reg, rt);
        if (s == 0)
            return rt;
        if (s > 0)
            evict(reg, rt);
        registry_put(reg, rt);
        if (s < 0 || attempt > 0)
            return NULL;
    }
}

void registry_release_shards(struct registry *reg, long long idle_ms,
                             int (*keep)(void *arg, int64_t instance_id, int shard), void *arg)
{
    /* Candidates under the lock (with a reference), the owner asked outside it. */
    long long now = now_ms();
    struct instance_rt **cand = NULL;
    size_t n = 0;
    pthread_mutex_lock(&reg->lock);
    cand = malloc((reg->n ? reg->n : 1) * sizeof *cand);
    for (size_t i = 0; cand && i < reg->n; i++) {
        struct instance_rt *rt = reg->items[i];
        if (rt->filter >= 0 && now - atomic_load(&rt->used_ms) > idle_ms) {
            rt->refs++;
            cand[n++] = rt;
        }
    }
    pthread_mutex_unlock(&reg->lock);
    for (size_t i = 0; i < n; i++) {
        struct instance_rt *rt = cand[i];
        if (!keep(arg, rt->id, rt->shard)) {
            log_info("index %lld%s: released (another node owns it)", (long long)rt->id,
                     shard_label(rt));
            evict(reg, rt);
        }
        registry_put(reg, rt);
    }
    free(cand);
}

void registry_wait_writer(struct instance_rt *rt)
{
    pthread_mutex_lock(&rt->write_lock);
    pthread_mutex_unlock(&rt->write_lock);
}

void registry_wrote(struct instance_rt *rt, int64_t seq)
{
    int64_t expect = seq - 1;
    atomic_compare_exchange_strong(&rt->applied_seq, &expect, seq);
}

static struct instance_rt *find(struct registry *reg, int64_t instance_id, int shard)
{
    for (size_t i = 0; i < reg->n; i++)
        if (reg->items[i]->id == instance_id && reg->items[i]->shard == shard)
            return reg->items[i];
    return NULL;
}

struct instance_rt *registry_peek_shard(struct registry *reg, int64_t instance_id, int shard)
{
    pthread_mutex_lock(&reg->lock);
    struct instance_rt *rt = find(reg, instance_id, shard);
    if (rt)
        rt->refs++;
    pthread_mutex_unlock(&reg->lock);
    return rt;
}

int registry_has_shard(struct registry *reg, int64_t instance_id, int shard)
{
    pthread_mutex_lock(&reg->lock);
    int has = find(reg, instance_id, shard) != NULL;
    pthread_mutex_unlock(&reg->lock);
    return has;
}

/* The seq this entry may still replay from: its snapshot's, else its index's. */
static int64_t replay_from(const struct instance_rt *rt)
{
    int64_t a = atomic_load(&rt->applied_seq);
    return rt->snap_seq >= 0 && rt->snap_seq < a ? rt->snap_seq : a;
}

/* The lowest replay_from over this node's loaded shards of the instance
 * (INT64_MAX: none), and with a snapshot store the lowest stored copy's seq
 * too (0 while one has none yet): a shard's stored copy stays replayable
 * even when another shard's snapshot prunes the log they share. Called with
 * the registry lock held. */
static int64_t local_min_applied(struct registry *reg, int64_t instance_id)
{
    int64_t m = INT64_MAX;
    for (size_t i = 0; i < reg->n; i++) {
        const struct instance_rt *rt = reg->items[i];
        if (rt->id != instance_id)
            continue;
        if (replay_from(rt) < m)
            m = replay_from(rt);
        if (reg->snaps && (rt->stored_seq < 0 ? 0 : rt->stored_seq) < m)
            m = rt->stored_seq < 0 ? 0 : rt->stored_seq;
    }
    return m;
}

int registry_applied(struct registry *reg, int64_t **ids, int64_t **seqs, size_t *n)
{
    pthread_mutex_lock(&reg->lock);
    *n = 0;
    *ids = malloc((reg->n ? reg->n : 1) * sizeof **ids);
    *seqs = malloc((reg->n ? reg->n : 1) * sizeof **seqs);
    if (!*ids || !*seqs) {
        pthread_mutex_unlock(&reg->lock);
        free(*ids);
        free(*seqs);
        *ids = *seqs = NULL;
        *n = 0;
        return -1;
    }
    /* One row per instance (node_applied's key): its shards' lowest. */
    for (size_t i = 0; i < reg->n; i++) {
        int64_t id = reg->items[i]->id;
        int seen = 0;
        for (size_t j = 0; j < *n && !seen; j++)
            seen = (*ids)[j] == id;
        if (!seen) {
            (*ids)[*n] = id;
            (*seqs)[(*n)++] = local_min_applied(reg, id);
        }
    }
    pthread_mutex_unlock(&reg->lock);
    return 0;
}

static struct instance_rt *get_loaded(struct registry *reg, int64_t instance_id, int shard)
{
    pthread_mutex_lock(&reg->lock);
    struct instance_rt *found = find(reg, instance_id, shard);
    if (found) {
        found->refs++;
        pthread_mutex_unlock(&reg->lock);
        return found;
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
    rt = calloc(1, sizeof *rt);
    if (!rt)
        goto out;
    rt->id = instance_id;
    rt->shard = shard;
    rt->reg = reg;
    rt->vi = load_index_shared(reg, rt);
    if (!rt->vi) {
        free(rt);
        rt = NULL;
        goto out;
    }
    rt->refs = 2; /* the registry's and the caller's */
    pthread_mutex_init(&rt->write_lock, NULL);
    reg->items[reg->n++] = rt;
out:
    pthread_mutex_unlock(&reg->lock);
    return rt;
}

/* --- release ----------------------------------------------------------------- */

static void remove_shard_files(struct registry *reg, int64_t id, int shard)
{
    char path[4096];
    for (int k = F_SNAP; k <= (shard == 0 ? F_LEGACY_SEQ : F_SNAP); k++) {
        path_of(reg, id, shard, k, "", path, sizeof path);
        unlink(path);
    }
}

/* Every shard's files: shards this node never loaded may have left some
 * (it owned them once), so the directory is read. */
static void remove_files(struct registry *reg, int64_t id)
{
    remove_shard_files(reg, id, 0);
    DIR *d = opendir(reg->dir);
    if (!d)
        return;
    char prefix[32];
    int plen = snprintf(prefix, sizeof prefix, "%lld.", (long long)id);
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        if (strncmp(e->d_name, prefix, (size_t)plen) != 0)
            continue;
        long sh = strtol(e->d_name + plen, &end, 10);
        if (end != e->d_name + plen && sh > 0 && sh < SHARDS_MAX && *end == '.')
            remove_shard_files(reg, id, (int)sh);
    }
    closedir(d);
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

/* delete_stored: the instance is gone (or its space changed here), so its
 * stored snapshots go too; 0: only this node's copy is stale. */
static void drop(struct registry *reg, int64_t instance_id, int delete_stored)
{
    struct instance_rt **gone = NULL;
    size_t n = 0;
    pthread_mutex_lock(&reg->lock);
    gone = malloc((reg->n ? reg->n : 1) * sizeof *gone);
    for (size_t i = 0; i < reg->n;)
        if (reg->items[i]->id == instance_id) {
            struct instance_rt *rt = reg->items[i];
            reg->items[i] = reg->items[--reg->n];
            rt->dropped = delete_stored ? 1 : 2;
            if (gone)
                gone[n++] = rt;
            else if (--rt->refs == 0) /* out of memory: let go of it here */
                rt_free(rt);
        } else {
            i++;
        }
    remove_files(reg, instance_id);
    pthread_mutex_unlock(&reg->lock);
    /* The stored copies of the shards held here (shard 0 always: an
     * unsharded instance, or one held by no node now). */
    if (reg->snaps && delete_stored)
        snapstore_delete(reg->snaps, instance_id, 0);
    for (size_t i = 0; i < n; i++) {
        if (reg->snaps && delete_stored && gone[i]->shard > 0)
            snapstore_delete(reg->snaps, instance_id, gone[i]->shard);
        registry_put(reg, gone[i]);
    }
    free(gone);
}

void registry_drop(struct registry *reg, int64_t instance_id)
{
    drop(reg, instance_id, 1);
}

void registry_forget(struct registry *reg, int64_t instance_id)
{
    drop(reg, instance_id, 0);
}

void registry_delete_stored(struct registry *reg, int64_t instance_id, int shards)
{
    for (int s = 1; reg->snaps && s < shards; s++)
        snapstore_delete(reg->snaps, instance_id, s);
}

void registry_invalidate(struct registry *reg, struct instance_rt *rt)
{
    pthread_mutex_lock(&reg->lock);
    rt->no_snapshot = 1;
    remove_shard_files(reg, rt->id, rt->shard);
    pthread_mutex_unlock(&reg->lock);
}

/* --- save -------------------------------------------------------------------- */

static int sync_dir(const char *path)
{
    int fd = open(path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* The seq the index holds: the database's on one node (every write
 * indexes under the write lock), applied_seq on a shared database. */
static int current_seq(struct registry *reg, struct instance_rt *rt, int64_t *seq, int64_t *floor)
{
    if (vectors_log_state(reg->db, rt->id, seq, floor) != 0)
        return -1;
    if (reg->shared)
        *seq = atomic_load(&rt->applied_seq);
    return 0;
}

/* Header and index into `f` under the write lock, so the file is exactly the
 * state at *seq. Returns 1 when nothing changed since the last snapshot. */
static int serialise(struct registry *reg, struct instance_rt *rt, FILE *f, int64_t *seq,
                     double *block_s)
{
    int64_t floor;
    pthread_mutex_lock(&rt->write_lock);
    double t0 = now_s();
    int rc = -1;
    if (current_seq(reg, rt, seq, &floor) != 0) {
        errno = EIO;
    } else if (*seq == rt->snap_seq || rt->no_snapshot) {
        rc = 1;
    } else if (fwrite(SNAP_MAGIC, 1, SNAP_MAGIC_LEN, f) == SNAP_MAGIC_LEN &&
               fwrite(seq, sizeof *seq, 1, f) == 1 && vindex_write(rt->vi, f) == 0 &&
               fflush(f) == 0) {
        rc = 0;
    }
    *block_s = now_s() - t0;
    pthread_mutex_unlock(&rt->write_lock);
    return rc;
}

/* The snapshot store's copy of the snapshot at `seq` in `path`, uploaded
 * unless it is there already. 0: stored, or no store. */
static int store_copy(struct registry *reg, struct instance_rt *rt, const char *path, int64_t seq)
{
    struct snap_ref ref;
    if (!reg->snaps || seq < 0 || rt->stored_seq == seq)
        return 0;
    if (snapstore_ref(reg->db, rt->id, rt->shard, &ref) != 0 ||
        snapstore_put(reg->snaps, &ref, path, seq) != 0)
        return -1;
    rt->stored_seq = seq;
    /* Dropped during the upload: the drop's delete may have come first. */
    pthread_mutex_lock(&reg->lock);
    int dropped = rt->dropped == 1; /* 2: forgotten, the stored copies stay */
    pthread_mutex_unlock(&reg->lock);
    if (dropped)
        snapstore_delete(reg->snaps, rt->id, rt->shard);
    return 0;
}

int registry_snapshot(struct registry *reg, struct instance_rt *rt)
{
    char path[4096], tmp[4200];
    int64_t seq = -1;
    double t0 = now_s(), block_s = 0;
    errno = 0;
    path_of(reg, rt->id, rt->shard, F_SNAP, "", path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wbe");
    int rc = f ? serialise(reg, rt, f, &seq, &block_s) : -1;
    const char *why = rc < 0 ? (errno ? strerror(errno) : vindex_last_error()) : "";
    if (f) {
        /* fsync outside the write lock: it is the slow part on a busy disk. */
        int ok = rc != 0 || fsync(fileno(f)) == 0;
        if (!ok)
            why = strerror(errno);
        if (fclose(f) != 0 && rc == 0 && ok)
            why = strerror(errno), ok = 0;
        if (rc == 0 && !ok)
            rc = -1;
    }
    if (rc == 1) {
        unlink(tmp);
        /* Unchanged, but maybe not in the store yet (loaded from data_dir). */
        if (rt->no_snapshot || store_copy(reg, rt, path, rt->snap_seq) != 0)
            return -1;
        rt->dirty_ms = 0;
        return 0;
    }
    if (rc == 0) {
        /* Under the registry lock: an instance dropped meanwhile keeps no file. */
        pthread_mutex_lock(&reg->lock);
        if (rt->dropped)
            rc = -1, why = "instance deleted";
        else if (rename(tmp, path) != 0)
            rc = -1, why = strerror(errno);
        pthread_mutex_unlock(&reg->lock);
    }
    if (rc != 0) {
        unlink(tmp);
        log_info("index %lld: snapshot failed, the previous one stays: %s", (long long)rt->id, why);
        pthread_mutex_lock(&reg->lock);
        rt->snap_failures++;
        pthread_mutex_unlock(&reg->lock);
        return -1;
    }
    sync_dir(reg->dir); /* best effort: a lost rename only means an older snapshot */
    char legacy[4096];
    for (int k = F_LEGACY_FAISS; k <= F_LEGACY_SEQ && rt->shard == 0; k++) {
        path_of(reg, rt->id, 0, k, "", legacy, sizeof legacy);
        unlink(legacy);
    }
    /* The log before seq is no longer needed: the snapshot covers it, unless
     * another live node still replays from further back, or the store's
     * copy is older (its upload failed). A failed prune only keeps
     * tombstones a little longer. */
    int64_t upto = store_copy(reg, rt, path, seq) == 0 ? seq : -1, others = INT64_MAX;
    if (reg->shared && nodes_min_applied(reg->db, rt->id, reg->node_timeout_ms, &others) != 0)
        upto = -1;
    if (others < upto)
        upto = others;
    /* ... nor this node's other shards of the instance (one log for all). */
    pthread_mutex_lock(&reg->lock);
    int64_t mine = local_min_applied(reg, rt->id);
    pthread_mutex_unlock(&reg->lock);
    if (mine < upto)
        upto = mine;
    if (upto > 0)
        vectors_prune_log(reg->db, rt->id, upto);
    pthread_mutex_lock(&reg->lock);
    rt->snap_seq = seq;
    rt->dirty_ms = 0;
    rt->snap_block_s = block_s;
    rt->snap_total_s = now_s() - t0;
    pthread_mutex_unlock(&reg->lock);
    log_info("index %lld%s: snapshot at seq %lld (%.3f s, writes waited %.3f s)", (long long)rt->id,
             shard_label(rt), (long long)seq, rt->snap_total_s, block_s);
    return 0;
}

/* --- background snapshots ------------------------------------------------------ */

/* Whether rt is due: enough changes pending, or the oldest one old enough. */
static int due(struct registry *reg, struct instance_rt *rt, long long now)
{
    int64_t cs, floor;
    if (rt->no_snapshot || now < rt->retry_ms || current_seq(reg, rt, &cs, &floor) != 0)
        return 0;
    int64_t base = rt->snap_seq < 0 ? 0 : rt->snap_seq;
    if (cs == rt->snap_seq && (!reg->snaps || rt->stored_seq == cs))
        return 0;
    if (!rt->dirty_ms)
        rt->dirty_ms = now;
    if (reg->snapshot_changes > 0 && cs - base >= reg->snapshot_changes)
        return 1;
    return reg->snapshot_seconds > 0 && now - rt->dirty_ms >= reg->snapshot_seconds * 1000LL;
}

static void *saver_main(void *arg)
{
    struct registry *reg = arg;
    pthread_mutex_lock(&reg->lock);
    while (!reg->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&reg->wake, &reg->lock, &until);
        if (reg->stopping)
            break;
        /* One instance at a time, with a reference, outside the lock. */
        for (size_t i = 0; i < reg->n && !reg->stopping; i++) {
            struct instance_rt *rt = reg->items[i];
            rt->refs++;
            pthread_mutex_unlock(&reg->lock);
            long long now = now_ms();
            if (due(reg, rt, now) && registry_snapshot(reg, rt) != 0) {
                long long wait = reg->snapshot_seconds > 0 ? reg->snapshot_seconds : 60;
                rt->retry_ms = now + wait * 1000;
            }
            registry_put(reg, rt);
            pthread_mutex_lock(&reg->lock);
        }
    }
    pthread_mutex_unlock(&reg->lock);
    return NULL;
}

void registry_free(struct registry *reg)
{
    if (!reg)
        return;
    if (reg->saver_running) {
        pthread_mutex_lock(&reg->lock);
        reg->stopping = 1;
        pthread_cond_signal(&reg->wake);
        pthread_mutex_unlock(&reg->lock);
        pthread_join(reg->saver, NULL);
    }
    /* Clean shutdown: every changed index saved, so the next start replays
     * nothing. An unchanged one is not rewritten (a full disk at shutdown
     * then costs nothing). */
    for (size_t i = 0; i < reg->n; i++)
        registry_snapshot(reg, reg->items[i]);
    /* Let go only after all: a snapshot reads the other entries (the
     * lowest seq its instance's shards still need). */
    for (size_t i = 0; i < reg->n; i++)
        registry_put(reg, reg->items[i]);
    free(reg->items);
    snapstore_free(reg->snaps);
    free(reg->factory);
    free(reg->compact_factory);
    free(reg->dir);
    pthread_cond_destroy(&reg->wake);
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

/* --- metrics ------------------------------------------------------------------- */

struct gauge {
    const char *name, *help;
    double (*get)(const struct instance_rt *rt);
};

static double g_vectors(const struct instance_rt *rt)
{
    return (double)vindex_count(rt->vi);
}
static double g_exact(const struct instance_rt *rt)
{
    return vindex_is_exact(rt->vi);
}
static double g_lists(const struct instance_rt *rt)
{
    return (double)vindex_nlist(rt->vi);
}
static double g_rebuilt(const struct instance_rt *rt)
{
    return rt->load_rebuilt;
}
static double g_replayed(const struct instance_rt *rt)
{
    return (double)rt->load_replayed;
}
static double g_load_s(const struct instance_rt *rt)
{
    return rt->load_s;
}
static double g_snap_seq(const struct instance_rt *rt)
{
    return (double)rt->snap_seq;
}
static double g_stored(const struct instance_rt *rt)
{
    return (double)rt->stored_seq;
}
static double g_block(const struct instance_rt *rt)
{
    return rt->snap_block_s;
}
static double g_snap_s(const struct instance_rt *rt)
{
    return rt->snap_total_s;
}
static double g_fail(const struct instance_rt *rt)
{
    return (double)rt->snap_failures;
}

static const struct gauge gauges[] = {
    {"imgsearch_index_vectors", "Vectors in each loaded index.", g_vectors},
    {"imgsearch_index_exact", "1: exact search, 0: ANN index.", g_exact},
    {"imgsearch_index_lists", "Inverted lists of an IVF index (0: exact or another kind).",
     g_lists},
    {"imgsearch_index_load_rebuilt", "1: the index was rebuilt from SQLite at load.", g_rebuilt},
    {"imgsearch_index_load_replayed", "Changes replayed onto the snapshot at load.", g_replayed},
    {"imgsearch_index_load_seconds", "Time the index took to load.", g_load_s},
    {"imgsearch_index_snapshot_seq", "Change seq of the snapshot on disk (-1: none).", g_snap_seq},
    {"imgsearch_index_snapshot_stored_seq",
     "Change seq of its copy in [cluster] snapshot_bucket (-1: none known).", g_stored},
    {"imgsearch_index_snapshot_block_seconds", "Last snapshot: time item writes waited.", g_block},
    {"imgsearch_index_snapshot_seconds", "Last snapshot: total time.", g_snap_s},
    {"imgsearch_index_snapshot_failures", "Snapshots that failed since start.", g_fail},
};

int registry_render_metrics(struct registry *reg, char **buf, size_t *len, size_t *cap)
{
    int rc = 0;
    pthread_mutex_lock(&reg->lock);
    for (size_t g = 0; g < sizeof gauges / sizeof gauges[0] && rc == 0; g++) {
        rc = metrics_printf(buf, len, cap, "# HELP %s %s\n# TYPE %s gauge\n", gauges[g].name,
                            gauges[g].help, gauges[g].name);
        for (size_t i = 0; i < reg->n && rc == 0; i++) {
            const struct instance_rt *rt = reg->items[i];
            char shard[32] = "";
            if (rt->filter >= 0)
                snprintf(shard, sizeof shard, ",shard=\"%d\"", rt->shard);
            rc = metrics_printf(buf, len, cap, "%s{instance_id=\"%lld\"%s} %.10g\n", gauges[g].name,
                                (long long)rt->id, shard, gauges[g].get(rt));
        }
    }
    pthread_mutex_unlock(&reg->lock);
    return rc;
}
