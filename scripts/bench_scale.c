/* bench_scale.c: the index tier of issue 9's scale target, at N items (run
 * through scripts/bench-scale, which prepares the inputs and writes
 * docs/bench/scale.md).
 *
 * Items: real 4-view descriptors (whole image, centre window, 96 px copy,
 * grey copy; 1792-d float, embedded by the server's extractor) for the
 * first n_src items, then the same items perturbed for larger N: item i
 * takes source i mod n_src and adds B a_i to each of its views, with B a
 * fixed random 64 x 1792 basis scaled to a noise of norm --noise and a_i
 * ~ N(0, I) per item, then re-normalises. Every view goes through the
 * compact path (index/projection.c: PCA-whitening to 256 dims, int8 codes)
 * and the decoded codes are indexed by index/vindex.c exactly as the server
 * would (exact until --exact-max items, then trained into --factory, then
 * re-partitioned into 4x the lists each time they average more than
 * --list-max vectors, [index] compact_list_max), the
 * codes stored in SQLite with the server's schema, and the ANN tier's top
 * --rerank candidates re-scored from there through vectors_fetch, the
 * server's own re-rank path (server/registry.c).
 *
 * Because the noise lives in a 64-d subspace, projections and float inner
 * products of perturbed vectors come from small precomputed tables, so the
 * exact top-10 against the float 1792-d originals (the recall10) is
 * computed for every query over all N items without storing them.
 * Queries: real copy-detection queries (transformed copies of the sources).
 * An item's score is the best of its views (the server's fold; the grey
 * view only meets grey queries, so plain queries skip it).
 *
 * Prints figures and, last, the line:
 *   bench-scale: items=N bytes_ram_per_item=R bytes_disk_per_item=D
 *   search_p50_ms=P search_p99_ms=Q recall10=C restart_s=S
 * R: growth of the process's anonymous resident memory while building (the
 * index; the SQLite file's pages are page cache, printed apart); D: the
 * snapshot plus the SQLite file; C: recall@10 against exact search over the
 * float 1792-d originals, as the issue defines it (no 256-d projection gets
 * near 0.95 there; the recall against exact search over the same compact
 * codes, the index's own loss, is printed on the line before). */
#include <cblas.h>
#include <fcntl.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "index/projection.h"
#include "index/vindex.h"
#include "storage/db.h"
#include "storage/vectors.h"
#include "scripts/bench_util.h"

#define IN 1792
#define V 4   /* views per item */
#define R 64  /* noise subspace */
#define K 10  /* recall@K */
#define KV 64 /* vectors asked of the index per query, folded to items */
#define CHUNK 8192

static int n_src, n_q, out_dim;
static float *src;    /* n_src*V x IN, unit */
static float *qry;    /* n_q x IN, unit */
static float *bas;    /* R x IN: the noise basis, already scaled */
static float *p_src;  /* n_src*V x out: P x (no mean) */
static float *p_bas;  /* R x out: P B */
static float *p_mean; /* out: P mean */
static float *bx;     /* n_src*V x R: B x */
static float *gram;   /* R x R: B B^T */
static float *q_src;  /* n_q x n_src*V: q . x */
static float *q_bas;  /* n_q x R: B q */
static float *q_proj; /* n_q x out: projected queries */
static struct projection *proj;
static double noise = 1.0;
static int *q_orig; /* per query: its original's item id (1-based), or 0 */

static void item_noise(long i, float *a)
{
    uint64_t s = 0x9e3779b97f4a7c15ull ^ ((uint64_t)(i + 1) * 0xbf58476d1ce4e5b9ull);
    for (int r = 0; r < R; r++)
        a[r] = i < n_src ? 0.0f : gauss(&s);
}

static float *read_f32(const char *path, int cols, int *rows)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long b = ftell(f);
    fseek(f, 0, SEEK_SET);
    *rows = (int)(b / ((long)cols * 4));
    float *x = malloc((size_t)b);
    if (!x || fread(x, 4, (size_t)*rows * cols, f) != (size_t)*rows * cols) {
        fprintf(stderr, "%s: short read\n", path);
        exit(1);
    }
    fclose(f);
    return x;
}

/* Tables that make every perturbed vector's projection and dot products cheap. */
static void precompute(void)
{
    int ns = n_src * V, d = out_dim;
    uint64_t s = 42;
    bas = malloc((size_t)R * IN * sizeof *bas);
    /* Entries N(0, noise^2 / (R IN)): B a with a ~ N(0, I) has expected norm noise. */
    float scale = (float)(noise / sqrt((double)R * IN));
    for (size_t j = 0; j < (size_t)R * IN; j++)
        bas[j] = scale * gauss(&s);
    p_src = malloc((size_t)ns * d * sizeof *p_src);
    p_bas = malloc((size_t)R * d * sizeof *p_bas);
    p_mean = malloc((size_t)d * sizeof *p_mean);
    bx = malloc((size_t)ns * R * sizeof *bx);
    gram = malloc((size_t)R * R * sizeof *gram);
    q_src = malloc((size_t)n_q * ns * sizeof *q_src);
    q_bas = malloc((size_t)n_q * R * sizeof *q_bas);
    q_proj = malloc((size_t)n_q * d * sizeof *q_proj);
    /* P is out x IN row-major: X P^T */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ns, d, IN, 1, src, IN, proj->p, IN, 0,
                p_src, d);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, d, IN, 1, bas, IN, proj->p, IN, 0,
                p_bas, d);
    cblas_sgemv(CblasRowMajor, CblasNoTrans, d, IN, 1, proj->p, IN, proj->mean, 1, 0, p_mean, 1);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ns, R, IN, 1, src, IN, bas, IN, 0, bx, R);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, R, IN, 1, bas, IN, bas, IN, 0, gram, R);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_q, ns, IN, 1, qry, IN, src, IN, 0, q_src,
                ns);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_q, R, IN, 1, qry, IN, bas, IN, 0, q_bas,
                R);
    for (int q = 0; q < n_q; q++)
        projection_apply(proj, qry + (size_t)q * IN, q_proj + (size_t)q * d);
}

/* View v of item i: its norm before normalising, and its decoded compact vector. */
static float make_view(long i, int v, const float *a, float *dec, int8_t *code)
{
    int d = out_dim;
    size_t sv = (size_t)(i % n_src) * V + (size_t)v;
    double n2 = 1.0, ba = 0, aga = 0;
    for (int r = 0; r < R; r++) {
        ba += (double)bx[sv * R + (size_t)r] * a[r];
        double ga = 0;
        for (int t = 0; t < R; t++)
            ga += (double)gram[(size_t)r * R + (size_t)t] * a[t];
        aga += ga * a[r];
    }
    n2 += 2 * ba + aga;
    float inv = (float)(1.0 / sqrt(n2));
    float y[1024];
    double yn = 0;
    for (int k = 0; k < d; k++) {
        double t = p_src[sv * (size_t)d + (size_t)k];
        for (int r = 0; r < R; r++)
            t += (double)p_bas[(size_t)r * d + (size_t)k] * a[r];
        y[k] = (float)(t * inv - p_mean[k]);
        yn += (double)y[k] * y[k];
    }
    float yi = (float)(1.0 / sqrt(yn));
    for (int k = 0; k < d; k++)
        y[k] *= yi;
    projection_encode(proj, y, code);
    projection_decode(proj, code, dec);
    return inv;
}

/* Top-K items per query, kept as sorted (score, item) lists. */
struct topk {
    float s[K];
    long id[K];
};

static void topk_push(struct topk *t, float s, long id)
{
    if (s <= t->s[K - 1])
        return;
    int j = K - 1;
    while (j > 0 && t->s[j - 1] < s) {
        t->s[j] = t->s[j - 1];
        t->id[j] = t->id[j - 1];
        j--;
    }
    t->s[j] = s;
    t->id[j] = id;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(double *v, int n, double p)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[(int)((n - 1) * p / 100.0 + 0.5)];
}

static double recall(const struct topk *truth, long *got, int n)
{
    int hit = 0;
    for (int j = 0; j < K; j++)
        for (int g = 0; g < n; g++)
            if (got[g] == truth->id[j]) {
                hit++;
                break;
            }
    return (double)hit / K;
}

/* The server's own database (storage/db.c: its schema and migrations) in
 * the work directory, holding what a compact instance with views stores per
 * item, with the columns storage/items.c's items_put writes (no thumbnail,
 * tags or keywords): the items row with the whole view's codes, and
 * item_regions rows for the centre (k 1), low-resolution (6) and grey (7)
 * views. The index re-ranks from it through vectors_fetch, as the server
 * does. Batched transactions without fsync: only the layout matters here. */
static struct db *bdb;
static int64_t b_inst = 1;
static char b_path[4096];
static double fetch_ms;
static long fetch_calls;

static void db_exec(const char *sql)
{
    struct sql_conn *c = db_conn(bdb);
    if (!c || sql_exec(c, sql) != 0) {
        fprintf(stderr, "sqlite: %s: %s\n", sql, c ? sql_errmsg(c) : db_last_error());
        exit(1);
    }
}

static void db_start(const char *work)
{
    char err[256], sql[512];
    snprintf(b_path, sizeof b_path, "%s/bench-scale.db", work);
    for (const char *suf = ""; suf; suf = !*suf ? "-wal" : !strcmp(suf, "-wal") ? "-shm" : NULL) {
        char p[4200];
        snprintf(p, sizeof p, "%s%s", b_path, suf);
        unlink(p);
    }
    if (db_open(b_path, &bdb, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    db_exec("PRAGMA synchronous=OFF");
    snprintf(sql, sizeof sql,
             "INSERT INTO projects(id, created_ms) VALUES ('bench', 1764000000000);"
             "INSERT INTO instances(id, project_id, name, created_ms, views, projection)"
             " VALUES (%lld, 'bench', 'scale', 1764000000000, 1, '%s');",
             (long long)b_inst, proj->digest);
    db_exec(sql);
}

/* Items c0+1 .. c0+n (row id = item number, the index's ids), V codes each. */
static void db_add_chunk(long c0, int n, const int8_t *codes)
{
    static const int view_k[V] = {0, 1, 6, 7};
    struct sql_conn *c = db_conn(bdb);
    struct sql_stmt *a = sql_prepare(c, "INSERT INTO items(id, instance_id, item_id, vector, phash,"
                                        " width, height, created_ms, updated_ms, seq)"
                                        " VALUES (?,?,?,?,?,?,?,?,?,?)");
    struct sql_stmt *b = sql_prepare(c, "INSERT INTO item_regions(item, k, vector) VALUES (?,?,?)");
    if (!a || !b)
        exit(1);
    db_exec("BEGIN");
    for (int i = 0; i < n; i++) {
        long row = c0 + i + 1;
        uint64_t ph = (uint64_t)row * 0x9e3779b97f4a7c15ull;
        char item_id[32];
        const int8_t *cd = codes + (size_t)i * V * (size_t)out_dim;
        snprintf(item_id, sizeof item_id, "item-%08ld", row);
        sql_reset(a);
        sql_bind_int64(a, 1, row);
        sql_bind_int64(a, 2, b_inst);
        sql_bind_text(a, 3, item_id);
        sql_bind_blob(a, 4, cd, (size_t)out_dim);
        sql_bind_int64(a, 5, (int64_t)ph);
        sql_bind_int64(a, 6, 1024);
        sql_bind_int64(a, 7, 768);
        sql_bind_int64(a, 8, 1764000000000LL + row);
        sql_bind_int64(a, 9, 1764000000000LL + row);
        sql_bind_int64(a, 10, row);
        if (sql_step(a) != SQL_DONE) {
            fprintf(stderr, "insert item: %s\n", sql_errmsg(c));
            exit(1);
        }
        for (int v = 1; v < V; v++) {
            sql_reset(b);
            sql_bind_int64(b, 1, row);
            sql_bind_int64(b, 2, view_k[v]);
            sql_bind_blob(b, 3, cd + (size_t)v * out_dim, (size_t)out_dim);
            if (sql_step(b) != SQL_DONE) {
                fprintf(stderr, "insert view: %s\n", sql_errmsg(c));
                exit(1);
            }
        }
    }
    db_exec("COMMIT");
    sql_finalize(a);
    sql_finalize(b);
}

/* Checkpointed (the WAL folded in and truncated): bytes of the database. */
static double db_finish(long items)
{
    char sql[128];
    snprintf(sql, sizeof sql, "UPDATE instances SET change_seq = %ld WHERE id = %lld", items,
             (long long)b_inst);
    db_exec(sql);
    db_exec("PRAGMA wal_checkpoint(TRUNCATE)");
    struct stat st;
    return stat(b_path, &st) == 0 ? (double)st.st_size : -1;
}

/* The index's re-rank source: the codes in SQLite, decoded (vindex.h). */
static int fetch_codes(void *arg, size_t n, const int64_t *ids, float *vecs, unsigned char *found)
{
    (void)arg;
    double t0 = now_ms();
    int rc = vectors_fetch(bdb, b_inst, n, ids, out_dim, proj, vecs, found);
    fetch_ms += now_ms() - t0;
    fetch_calls++;
    return rc;
}

static struct topk *truth_f, *truth_c; /* exact top 10: float originals, compact codes */

struct pass {
    double p50, p99, rf, rc, orig, fetch_ms;
};

/* The queries one at a time on this thread (the server's way); recall of the
 * folded items against both truths. */
static struct pass search_pass(struct vindex *vi, const struct vindex_search_params *sp)
{
    static double *lat;
    int64_t vids[KV];
    float vsc[KV];
    struct pass r = {0};
    if (!lat)
        lat = malloc((size_t)n_q * sizeof *lat);
    double f0 = fetch_ms;
    for (int q = 0; q < n_q; q++) {
        int found = 0;
        double s0 = now_ms();
        if (vindex_search(vi, q_proj + (size_t)q * out_dim, KV, sp, vids, vsc, &found) != 0) {
            fprintf(stderr, "vindex_search: %s\n", vindex_last_error());
            exit(1);
        }
        /* Fold views to items, best first (results come sorted). */
        long got[K];
        int ng = 0;
        for (int j = 0; j < found && ng < K; j++) {
            long item = (long)(vids[j] & ((1LL << 56) - 1));
            int dup = (vids[j] >> 56) == 7; /* grey view: grey queries only */
            for (int g = 0; g < ng; g++)
                dup |= got[g] == item;
            if (!dup)
                got[ng++] = item;
        }
        lat[q] = now_ms() - s0;
        r.rf += recall(&truth_f[q], got, ng);
        r.rc += recall(&truth_c[q], got, ng);
        for (int g = 0; q_orig && g < ng; g++)
            if (got[g] == q_orig[q]) {
                r.orig += 1;
                break;
            }
    }
    r.rf /= n_q, r.rc /= n_q, r.orig /= n_q;
    r.fetch_ms = (fetch_ms - f0) / n_q;
    r.p50 = pct(lat, n_q, 50), r.p99 = pct(lat, n_q, 99);
    return r;
}

static void print_pass(const char *what, struct pass r)
{
    printf("%s: search p50 %.2f ms, p99 %.2f ms (re-rank reads %.2f ms/query), recall@10 vs "
           "float %.3f, vs compact exact %.3f; the query's original in the top 10: %.3f\n",
           what, r.p50, r.p99, r.fetch_ms, r.rf, r.rc, r.orig);
    fflush(stdout);
}

/* --keep writes what the searches need besides the snapshot and the
 * database (the build's measurements and both truths) so --reuse can run
 * only the search phase on a quiet machine, without a new build. */
struct state {
    long items;
    int n_q, out_dim, exact;
    double ram_per_item, db_bytes, snap_per_item, r_proj;
    char digest[65];
};

static int state_io(const char *work, struct state *st, int write)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/bench-scale.state", work);
    FILE *f = fopen(path, write ? "wb" : "rb");
    if (!f)
        return -1;
    size_t n = (size_t)n_q;
    int ok = write ? fwrite(st, sizeof *st, 1, f) == 1 &&
                         fwrite(truth_f, sizeof *truth_f, n, f) == n &&
                         fwrite(truth_c, sizeof *truth_c, n, f) == n
                   : fread(st, sizeof *st, 1, f) == 1 && st->n_q == n_q &&
                         fread(truth_f, sizeof *truth_f, n, f) == n &&
                         fread(truth_c, sizeof *truth_c, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    long items = 100000, exact_max = 100000;
    const char *src_path = NULL, *q_path = NULL, *proj_path = NULL, *work = "/tmp";
    const char *factory = "IVF4096,SQ8";
    int nprobes[8] = {32, 64, 16}, n_np = 3, reranks[8] = {0}, n_rr = 1;
    long max_scan = 0;
    long list_max = 1024; /* [index] compact_list_max's default */
    int keep = 0, reuse = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--keep")) {
            keep = 1;
            continue;
        }
        if (!strcmp(a, "--reuse")) {
            reuse = 1;
            continue;
        }
        if (!v)
            break;
        if (!strcmp(a, "--items"))
            items = atol(v), i++;
        else if (!strcmp(a, "--exact-max"))
            exact_max = atol(v), i++;
        else if (!strcmp(a, "--src"))
            src_path = v, i++;
        else if (!strcmp(a, "--queries"))
            q_path = v, i++;
        else if (!strcmp(a, "--query-originals")) {
            int nqo = 0;
            float *raw = read_f32(v, 1, &nqo); /* int32 in a float-sized file */
            q_orig = (int *)raw;
            i++;
        } else if (!strcmp(a, "--projection"))
            proj_path = v, i++;
        else if (!strcmp(a, "--factory"))
            factory = v, i++;
        else if (!strcmp(a, "--noise"))
            noise = atof(v), i++;
        else if (!strcmp(a, "--work"))
            work = v, i++;
        else if (!strcmp(a, "--max-scan"))
            max_scan = atol(v), i++;
        else if (!strcmp(a, "--list-max"))
            list_max = atol(v), i++;
        else if (!strcmp(a, "--rerank")) {
            n_rr = 0;
            for (char *t = strtok((char *)v, ","); t && n_rr < 8; t = strtok(NULL, ","))
                reranks[n_rr++] = atoi(t);
            i++;
        } else if (!strcmp(a, "--nprobe")) {
            n_np = 0;
            for (char *t = strtok((char *)v, ","); t && n_np < 8; t = strtok(NULL, ","))
                nprobes[n_np++] = atoi(t);
            i++;
        }
    }
    if (!src_path || !q_path || !proj_path) {
        fprintf(stderr,
                "usage: bench_scale --src F --queries F --projection F [--items N] "
                "[--exact-max N] [--factory S] [--list-max N] [--nprobe a,b] [--rerank a,b] "
                "[--noise X] [--work DIR] [--keep | --reuse]\n");
        return 2;
    }
    char err[512];
    if (projection_load(proj_path, &proj, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    out_dim = proj->out_dim;
    src = read_f32(src_path, IN * V, &n_src);
    qry = read_f32(q_path, IN, &n_q);
    printf("sources %d items x %d views, %d queries, projection %d -> %d (%.16s), noise %.2f\n",
           n_src, V, n_q, IN, out_dim, proj->digest, noise);
    fflush(stdout);
    double t0 = now_ms();
    precompute();
    printf("tables: %.1f s\n", (now_ms() - t0) / 1e3);

    int ns = n_src * V;
    truth_f = calloc((size_t)n_q, sizeof *truth_f);
    truth_c = calloc((size_t)n_q, sizeof *truth_c);
    for (int q = 0; q < n_q; q++)
        for (int j = 0; j < K; j++)
            truth_f[q].s[j] = truth_c[q].s[j] = -1e30f, truth_f[q].id[j] = truth_c[q].id[j] = -1;

    struct vindex_options opt = {.dim = out_dim,
                                 .exact_max = exact_max * V,
                                 .ann_factory = factory,
                                 .rerank = reranks[0],
                                 .fetch = fetch_codes,
                                 .list_max = list_max};
    double ram_per_item = 0, db_bytes = 0, snap_per_item = 0, r_proj = 0;
    int exact = 1;
    char snap[4096];
    snprintf(snap, sizeof snap, "%s/bench-scale.snap", work);
    struct state sv = {0};
    if (reuse) {
        snprintf(b_path, sizeof b_path, "%s/bench-scale.db", work);
        if (state_io(work, &sv, 0) != 0 || sv.out_dim != out_dim ||
            strcmp(sv.digest, proj->digest) != 0 || db_open(b_path, &bdb, err, sizeof err) != 0) {
            fprintf(stderr, "--reuse: no usable build in %s (run with --keep first)\n", work);
            return 1;
        }
        items = sv.items, ram_per_item = sv.ram_per_item, db_bytes = sv.db_bytes;
        snap_per_item = sv.snap_per_item, r_proj = sv.r_proj, exact = sv.exact;
        printf("reusing the build in %s: %ld items, %s; RAM and disk as measured then\n", work,
               items, exact ? "exact" : factory);
        printf("recall@10 of exact compact search vs float originals: %.3f\n", r_proj / n_q);
    }
    struct vindex *vi = NULL;
    if (!reuse) {
        db_start(work);
        if (vindex_create(&opt, &vi, err, sizeof err) != 0) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        float *dec = malloc((size_t)CHUNK * V * out_dim * sizeof *dec);
        float *inv = malloc((size_t)CHUNK * V * sizeof *inv);
        float *an = malloc((size_t)CHUNK * R * sizeof *an);
        int64_t *ids = malloc((size_t)CHUNK * V * sizeof *ids);
        int8_t *codes = malloc((size_t)CHUNK * V * out_dim);
        float *sc = malloc((size_t)n_q * CHUNK * V * sizeof *sc);
        /* Touched now, so the RSS growth below is the index's alone. */
        memset(dec, 0, (size_t)CHUNK * V * out_dim * sizeof *dec);
        memset(inv, 0, (size_t)CHUNK * V * sizeof *inv);
        memset(an, 0, (size_t)CHUNK * R * sizeof *an);
        memset(ids, 0, (size_t)CHUNK * V * sizeof *ids);
        memset(codes, 0, (size_t)CHUNK * V * out_dim);
        long rss0 = rss_kb(), anon0 = status_kb("RssAnon"), file0 = status_kb("RssFile");
        double add_ms = 0, gen_ms = 0, db_ms = 0, switch_ms = 0, regrow_ms = 0;
        for (long c0 = 0; c0 < items; c0 += CHUNK) {
            int n = (int)(items - c0 < CHUNK ? items - c0 : CHUNK);
            double g0 = now_ms();
#pragma omp parallel for schedule(static)
            for (int i = 0; i < n; i++) {
                item_noise(c0 + i, an + (size_t)i * R);
                for (int v = 0; v < V; v++) {
                    size_t r = (size_t)i * V + (size_t)v;
                    inv[r] = make_view(c0 + i, v, an + (size_t)i * R, dec + r * (size_t)out_dim,
                                       codes + r * (size_t)out_dim);
                    ids[r] = (int64_t)(c0 + i + 1) | ((int64_t)(v == 0   ? 0
                                                                : v == 1 ? 1
                                                                : v == 2 ? 6
                                                                         : 7)
                                                      << 56);
                }
            }
            /* Truth in the compact space: projected float queries against the decoded codes. */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_q, n * V, out_dim, 1, q_proj,
                        out_dim, dec, out_dim, 0, sc, n * V);
#pragma omp parallel for schedule(static)
            for (int q = 0; q < n_q; q++) {
                const float *qs = q_src + (size_t)q * ns, *qb = q_bas + (size_t)q * R;
                for (int i = 0; i < n; i++) {
                    long item = c0 + i;
                    float bf = -1e30f, bc = -1e30f;
                    for (int v = 0; v < V - 1; v++) { /* the grey view meets grey queries only */
                        size_t r = (size_t)i * V + (size_t)v;
                        double t = qs[(size_t)(item % n_src) * V + (size_t)v];
                        for (int k = 0; k < R; k++)
                            t += (double)qb[k] * an[(size_t)i * R + (size_t)k];
                        float f = (float)(t * inv[r]);
                        bf = f > bf ? f : bf;
                        float cc = sc[(size_t)q * n * V + r];
                        bc = cc > bc ? cc : bc;
                    }
                    topk_push(&truth_f[q], bf, item + 1);
                    topk_push(&truth_c[q], bc, item + 1);
                }
            }
            gen_ms += now_ms() - g0;
            double d0 = now_ms();
            db_add_chunk(c0, n, codes);
            db_ms += now_ms() - d0;
            double a0 = now_ms();
            int was_exact = vindex_is_exact(vi);
            size_t lists = vindex_nlist(vi);
            if (vindex_add(vi, (size_t)n * V, ids, dec) != 0) {
                fprintf(stderr, "vindex_add: %s\n", vindex_last_error());
                return 1;
            }
            /* A re-partition runs on a thread of its own, as in the server,
             * while adds go on; this benchmark adds far faster than HTTP
             * ingest, so it waits for it instead of logging a million adds. */
            vindex_switch_wait(vi);
            add_ms += now_ms() - a0;
            if (was_exact && !vindex_is_exact(vi)) {
                switch_ms = now_ms() - a0;
                printf("  switched to %s at %ld items (%zu vectors): %.1f s\n", factory, c0 + n,
                       vindex_count(vi), switch_ms / 1e3);
                /* From here on as the server's live adds (index/vindex.h). */
                lists = vindex_nlist(vi);
                a0 = now_ms();
                vindex_set_background_switch(vi, 1);
                vindex_switch_wait(vi);
                add_ms += now_ms() - a0;
            }
            if (!vindex_is_exact(vi) && vindex_nlist(vi) != lists) {
                double ms = now_ms() - a0;
                regrow_ms += ms;
                printf("  re-partitioned %zu -> %zu lists at %ld items (%zu vectors, list_max "
                       "%ld): %.1f s\n",
                       lists, vindex_nlist(vi), c0 + n, vindex_count(vi), list_max, ms / 1e3);
            }
            if ((c0 / CHUNK) % 16 == 0) {
                printf("  %ld items, %s, rss %ld MB\n", c0 + n,
                       vindex_is_exact(vi) ? "exact" : factory, rss_kb() / 1024);
                fflush(stdout);
            }
        }
        free(sc);
        long rss1 = rss_kb(), anon1 = status_kb("RssAnon"), file1 = status_kb("RssFile");
        ram_per_item = (anon1 - anon0) * 1024.0 / (double)items;
        printf(
            "built %ld items (%zu vectors) in %.0f s (indexing %.0f s, of which the switch %.0f s "
            "and re-partitions %.0f s; SQLite rows %.0f s), %s, %zu lists\n",
            items, vindex_count(vi), (gen_ms + add_ms + db_ms) / 1e3, add_ms / 1e3, switch_ms / 1e3,
            regrow_ms / 1e3, db_ms / 1e3, vindex_is_exact(vi) ? "exact" : factory,
            vindex_nlist(vi));
        printf(
            "RSS +%ld MB: anonymous +%ld MB = %.0f B/item (bytes_ram_per_item), file-backed +%ld "
            "MB; peak RSS %ld MB\n",
            (rss1 - rss0) / 1024, (anon1 - anon0) / 1024, ram_per_item, (file1 - file0) / 1024,
            status_kb("VmHWM") / 1024);
        fflush(stdout);

        /* Exact over the compact vectors vs the float originals: the projection's own loss. */
        r_proj = 0;
        for (int q = 0; q < n_q; q++)
            r_proj += recall(&truth_f[q], truth_c[q].id, K);
        printf("recall@10 of exact compact search vs float originals: %.3f\n", r_proj / n_q);
        if (q_orig) { /* copy detection as the user sees it, for both exact searches */
            double in_f = 0, in_c = 0;
            for (int q = 0; q < n_q; q++) {
                long o = q_orig[q];
                in_f += recall(&truth_f[q], &o, 1) * K;
                in_c += recall(&truth_c[q], &o, 1) * K;
            }
            printf("the query's original in the exact top 10: float %.3f, compact %.3f\n",
                   in_f / n_q, in_c / n_q);
        }

        /* Disk: the database checkpointed, and the snapshot. */
        db_bytes = db_finish(items);
        FILE *f = fopen(snap, "wb");
        if (!f || vindex_write(vi, f) != 0 || fflush(f) != 0 || fsync(fileno(f)) != 0) {
            fprintf(stderr, "snapshot write failed\n");
            return 1;
        }
        fclose(f);
        struct stat st;
        stat(snap, &st);
        snap_per_item = (double)st.st_size / (double)items;
        exact = vindex_is_exact(vi);
        vindex_free(vi);
        vi = NULL;
        if (keep) {
            sv = (struct state){.items = items,
                                .n_q = n_q,
                                .out_dim = out_dim,
                                .exact = exact,
                                .ram_per_item = ram_per_item,
                                .db_bytes = db_bytes,
                                .snap_per_item = snap_per_item,
                                .r_proj = r_proj};
            snprintf(sv.digest, sizeof sv.digest, "%s", proj->digest);
            if (state_io(work, &sv, 1) != 0) {
                fprintf(stderr, "--keep: cannot write the state\n");
                return 1;
            }
        }
    }

    /* Restart: the snapshot read back as the registry does, from disk (its
     * pages dropped from the page cache first); the searches use it. */
    int fd = open(snap, O_RDONLY);
    if (fd >= 0) {
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
    double r0 = now_ms();
    FILE *f = fopen(snap, "rb");
    if (!f || vindex_read(f, &opt, &vi, err, sizeof err) != 0) {
        fprintf(stderr, "snapshot read failed: %s\n", err);
        return 1;
    }
    fclose(f);
    double restart_s = (now_ms() - r0) / 1e3;
    printf("snapshot %.0f MB (%.0f B/item), read back in %.2f s (%zu vectors)\n",
           snap_per_item * (double)items / 1048576.0, snap_per_item, restart_s, vindex_count(vi));

    /* The timed passes run with the SQLite file in the page cache, as on a
     * server that has been up (its size is printed below, apart from the
     * RSS); the cold case is its own line after them. */
    double warm_s = file_warm(b_path);
    printf("page cache warmed: the SQLite file read once in %.1f s\n", warm_s);
    omp_set_num_threads(1); /* the server searches one query per thread */
    printf("searches: %d queries one at a time, %d vectors asked (folded to 10 items), re-rank "
           "depth %d from SQLite\n",
           n_q, KV, exact ? 0 : reranks[0]);
    struct pass best = {0};
    char what[160];
    for (int pi = 0; pi < n_np; pi++) {
        struct vindex_search_params sp = {.nprobe = nprobes[pi], .max_scan = max_scan};
        struct pass r = search_pass(vi, &sp);
        snprintf(what, sizeof what, "nprobe %d", nprobes[pi]);
        print_pass(what, r);
        if (pi == 0)
            best = r;
    }
    /* What an API request gets when it names neither (h_v2_search.c). */
    struct vindex_search_params api = {.nprobe = 100, .max_scan = 10000};
    print_pass("API defaults (nprobe 100, max_scan_num 10000)", search_pass(vi, &api));
    long long cached = file_cached_bytes(b_path);
    printf("page cache: the SQLite file %.0f MB, %.0f MB of it cached (not in the RSS above)\n",
           db_bytes / 1048576.0, (double)cached / 1048576.0);
    /* The re-rank's worst case: its codes read from disk, not the page cache. */
    fd = open(b_path, O_RDONLY);
    if (fd >= 0) {
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
    struct vindex_search_params sp0 = {.nprobe = nprobes[0], .max_scan = max_scan};
    snprintf(what, sizeof what, "nprobe %d, SQLite file dropped from the page cache first",
             nprobes[0]);
    print_pass(what, search_pass(vi, &sp0));
    /* Other re-rank depths: the same snapshot read with another option. */
    for (int ri = 1; ri < n_rr && !exact; ri++) {
        vindex_free(vi);
        vi = NULL;
        opt.rerank = reranks[ri];
        f = fopen(snap, "rb");
        if (!f || vindex_read(f, &opt, &vi, err, sizeof err) != 0) {
            fprintf(stderr, "snapshot read failed: %s\n", err);
            return 1;
        }
        fclose(f);
        for (int pi = 0; pi < n_np; pi++) {
            struct vindex_search_params sp = {.nprobe = nprobes[pi], .max_scan = max_scan};
            snprintf(what, sizeof what, "re-rank %d, nprobe %d", reranks[ri], nprobes[pi]);
            print_pass(what, search_pass(vi, &sp));
        }
    }
    if (!keep && !reuse)
        unlink(snap);

    double db_per_item = db_bytes / (double)items;
    printf("SQLite (the server's schema; items + item_regions rows of the compact layout, 4 x "
           "%d-byte codes, no thumbnail): %.0f B/item\n",
           out_dim, db_per_item);
    double disk_per_item = snap_per_item + db_per_item;
    printf("recall@10 (nprobe %d): vs float 1792-d originals %.3f, vs exact search over the "
           "compact codes %.3f; the last line's recall10 is the former (the issue's)\n",
           nprobes[0], best.rf, best.rc);
    printf("bench-scale: items=%ld bytes_ram_per_item=%.0f bytes_disk_per_item=%.0f "
           "search_p50_ms=%.2f search_p99_ms=%.2f recall10=%.3f restart_s=%.2f\n",
           items, ram_per_item, disk_per_item, best.p50, best.p99, best.rf, restart_s);
    vindex_free(vi);
    db_close(bdb);
    projection_free(proj);
    return 0;
}
