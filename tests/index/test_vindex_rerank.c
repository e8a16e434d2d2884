/* test_vindex_rerank.c: the ANN tier with lossy PQ codes plus an exact
 * re-rank from a fetch callback (what compact instances run, index/rerank.h):
 * equal to brute force when the re-rank depth and nprobe cover the index, a
 * snapshot round trip, removes and adds after the switch, rows the fetch no
 * longer has, the allowed-id filter, fetch failures and the exact tier never
 * fetching. Small sizes for ASan. */
#include "index/vindex.h"

#include "tests/unit.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIM 32
#define N 3000
#define ID0 ((int64_t)1 << 40)

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

#include "tests/index/synth.h"

/* The "database" the fetch reads: vector i has id ID0 + 7 i; gone[i] marks
 * rows deleted there (the index may still hold them). */
static struct store {
    float x[N * DIM];
    char gone[N];
    long calls, fail;
} db;

static int64_t id_of(size_t i)
{
    return ID0 + (int64_t)i * 7;
}

static int fetch(void *arg, size_t n, const int64_t *ids, float *vecs, unsigned char *found)
{
    struct store *s = arg;
    s->calls++;
    if (s->fail)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int64_t off = ids[i] - ID0;
        size_t pos = (size_t)(off / 7);
        found[i] = off >= 0 && off % 7 == 0 && pos < N && !s->gone[pos];
        if (found[i])
            memcpy(vecs + i * DIM, s->x + pos * DIM, DIM * sizeof(float));
    }
    return 0;
}

/* Clustered unit vectors, so PQ's own order differs from the exact one. */
static void fill(void)
{
    static float c[64 * DIM];
    for (int i = 0; i < 64 * DIM; i++)
        c[i] = gauss();
    for (size_t i = 0; i < N; i++) {
        const float *ci = c + (size_t)(urand() * 64) * DIM;
        for (int j = 0; j < DIM; j++)
            db.x[i * DIM + j] = ci[j] / sqrtf(DIM) + 0.25f * gauss();
        normalise(db.x + i * DIM);
    }
}

/* Brute-force top k over the first n vectors, skipping gone ones and ids
 * not in `allowed` (sorted) when given. Ties: smaller id first. */
static int brute(size_t n, const float *q, int k, const int64_t *allowed, size_t n_allowed,
                 int64_t *out, float *outs)
{
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        if (db.gone[i])
            continue;
        if (!allowed_has(allowed, n_allowed, id_of(i)))
            continue;
        topk_insert(out, outs, &found, k, id_of(i), dot(db.x + i * DIM, q));
    }
    return found;
}

static struct vindex *make(long exact_max, const char *factory, int rerank)
{
    struct vindex_options o = {.dim = DIM,
                               .exact_max = exact_max,
                               .ann_factory = factory,
                               .rerank = rerank,
                               .fetch = fetch,
                               .fetch_arg = &db};
    struct vindex *vi = NULL;
    char err[256] = "";
    if (vindex_create(&o, &vi, err, sizeof err) != 0)
        fprintf(stderr, "  create: %s\n", err);
    return vi;
}

/* A PQ index past its switch holding the first n vectors. */
static struct vindex *pq_index(size_t n, int rerank)
{
    static int64_t ids[N];
    for (size_t i = 0; i < N; i++)
        ids[i] = id_of(i);
    struct vindex *vi = make(1000, "IVF8,PQ8", rerank);
    if (!vi)
        return NULL;
    CHECK_INT(vindex_add(vi, 800, ids, db.x), 0); // exact so far
    CHECK(vindex_is_exact(vi));
    CHECK_INT(vindex_add(vi, n - 800, ids + 800, db.x + 800 * DIM), 0); // trains IVF8,PQ8
    CHECK(!vindex_is_exact(vi));
    return vi;
}

/* Queries near data points: how many results differ from brute force (ids
 * in order, scores to float precision). */
static int mismatches(struct vindex *vi, size_t n, int k, const struct vindex_search_params *p,
                      int nq)
{
    int bad = 0;
    for (int t = 0; t < nq; t++) {
        float q[DIM];
        const float *base = db.x + (size_t)(t * 37 % n) * DIM;
        for (int j = 0; j < DIM; j++)
            q[j] = base[j] + 0.05f * gauss();
        normalise(q);
        int64_t got[32], want[32];
        float gs[32], ws[32];
        int nf = 0;
        int nw = brute(n, q, k, p ? p->allowed : NULL, p ? p->n_allowed : 0, want, ws);
        if (vindex_search(vi, q, k, p, got, gs, &nf) != 0)
            return -1;
        bad += nf != nw;
        for (int i = 0; i < nf && i < nw; i++)
            bad += got[i] != want[i] || fabsf(gs[i] - ws[i]) > 1e-5f;
    }
    return bad;
}

static void test_rerank_equals_exact(void)
{
    memset(db.gone, 0, sizeof db.gone);
    struct vindex *vi = pq_index(N, N);
    struct vindex_search_params all = {.nprobe = 8};
    // Every vector a candidate: exactly the brute-force top k, scores and all.
    CHECK_INT(mismatches(vi, N, 10, &all, 50), 0);
    CHECK_INT(mismatches(vi, N, 1, &all, 50), 0);
    vindex_free(vi);

    // Without the re-rank, PQ's own scores are off: the re-rank is what fixes them.
    vi = pq_index(N, 0);
    int off = mismatches(vi, N, 10, &all, 50);
    fprintf(stderr, "  PQ scores alone: %d of 500 results differ from exact\n", off);
    CHECK(off > 50);
    vindex_free(vi);

    // A realistic depth (100 candidates for k = 10) keeps nearly all of them.
    vi = pq_index(N, 100);
    int near = mismatches(vi, N, 10, &all, 50);
    fprintf(stderr, "  re-rank depth 100: %d of 500 results differ from exact\n", near);
    CHECK(near >= 0 && near < 25);
    vindex_free(vi);
}

static void test_exact_tier_never_fetches(void)
{
    memset(db.gone, 0, sizeof db.gone);
    static int64_t ids[500];
    for (size_t i = 0; i < 500; i++)
        ids[i] = id_of(i);
    struct vindex *vi = make(1000, "IVF8,PQ8", 100);
    CHECK_INT(vindex_add(vi, 500, ids, db.x), 0);
    db.calls = 0;
    CHECK_INT(mismatches(vi, 500, 10, NULL, 20), 0); // flat: exact by itself
    CHECK_INT(db.calls, 0);
    vindex_free(vi);
}

static void test_snapshot_round_trip(void)
{
    memset(db.gone, 0, sizeof db.gone);
    struct vindex *vi = pq_index(N, 200);
    FILE *f = tmpfile();
    CHECK(f != NULL);
    if (!f)
        return;
    CHECK_INT(vindex_write(vi, f), 0);
    long bytes = ftell(f);
    fprintf(stderr, "  snapshot of %d vectors: %ld bytes\n", N, bytes);
    // The PQ codes (8 bytes) and ids (8 bytes) a vector, not the floats.
    CHECK(bytes < (long)N * 24 + 64 * 1024);
    rewind(f);
    struct vindex_options o = {.dim = DIM,
                               .exact_max = 1000,
                               .ann_factory = "IVF8,PQ8",
                               .rerank = 200,
                               .fetch = fetch,
                               .fetch_arg = &db};
    struct vindex *back = NULL;
    char err[256] = "";
    CHECK_INT(vindex_read(f, &o, &back, err, sizeof err), 0);
    fclose(f);
    if (!back) {
        vindex_free(vi);
        return;
    }
    CHECK(!vindex_is_exact(back));
    CHECK_INT(vindex_count(back), N);
    // Same candidates, same re-rank: the same answers as before the save.
    for (int t = 0; t < 30; t++) {
        const float *q = db.x + (size_t)(t * 53 % N) * DIM;
        struct vindex_search_params p = {.nprobe = 2};
        int64_t a[10], b[10];
        float as[10], bs[10];
        int na = 0, nb = 0;
        CHECK_INT(vindex_search(vi, q, 10, &p, a, as, &na), 0);
        CHECK_INT(vindex_search(back, q, 10, &p, b, bs, &nb), 0);
        CHECK_INT(na, nb);
        CHECK(!memcmp(a, b, (size_t)na * sizeof *a));
        CHECK(!memcmp(as, bs, (size_t)na * sizeof *as));
        CHECK_INT(a[0], id_of((size_t)(t * 53 % N))); // a vector finds itself first
    }
    vindex_free(back);
    vindex_free(vi);
}

static void test_remove_and_add_after_switch(void)
{
    memset(db.gone, 0, sizeof db.gone);
    struct vindex *vi = pq_index(2500, 2500);
    struct vindex_search_params all = {.nprobe = 8};
    // Removed from the index (and the database): never returned again.
    int64_t rm[50];
    for (size_t i = 0; i < 50; i++) {
        rm[i] = id_of(100 + i);
        db.gone[100 + i] = 1;
    }
    CHECK_INT(vindex_remove(vi, 50, rm), 50);
    CHECK_INT(vindex_count(vi), 2450);
    CHECK_INT(mismatches(vi, 2500, 10, &all, 50), 0);
    // Deleted in the database but still in the index (the window between a
    // row's delete and its vindex_remove): the fetch misses it, so it is
    // left out rather than scored with stale codes.
    for (size_t i = 200; i < 260; i++)
        db.gone[i] = 1;
    CHECK_INT(mismatches(vi, 2500, 10, &all, 50), 0);
    int64_t got[10];
    float gs[10];
    int nf = 0;
    CHECK_INT(vindex_search(vi, db.x + 210 * DIM, 10, &all, got, gs, &nf), 0);
    CHECK_INT(nf, 10);
    for (int i = 0; i < nf; i++)
        CHECK(got[i] < id_of(200) || got[i] >= id_of(260));
    for (size_t i = 200; i < 260; i++)
        db.gone[i] = 0;
    // Added after the switch: PQ-coded into the trained index, found exactly.
    static int64_t ids[500];
    for (size_t i = 0; i < 500; i++)
        ids[i] = id_of(2500 + i);
    CHECK_INT(vindex_add(vi, 500, ids, db.x + 2500 * DIM), 0);
    CHECK_INT(vindex_count(vi), 2950);
    for (size_t i = 2500; i < N; i += 50) {
        CHECK_INT(vindex_search(vi, db.x + i * DIM, 1, &all, got, gs, &nf), 0);
        CHECK_INT(nf, 1);
        CHECK_INT(got[0], id_of(i));
        CHECK(fabsf(gs[0] - 1.0f) < 1e-5f);
    }
    CHECK_INT(mismatches(vi, N, 10, &all, 50), 0);
    vindex_free(vi);
}

static void test_allowed_filter(void)
{
    memset(db.gone, 0, sizeof db.gone);
    struct vindex *vi = pq_index(N, 300);
    static int64_t sel[N], half[N];
    size_t n_sel = 0, n_half = 0;
    for (size_t i = 0; i < N; i++) {
        if (i % 100 == 7)
            sel[n_sel++] = id_of(i); // 1 %: the filter widens to every list
        if (i % 2 == 0)
            half[n_half++] = id_of(i);
    }
    // Few allowed ids, nprobe 1: widened to all lists; re-rank covers them.
    struct vindex_search_params p = {.nprobe = 1, .allowed = sel, .n_allowed = n_sel};
    CHECK_INT(mismatches(vi, N, 10, &p, 50), 0);
    // More allowed than k asks: k results, every one allowed, exact order.
    struct vindex_search_params h = {.nprobe = 8, .allowed = half, .n_allowed = n_half};
    int bad = mismatches(vi, N, 10, &h, 50);
    fprintf(stderr, "  half allowed, depth 300: %d of 500 differ from exact\n", bad);
    CHECK(bad >= 0 && bad < 10);
    int64_t got[30];
    float gs[30];
    int nf = 0;
    CHECK_INT(vindex_search(vi, db.x, 30, &h, got, gs, &nf), 0);
    CHECK_INT(nf, 30);
    for (int i = 0; i < nf; i++)
        CHECK((got[i] - ID0) % 14 == 0);
    // Fewer allowed than k: all of them, nothing else.
    int64_t three[3] = {id_of(5), id_of(900), id_of(2999)};
    struct vindex_search_params t = {.nprobe = 1, .allowed = three, .n_allowed = 3};
    CHECK_INT(vindex_search(vi, db.x, 10, &t, got, gs, &nf), 0);
    CHECK_INT(nf, 3);
    vindex_free(vi);
}

static void test_fetch_failure(void)
{
    memset(db.gone, 0, sizeof db.gone);
    struct vindex *vi = pq_index(N, 50);
    int64_t got[10];
    float gs[10];
    int nf = 7;
    db.fail = 1;
    CHECK_INT(vindex_search(vi, db.x, 10, NULL, got, gs, &nf), -1);
    CHECK_INT(nf, 0);
    CHECK(strstr(vindex_last_error(), "re-rank") != NULL);
    db.fail = 0;
    CHECK_INT(vindex_search(vi, db.x, 10, NULL, got, gs, &nf), 0);
    CHECK_INT(nf, 10);
    vindex_free(vi);
}

static void test_bad_depth(void)
{
    struct vindex_options o = {
        .dim = DIM, .exact_max = 10, .ann_factory = "IVF8,PQ8", .rerank = -1, .fetch = fetch};
    struct vindex *vi = NULL;
    char err[256] = "";
    CHECK_INT(vindex_create(&o, &vi, err, sizeof err), -1);
    CHECK(vi == NULL);
}

int main(void)
{
    fill();
    RUN(test_rerank_equals_exact);
    RUN(test_exact_tier_never_fetches);
    RUN(test_snapshot_round_trip);
    RUN(test_remove_and_add_after_switch);
    RUN(test_allowed_filter);
    RUN(test_fetch_failure);
    RUN(test_bad_depth);
    return unit_report();
}
