/* test_vindex.c: the per-instance vector index against brute force: exact
 * results, ids, removal, id filters, save/load, the switch to IVF past
 * exact_max with its recall, nprobe / max_scan, concurrent search during
 * adds, a save that runs out of space, and error paths. Small dimensions so it stays fast under
 * ASan. */
#include "index/vindex.h"

#include "tests/unit.h"

#include <faiss/c_api/IndexIVF_c.h>

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#define DIM 32

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

#include "tests/index/synth.h"

/* n normalised vectors around `nclusters` random centres (noise sigma). */
static float *clustered(size_t n, int nclusters, float sigma)
{
    float *c = malloc((size_t)nclusters * DIM * sizeof *c);
    float *x = malloc(n * DIM * sizeof *x);
    for (int i = 0; i < nclusters * DIM; i++)
        c[i] = gauss();
    for (size_t i = 0; i < n; i++) {
        const float *ci = c + (size_t)(urand() * nclusters) * DIM;
        for (int j = 0; j < DIM; j++)
            x[i * DIM + j] = ci[j] / sqrtf(DIM) + sigma * gauss();
        normalise(x + i * DIM);
    }
    free(c);
    return x;
}

/* Brute-force top-k by inner product over (x, ids), skipping dead[i] and ids
 * not in `allowed` (sorted) when given. Returns how many were written. */
static int brute(const float *x, const int64_t *ids, const char *dead, size_t n, const float *q,
                 int k, const int64_t *allowed, size_t n_allowed, int64_t *out, float *outs)
{
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        if (dead && dead[i])
            continue;
        if (!allowed_has(allowed, n_allowed, ids[i]))
            continue;
        topk_insert(out, outs, &found, k, ids[i], dot(x + i * DIM, q));
    }
    return found;
}

static struct vindex *make(long exact_max, const char *factory)
{
    struct vindex_options o = {.dim = DIM, .exact_max = exact_max, .ann_factory = factory};
    struct vindex *vi = NULL;
    char err[256] = "";
    if (vindex_create(&o, &vi, err, sizeof err) != 0)
        fprintf(stderr, "  create: %s\n", err);
    return vi;
}

static int64_t *make_ids(size_t n)
{
    int64_t *ids = malloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++)
        ids[i] = ((int64_t)1 << 40) + (int64_t)i * 7; // large, sparse ids
    return ids;
}

/* recall@k of the index vs brute force over nq queries taken near data. */
static double recall(struct vindex *vi, const float *x, const int64_t *ids, size_t n, int nq,
                     const struct vindex_search_params *p)
{
    int64_t got[10], want[10];
    float gs[10], ws[10];
    float q[DIM];
    int hit = 0, total = 0;
    for (int t = 0; t < nq; t++) {
        const float *base = x + (size_t)(t * 37 % n) * DIM;
        for (int j = 0; j < DIM; j++)
            q[j] = base[j] + 0.05f * gauss();
        normalise(q);
        int nf = 0, nw = brute(x, ids, NULL, n, q, 10, NULL, 0, want, ws);
        if (vindex_search(vi, q, 10, p, got, gs, &nf) != 0)
            return -1;
        for (int a = 0; a < nw; a++)
            for (int b = 0; b < nf; b++)
                if (want[a] == got[b])
                    hit++;
        total += nw;
    }
    return (double)hit / total;
}

static void test_exact_matches_brute_force(void)
{
    size_t n = 1000;
    float *x = clustered(n, 20, 0.3f);
    int64_t *ids = make_ids(n);
    struct vindex *vi = make(100000, "IVF16,SQ8");
    CHECK(vi != NULL);
    for (size_t off = 0; off < n; off += 250)
        CHECK_INT(vindex_add(vi, 250, ids + off, x + off * DIM), 0);
    CHECK_INT(vindex_count(vi), n);
    CHECK(vindex_is_exact(vi));
    for (int t = 0; t < 20; t++) {
        float q[DIM];
        for (int j = 0; j < DIM; j++)
            q[j] = gauss();
        normalise(q);
        int64_t got[10], want[10];
        float gs[10], ws[10];
        int nf = -1;
        CHECK_INT(vindex_search(vi, q, 10, NULL, got, gs, &nf), 0);
        CHECK_INT(nf, brute(x, ids, NULL, n, q, 10, NULL, 0, want, ws));
        for (int i = 0; i < nf; i++) {
            CHECK_INT(got[i], want[i]);
            CHECK(fabsf(gs[i] - ws[i]) < 1e-4f);
            CHECK(i == 0 || gs[i] <= gs[i - 1]); // best first
        }
    }
    // A stored vector finds itself with its own id and score ~1.
    int64_t got[3];
    float gs[3];
    int nf = 0;
    CHECK_INT(vindex_search(vi, x + 123 * DIM, 3, NULL, got, gs, &nf), 0);
    CHECK_INT(nf, 3);
    CHECK_INT(got[0], ids[123]);
    CHECK(fabsf(gs[0] - 1.0f) < 1e-4f);
    // k larger than the index: only real results are reported.
    int64_t *many = malloc(2000 * sizeof *many);
    float *ms = malloc(2000 * sizeof *ms);
    CHECK_INT(vindex_search(vi, x, 2000, NULL, many, ms, &nf), 0);
    CHECK_INT(nf, n);
    free(many);
    free(ms);
    vindex_free(vi);
    free(x);
    free(ids);
}

static void test_remove(void)
{
    size_t n = 600;
    float *x = clustered(n, 10, 0.3f);
    int64_t *ids = make_ids(n);
    char dead[600] = {0};
    struct vindex *vi = make(100000, "IVF16,SQ8");
    CHECK_INT(vindex_add(vi, n, ids, x), 0);
    int64_t rm[101];
    for (int i = 0; i < 100; i++) {
        rm[i] = ids[i * 3];
        dead[i * 3] = 1;
    }
    rm[100] = 5; // not present
    CHECK_INT(vindex_remove(vi, 101, rm), 100);
    CHECK_INT(vindex_count(vi), n - 100);
    CHECK_INT(vindex_remove(vi, 101, rm), 0);
    for (int t = 0; t < 10; t++) {
        int64_t got[10], want[10];
        float gs[10], ws[10];
        int nf = 0;
        const float *q = x + (size_t)t * 3 * DIM; // a removed vector as query
        CHECK_INT(vindex_search(vi, q, 10, NULL, got, gs, &nf), 0);
        CHECK_INT(nf, brute(x, ids, dead, n, q, 10, NULL, 0, want, ws));
        for (int i = 0; i < nf; i++)
            CHECK_INT(got[i], want[i]);
    }
    vindex_free(vi);
    free(x);
    free(ids);
}

/* Filter checks shared by the exact and the ANN index: matches far down
 * the ranking, k above the number of matches, k below it. */
static void check_filters(struct vindex *vi, const float *x, const int64_t *ids, size_t n,
                          int exact)
{
    const float *q = x + 11 * DIM;
    int64_t *rank = malloc(n * sizeof *rank);
    float *rs = malloc(n * sizeof *rs);
    CHECK_INT(brute(x, ids, NULL, n, q, (int)n, NULL, 0, rank, rs), n);
    // Five ids from the far end of the ranking, sorted for the filter.
    int64_t allowed[6];
    for (int i = 0; i < 5; i++)
        allowed[i] = rank[n - 1 - (size_t)i * 3];
    allowed[5] = 3; // not in the index
    for (int i = 0; i < 6; i++)
        for (int j = i + 1; j < 6; j++)
            if (allowed[j] < allowed[i]) {
                int64_t t = allowed[i];
                allowed[i] = allowed[j];
                allowed[j] = t;
            }
    // Tight ANN budgets must not hide them: the search still finds all 5.
    struct vindex_search_params p = {
        .nprobe = 1, .max_scan = 10, .allowed = allowed, .n_allowed = 6};
    int64_t got[10], want[10];
    float gs[10], ws[10];
    int nf = 0;
    CHECK_INT(vindex_search(vi, q, 10, &p, got, gs, &nf), 0);
    CHECK_INT(nf, 5);
    CHECK_INT(brute(x, ids, NULL, n, q, 10, allowed, 6, want, ws), 5);
    for (int i = 0; i < nf; i++) {
        int in = 0;
        for (int j = 0; j < 5; j++)
            in |= got[i] == want[j];
        CHECK(in);
        if (exact)
            CHECK_INT(got[i], want[i]);
    }
    // k smaller than the matches: the best k of them.
    int64_t half[300];
    size_t nh = 0;
    for (size_t i = 0; i < n && nh < 300; i += 2)
        half[nh++] = ids[i]; // ids ascend with i
    p.allowed = half;
    p.n_allowed = nh;
    p.nprobe = 0;
    p.max_scan = 0;
    CHECK_INT(vindex_search(vi, q, 3, &p, got, gs, &nf), 0);
    CHECK_INT(nf, 3);
    brute(x, ids, NULL, n, q, 3, half, nh, want, ws);
    for (int i = 0; i < 3; i++) {
        CHECK((got[i] - ids[0]) % 14 == 0); // an even index: allowed
        if (exact)
            CHECK_INT(got[i], want[i]);
    }
    // An empty filter matches nothing; an unsorted one is refused.
    p.n_allowed = 0;
    CHECK_INT(vindex_search(vi, q, 3, &p, got, gs, &nf), 0);
    CHECK_INT(nf, 0);
    int64_t unsorted[2] = {ids[5], ids[1]};
    p.allowed = unsorted;
    p.n_allowed = 2;
    CHECK_INT(vindex_search(vi, q, 3, &p, got, gs, &nf), -1);
    CHECK(strlen(vindex_last_error()) > 0);
    free(rank);
    free(rs);
}

static void test_filter_exact(void)
{
    size_t n = 800;
    float *x = clustered(n, 10, 0.3f);
    int64_t *ids = make_ids(n);
    struct vindex *vi = make(100000, "IVF16,SQ8");
    CHECK_INT(vindex_add(vi, n, ids, x), 0);
    check_filters(vi, x, ids, n, 1);
    vindex_free(vi);
    free(x);
    free(ids);
}

/* Same queries, same answers after save + load. */
static void check_save_load(struct vindex *vi, const float *x, long exact_max)
{
    char dir[] = "/tmp/test_vindex_XXXXXX", path[64], err[256] = "";
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/idx.faiss", dir);
    CHECK_INT(vindex_save(vi, path, err, sizeof err), 0);
    struct vindex_options o = {.dim = DIM, .exact_max = exact_max, .ann_factory = "IVF16,SQ8"};
    struct vindex *v2 = NULL;
    CHECK_INT(vindex_load(path, &o, &v2, err, sizeof err), 0);
    CHECK(v2 != NULL);
    if (v2) {
        CHECK_INT(vindex_count(v2), vindex_count(vi));
        CHECK_INT(vindex_is_exact(v2), vindex_is_exact(vi));
        struct vindex_search_params p = {.nprobe = 4};
        for (int t = 0; t < 10; t++) {
            int64_t a[10], b[10];
            float as[10], bs[10];
            int na = 0, nb = 0;
            CHECK_INT(vindex_search(vi, x + (size_t)t * DIM, 10, &p, a, as, &na), 0);
            CHECK_INT(vindex_search(v2, x + (size_t)t * DIM, 10, &p, b, bs, &nb), 0);
            CHECK_INT(na, nb);
            for (int i = 0; i < na; i++) {
                CHECK_INT(a[i], b[i]);
                CHECK(as[i] == bs[i]);
            }
        }
        vindex_free(v2);
    }
    // Wrong dimension and a missing file fail with text.
    o.dim = DIM + 1;
    CHECK_INT(vindex_load(path, &o, &v2, err, sizeof err), -1);
    CHECK(strstr(err, "dimension") != NULL);
    o.dim = DIM;
    err[0] = '\0';
    CHECK_INT(vindex_load("/nonexistent/idx", &o, &v2, err, sizeof err), -1);
    CHECK(err[0] != '\0');
    unlink(path);
    rmdir(dir);
}

/* A filter passing ~1% of an IVF index, spread over its lists, with nprobe
 * 1 of 16: the results are the true best allowed items (brute force), not
 * just those in the probed list. k = 2 so the probed list alone usually
 * holds enough allowed items to fill k (the found < k fallback never hides
 * the problem). */
static void test_selective_filter_ann(void)
{
    size_t n = 4000;
    float *x = clustered(n, 64, 0.25f);
    int64_t *ids = make_ids(n);
    struct vindex *vi = make(100, "IVF16,Flat");
    CHECK_INT(vindex_add(vi, n, ids, x), 0);
    CHECK(!vindex_is_exact(vi));
    int64_t allowed[40];
    for (size_t i = 0; i < 40; i++)
        allowed[i] = ids[i * 100 + 7];
    int mismatches = 0;
    for (int t = 0; t < 50; t++) {
        const float *q = x + (size_t)(t * 37 % n) * DIM;
        for (int k = 2; k <= 10; k += 8) {
            int64_t got[10], want[10];
            float gs[10], ws[10];
            int nf = 0;
            struct vindex_search_params p = {
                .nprobe = 1, .max_scan = 100, .allowed = allowed, .n_allowed = 40};
            CHECK_INT(vindex_search(vi, q, k, &p, got, gs, &nf), 0);
            int nw = brute(x, ids, NULL, n, q, k, allowed, 40, want, ws);
            CHECK_INT(nf, nw);
            for (int i = 0; i < nf && i < nw; i++)
                if (got[i] != want[i])
                    mismatches++;
        }
    }
    CHECK_INT(mismatches, 0);
    vindex_free(vi);
    free(x);
    free(ids);
}

static void test_save_load_exact(void)
{
    size_t n = 500;
    float *x = clustered(n, 10, 0.3f);
    int64_t *ids = make_ids(n);
    struct vindex *vi = make(100000, "IVF16,SQ8");
    CHECK_INT(vindex_add(vi, n, ids, x), 0);
    check_save_load(vi, x, 100000);
    vindex_free(vi);
    free(x);
    free(ids);
}

static void test_switch_to_ann(void)
{
    size_t n = 3000;
    float *x = clustered(n, 64, 0.25f);
    int64_t *ids = make_ids(n);
    struct vindex *vi = make(2000, "IVF16,SQ8");
    for (size_t off = 0; off < 1500; off += 500)
        CHECK_INT(vindex_add(vi, 500, ids + off, x + off * DIM), 0);
    CHECK(vindex_is_exact(vi));
    CHECK_INT(vindex_add(vi, 1000, ids + 1500, x + 1500 * DIM), 0); // crosses 2000
    CHECK(!vindex_is_exact(vi));
    CHECK_INT(vindex_count(vi), 2500);
    CHECK_INT(vindex_add(vi, 500, ids + 2500, x + 2500 * DIM), 0); // keeps adding to IVF
    CHECK_INT(vindex_count(vi), n);

    struct vindex_search_params def = {0}, one = {.nprobe = 1}, four = {.nprobe = 4};
    double r_def = recall(vi, x, ids, n, 100, &def);
    double r_four = recall(vi, x, ids, n, 100, &four);
    double r_one = recall(vi, x, ids, n, 100, &one);
    fprintf(stderr, "  recall@10: default %.3f, nprobe=4 %.3f, nprobe=1 %.3f\n", r_def, r_four,
            r_one);
    CHECK(r_def >= 0.95);
    CHECK(r_one < r_def); // nprobe is honoured per query

    // max_scan caps the codes scanned (IVF stats count distance computations).
    FaissIndexIVFStats *st = faiss_get_indexIVF_stats();
    struct vindex_search_params all = {.nprobe = 16}, capped = {.nprobe = 16, .max_scan = 50};
    int64_t got[10];
    float gs[10];
    int nf = 0;
    faiss_IndexIVFStats_reset(st);
    CHECK_INT(vindex_search(vi, x, 10, &all, got, gs, &nf), 0);
    size_t ndis_all = st->ndis;
    faiss_IndexIVFStats_reset(st);
    CHECK_INT(vindex_search(vi, x, 10, &capped, got, gs, &nf), 0);
    size_t ndis_capped = st->ndis;
    fprintf(stderr, "  codes scanned: unlimited %zu, max_scan=50 %zu\n", ndis_all, ndis_capped);
    CHECK_INT(ndis_all, n);
    CHECK(ndis_capped >= 50 && ndis_capped < ndis_all / 2);
    CHECK_INT(nf, 10);

    check_filters(vi, x, ids, n, 0);
    check_save_load(vi, x, 2000);

    // Removal works on the IVF index too.
    CHECK_INT(vindex_remove(vi, 10, ids + 100), 10);
    CHECK_INT(vindex_count(vi), n - 10);
    struct vindex_search_params p = {.nprobe = 16};
    CHECK_INT(vindex_search(vi, x + 100 * DIM, 10, &p, got, gs, &nf), 0);
    for (int i = 0; i < nf; i++)
        CHECK(got[i] < ids[100] || got[i] >= ids[110]);
    vindex_free(vi);
    free(x);
    free(ids);
}

/* The background switch: the crossing add returns with the index still
 * exact; adds and removes made while the trainer runs all land in the ANN
 * index it swaps in, which then answers as brute force does over exactly
 * the vectors left (IVF,Flat with every list probed is exact). */
static void test_background_switch(void)
{
    size_t n = 3000;
    float *x = clustered(n, 64, 0.25f);
    int64_t *ids = make_ids(n);
    char *dead = calloc(n, 1);
    struct vindex *vi = make(2000, "IVF16,Flat");
    vindex_set_background_switch(vi, 1);
    CHECK_INT(vindex_add(vi, 1500, ids, x), 0);
    CHECK_INT(vindex_add(vi, 1000, ids + 1500, x + 1500 * DIM), 0); // crosses 2000
    // Until the trainer swaps, changes go to the exact index.
    CHECK_INT(vindex_add(vi, 500, ids + 2500, x + 2500 * DIM), 0);
    int64_t rm[40];
    for (int i = 0; i < 40; i++) {
        rm[i] = ids[i * 70];
        dead[i * 70] = 1;
    }
    CHECK_INT(vindex_remove(vi, 40, rm), 40);
    vindex_switch_wait(vi);
    CHECK(!vindex_is_exact(vi));
    CHECK_INT(vindex_count(vi), n - 40);
    struct vindex_search_params all = {.nprobe = 16};
    int same = 1;
    for (int t = 0; t < 20; t++) {
        const float *q = x + (size_t)t * 140 * DIM; // every other one removed
        int64_t got[10], want[10];
        float gs[10], ws[10];
        int nf = 0;
        CHECK_INT(vindex_search(vi, q, 10, &all, got, gs, &nf), 0);
        int nw = brute(x, ids, dead, n, q, 10, NULL, 0, want, ws);
        same &= nf == nw;
        for (int i = 0; i < nf && i < nw; i++)
            same &= got[i] == want[i] || fabsf(gs[i] - ws[i]) < 1e-5f;
    }
    CHECK(same);
    // Past the switch adds go to the ANN index at once.
    CHECK_INT(vindex_remove(vi, 1, ids + 1), 1);
    CHECK_INT(vindex_add(vi, 1, ids + 1, x + DIM), 0);
    CHECK_INT(vindex_count(vi), n - 40);
    vindex_free(vi);

    // Freed while the trainer may still run: it finishes and drops its index.
    vi = make(2000, "IVF16,Flat");
    vindex_set_background_switch(vi, 1);
    CHECK_INT(vindex_add(vi, 2500, ids, x), 0);
    vindex_free(vi);
    free(dead);
    free(x);
    free(ids);
}

struct searcher {
    struct vindex *vi;
    const float *x;
    atomic_int *done;
    int errors, searches;
    size_t last_count, shrank;
};

static void *search_loop(void *arg)
{
    struct searcher *s = arg;
    struct vindex_search_params p = {.nprobe = 4};
    while (!atomic_load(s->done) || s->searches < 20) {
        int64_t got[10];
        float gs[10];
        int nf = 0;
        size_t before = vindex_count(s->vi);
        if (vindex_search(s->vi, s->x + (size_t)(s->searches % 500) * DIM, 10, &p, got, gs, &nf) !=
                0 ||
            nf < 0 || nf > 10 || (before >= 10 && nf != 10))
            s->errors++;
        if (before < s->last_count)
            s->shrank++;
        s->last_count = before;
        s->searches++;
    }
    return NULL;
}

static void test_concurrent_search_while_adding(void)
{
    size_t n = 3000;
    float *x = clustered(n, 32, 0.25f);
    int64_t *ids = make_ids(n);
    struct vindex *vi = make(2000, "IVF16,SQ8");
    CHECK_INT(vindex_add(vi, 100, ids, x), 0);
    atomic_int done = 0;
    struct searcher s[2] = {{vi, x, &done, 0, 0, 0, 0}, {vi, x, &done, 0, 0, 0, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, search_loop, &s[i]);
    for (size_t off = 100; off < n; off += 100)
        CHECK_INT(vindex_add(vi, 100, ids + off, x + off * DIM), 0); // crosses exact_max
    atomic_store(&done, 1);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        CHECK_INT(s[i].errors, 0);
        CHECK_INT(s[i].shrank, 0);
        CHECK(s[i].searches >= 20);
    }
    CHECK_INT(vindex_count(vi), n);
    CHECK(!vindex_is_exact(vi));
    vindex_free(vi);
    free(x);
    free(ids);
}

static void test_errors(void)
{
    struct vindex_options o = {.dim = DIM, .exact_max = 10, .ann_factory = "IVF16,Bogus9"};
    struct vindex *vi = NULL;
    char err[256] = "";
    CHECK_INT(vindex_create(&o, &vi, err, sizeof err), -1);
    CHECK(vi == NULL);
    CHECK(strstr(err, "ann_factory") != NULL);
    CHECK(strlen(vindex_last_error()) > 0);
    // FAISS 1.7.3's fast-scan throws on any per-query parameter: refused
    // when the index is made, not at the first search past exact_max.
    o.ann_factory = "IVF16,PQ16x4fs";
    CHECK_INT(vindex_create(&o, &vi, err, sizeof err), -1);
    CHECK(vi == NULL);
    CHECK(strstr(err, "fast-scan") != NULL);
    o.ann_factory = "IVF16,SQ8";
    o.dim = 0;
    CHECK_INT(vindex_create(&o, &vi, err, sizeof err), -1);

    // Training fails (fewer points than lists): the add fails with text and
    // the index stays exact with what it had.
    vi = make(10, "IVF16,SQ8");
    float *x = clustered(20, 4, 0.3f);
    int64_t *ids = make_ids(20);
    CHECK_INT(vindex_add(vi, 10, ids, x), 0);
    CHECK_INT(vindex_add(vi, 5, ids + 10, x + 10 * DIM), -1);
    CHECK(strstr(vindex_last_error(), "train") != NULL);
    CHECK_INT(vindex_count(vi), 10);
    CHECK(vindex_is_exact(vi));
    int64_t neg = -4;
    CHECK_INT(vindex_add(vi, 1, &neg, x), -1);
    int64_t got[2];
    float gs[2];
    int nf = 7;
    CHECK_INT(vindex_search(vi, x, 0, NULL, got, gs, &nf), 0);
    CHECK_INT(nf, 0);
    CHECK_INT(vindex_remove(vi, 0, ids), 0);
    char perr[256] = "";
    CHECK_INT(vindex_save(vi, "/nonexistent/dir/idx", perr, sizeof perr), -1);
    CHECK(perr[0] != '\0');
    vindex_free(vi);
    free(x);
    free(ids);
}

static char *slurp(const char *path, long *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    *len = -1;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (*len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)*len + 1)) && fread(buf, 1, (size_t)*len, f) != (size_t)*len) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

/* A save of n vectors that runs out of space (RLIMIT_FSIZE at `limit`
 * bytes stands in for a full disk: writes past it fail with EFBIG, no root
 * or mount needed) fails, leaves the previous snapshot (2 vectors) byte for
 * byte and no temp file; with space back the next save works. */
static void check_save_out_of_space(size_t n, rlim_t limit)
{
    char dir[] = "/tmp/test_vindex_XXXXXX", path[64], tmp[80], err[256] = "";
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/idx.faiss", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    float *x = clustered(n, 4, 0.3f);
    int64_t *ids = make_ids(n);
    struct vindex *vi = make(100000, "IVF16,SQ8");
    CHECK_INT(vindex_add(vi, 2, ids, x), 0);
    CHECK_INT(vindex_save(vi, path, err, sizeof err), 0);
    long old_len = 0, len = 0;
    char *old = slurp(path, &old_len);
    CHECK(old != NULL && old_len > 0);
    CHECK_INT(vindex_add(vi, n - 2, ids + 2, x + 2 * DIM), 0);

    struct rlimit saved, small;
    getrlimit(RLIMIT_FSIZE, &saved);
    small = saved;
    small.rlim_cur = limit;
    signal(SIGXFSZ, SIG_IGN); /* EFBIG instead of death */
    CHECK_INT(setrlimit(RLIMIT_FSIZE, &small), 0);
    err[0] = '\0';
    CHECK_INT(vindex_save(vi, path, err, sizeof err), -1);
    setrlimit(RLIMIT_FSIZE, &saved);
    signal(SIGXFSZ, SIG_DFL);
    CHECK(err[0] != '\0');
    char *now = slurp(path, &len);
    CHECK_INT(len, old_len);
    CHECK(now && old && memcmp(now, old, (size_t)old_len) == 0);
    CHECK(access(tmp, F_OK) != 0);

    CHECK_INT(vindex_save(vi, path, err, sizeof err), 0);
    struct vindex_options o = {.dim = DIM, .exact_max = 100000, .ann_factory = "IVF16,SQ8"};
    struct vindex *v2 = NULL;
    CHECK_INT(vindex_load(path, &o, &v2, err, sizeof err), 0);
    CHECK_INT(v2 ? vindex_count(v2) : 0, n);
    vindex_free(v2);
    unlink(path);
    rmdir(dir);
    free(now);
    free(old);
    vindex_free(vi);
    free(x);
    free(ids);
}

/* Large: the failure shows in FAISS's own fwrite. Small (the whole file
 * fits in the stdio buffer): it shows only at fflush/fclose, which FAISS's
 * by-name writer ignores. */
static void test_save_out_of_space(void)
{
    check_save_out_of_space(300, 16 * 1024);
    check_save_out_of_space(12, 64);
}

int main(void)
{
    RUN(test_exact_matches_brute_force);
    RUN(test_remove);
    RUN(test_filter_exact);
    RUN(test_selective_filter_ann);
    RUN(test_save_load_exact);
    RUN(test_switch_to_ann);
    RUN(test_background_switch);
    RUN(test_concurrent_search_while_adding);
    RUN(test_save_out_of_space);
    RUN(test_errors);
    return unit_report();
}
