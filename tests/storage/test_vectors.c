/* test_vectors.c: compact descriptors in storage (issue 9). A compact
 * instance stores each vector as out_dim int8 codes; items_vector,
 * items_vector_row and vectors_for_each decode them to exactly the floats
 * projection_decode gives (what the live index holds), and a blob of the
 * other mode is refused, never misread. Float instances are unchanged, and
 * one is converted to codes in place, in batches, read the same all the
 * while (storage/compaction.h). vectors_fetch
 * (an index's re-rank) reads the same floats by index id and says which ids
 * are gone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "index/projection.h"
#include "storage/compaction.h"
#include "storage/db.h"
#include "storage/instances.h"
#include "storage/items.h"
#include "storage/vectors.h"
#include "tests/storage/testdb.h"
#include "tests/unit.h"

#define IN 1792
#define OUT 256
#define NTRAIN 320

static struct projection *pr;

/* Deterministic pseudo-random floats in [-1, 1). */
static float rnd(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static struct db *open_db(const char *name)
{
    struct db *db = NULL;
    CHECK_INT(testdb_open(name, &db), 0);
    return db;
}

static int64_t make_instance(struct db *db, const char *name, char *projection)
{
    struct instance in = {.project_id = "p",
                          .name = (char *)name,
                          .model = "common-search",
                          .views = 1,
                          .projection = projection};
    CHECK_INT(instances_create(db, &in), DB_OK);
    return in.id;
}

static int blob_bytes(struct db *db, const char *sql, int64_t row)
{
    struct sql_stmt *st = sql_prepare(db_conn(db), sql);
    int n = -1;
    if (st && sql_bind_int64(st, 1, row) == 0 && sql_step(st) == SQL_ROW)
        n = sql_column_bytes(st, 0);
    sql_finalize(st);
    return n;
}

struct seen {
    size_t n;
    int64_t ids[8];
    float vecs[8][OUT];
};

static int collect(void *arg, size_t n, const int64_t *ids, const float *vecs)
{
    struct seen *s = arg;
    for (size_t i = 0; i < n && s->n < 8; i++, s->n++) {
        s->ids[s->n] = ids[i];
        memcpy(s->vecs[s->n], vecs + i * OUT, sizeof s->vecs[0]);
    }
    return 0;
}

static void test_codes_round_trip(void)
{
    struct db *db = open_db("compact");
    if (!db)
        return;
    int64_t inst = make_instance(db, "c", pr->digest);
    char *digest = NULL;
    CHECK_INT(vectors_projection(db, inst, &digest), DB_OK);
    CHECK_STR(digest, pr->digest);
    free(digest);
    struct instance got;
    CHECK_INT(instances_get(db, "p", "c", &got), DB_OK);
    CHECK_STR(got.projection, pr->digest);
    instance_free(&got);

    /* Three views (k = 0, 1, 6) projected, coded and decoded. */
    unsigned seed = 7;
    static float x[3][IN], y[3][OUT];
    static int8_t q[3][OUT];
    for (int v = 0; v < 3; v++) {
        for (int d = 0; d < IN; d++)
            x[v][d] = rnd(&seed);
        projection_apply(pr, x[v], y[v]);
        projection_encode(pr, y[v], q[v]);
        projection_decode(pr, q[v], y[v]);
    }
    static const int ks[] = {1, 6};
    struct item_rec rec = {.item_id = "a",
                           .vector = y[0],
                           .codes = q[0],
                           .dim = OUT,
                           .extra = y[1],
                           .extra_codes = q[1],
                           .extra_k = ks,
                           .n_extra = 2};
    int64_t old = 0;
    CHECK_INT(items_put(db, inst, &rec, 0, &old), DB_OK);
    CHECK_INT(blob_bytes(db, "SELECT vector FROM items WHERE id = ?", rec.row), OUT);
    CHECK_INT(blob_bytes(db, "SELECT vector FROM item_regions WHERE item = ? AND k = 1", rec.row),
              OUT);
    CHECK_INT(blob_bytes(db, "SELECT vector FROM item_regions WHERE item = ? AND k = 6", rec.row),
              OUT);

    float *v = NULL;
    CHECK_INT(items_vector(db, inst, "a", OUT, pr, &v), DB_OK);
    CHECK(v && !memcmp(v, y[0], sizeof y[0]));
    free(v);
    v = NULL;
    CHECK_INT(items_vector_row(db, rec.row, OUT, pr, &v), DB_OK);
    CHECK(v && !memcmp(v, y[0], sizeof y[0]));
    free(v);
    v = NULL;
    /* Read as float32 it is the wrong size: refused. */
    CHECK_INT(items_vector(db, inst, "a", IN, NULL, &v), DB_ERROR);
    CHECK(!v);

    struct seen s = {0};
    CHECK_INT(vectors_for_each(db, inst, OUT, pr, collect, &s), 0);
    CHECK_INT(s.n, 3);
    CHECK_INT(s.ids[0], rec.row);
    CHECK_INT(s.ids[1], vec_id(rec.row, 1));
    CHECK_INT(s.ids[2], vec_id(rec.row, 6));
    for (size_t i = 0; i < s.n && i < 3; i++)
        CHECK(!memcmp(s.vecs[i], y[i], sizeof y[0]));
    /* The replay reader decodes the same way. */
    struct seen r = {0};
    CHECK_INT(vectors_for_each_since(db, inst, 0, OUT, pr, collect, &r), 0);
    CHECK_INT(r.n, 3);
    CHECK(!memcmp(r.vecs, s.vecs, sizeof r.vecs));
    /* A float reader of a compact instance skips every (wrong-size) row. */
    struct seen f = {0};
    CHECK_INT(vectors_for_each(db, inst, IN, NULL, collect, &f), 0);
    CHECK_INT(f.n, 0);
    db_close(db);
}

/* The re-rank's point lookups: by index id (row | k << 56), in any order,
 * decoded like the bulk readers; deleted rows, missing views and ids of
 * another instance are reported as not found. */
static void test_fetch_by_index_id(void)
{
    struct db *db = open_db("fetch");
    if (!db)
        return;
    int64_t inst = make_instance(db, "c", pr->digest);
    int64_t other = make_instance(db, "d", pr->digest);
    unsigned seed = 11;
    static float x[IN], y[2][3][OUT];
    static int8_t q[2][3][OUT];
    static const int ks[] = {1, 6};
    int64_t rows[2];
    for (int it = 0; it < 2; it++) {
        for (int v = 0; v < 3; v++) {
            for (int d = 0; d < IN; d++)
                x[d] = rnd(&seed);
            projection_apply(pr, x, y[it][v]);
            projection_encode(pr, y[it][v], q[it][v]);
            projection_decode(pr, q[it][v], y[it][v]);
        }
        struct item_rec rec = {.item_id = it ? "b" : "a",
                               .vector = y[it][0],
                               .codes = q[it][0],
                               .dim = OUT,
                               .extra = y[it][1],
                               .extra_codes = q[it][1],
                               .extra_k = ks,
                               .n_extra = 2};
        int64_t old = 0;
        CHECK_INT(items_put(db, it ? other : inst, &rec, 0, &old), DB_OK);
        rows[it] = rec.row;
    }
    /* Item a's three views, backwards, a view it does not have (k 7), a row
     * that never existed, and item b, which is another instance's. */
    int64_t ids[] = {vec_id(rows[0], 6), vec_id(rows[0], 1), rows[0],
                     vec_id(rows[0], 7), rows[1] + 100,      rows[1]};
    enum { N = sizeof ids / sizeof ids[0] };
    static float out[N][OUT];
    unsigned char found[N];
    memset(found, 7, sizeof found);
    CHECK_INT(vectors_fetch(db, inst, N, ids, OUT, pr, out[0], found), 0);
    CHECK_INT(found[0], 1);
    CHECK_INT(found[1], 1);
    CHECK_INT(found[2], 1);
    CHECK_INT(found[3], 0);
    CHECK_INT(found[4], 0);
    CHECK_INT(found[5], 0);
    CHECK(!memcmp(out[0], y[0][2], sizeof out[0]));
    CHECK(!memcmp(out[1], y[0][1], sizeof out[0]));
    CHECK(!memcmp(out[2], y[0][0], sizeof out[0]));
    /* More ids than one statement takes (FETCH_CHUNK 256 rows): absent ones
     * first, item a's centre view and whole image in the second chunks. */
    enum { MANY = 600 };
    static int64_t many[MANY];
    static float mout[MANY][OUT];
    static unsigned char mfound[MANY];
    for (int i = 0; i < MANY; i++)
        many[i] = i % 2 ? vec_id(rows[1] + 1000 + i, 1) : rows[1] + 1000 + i;
    many[MANY - 2] = vec_id(rows[0], 1);
    many[MANY - 1] = rows[0];
    CHECK_INT(vectors_fetch(db, inst, MANY, many, OUT, pr, mout[0], mfound), 0);
    int nfound = 0;
    for (int i = 0; i < MANY; i++)
        nfound += mfound[i];
    CHECK_INT(nfound, 2);
    CHECK(mfound[MANY - 2] && !memcmp(mout[MANY - 2], y[0][1], sizeof mout[0]));
    CHECK(mfound[MANY - 1] && !memcmp(mout[MANY - 1], y[0][0], sizeof mout[0]));
    /* Deleted: gone, views and all. */
    int64_t row = 0;
    CHECK_INT(items_delete(db, inst, "a", &row), DB_OK);
    CHECK_INT(row, rows[0]);
    memset(found, 7, sizeof found);
    CHECK_INT(vectors_fetch(db, inst, 3, ids, OUT, pr, out[0], found), 0);
    CHECK_INT(found[0] + found[1] + found[2], 0);
    /* Read as float32, the codes are the wrong size: not found, not misread. */
    static float wide[1][IN];
    int64_t b = rows[1];
    CHECK_INT(vectors_fetch(db, other, 1, &b, IN, NULL, wide[0], found), 0);
    CHECK_INT(found[0], 0);
    CHECK_INT(vectors_fetch(db, other, 1, &b, OUT, pr, out[0], found), 0);
    CHECK_INT(found[0], 1);
    CHECK_INT(vectors_fetch(db, inst, 0, NULL, OUT, pr, out[0], found), 0);
    db_close(db);
}

static void test_float_instance_unchanged(void)
{
    struct db *db = open_db("float");
    if (!db)
        return;
    int64_t inst = make_instance(db, "f", NULL);
    char *digest = (char *)"x";
    CHECK_INT(vectors_projection(db, inst, &digest), DB_OK);
    CHECK(digest == NULL);
    static float x[IN];
    x[3] = 1;
    struct item_rec rec = {.item_id = "a", .vector = x, .dim = IN};
    int64_t old = 0;
    CHECK_INT(items_put(db, inst, &rec, 0, &old), DB_OK);
    CHECK_INT(blob_bytes(db, "SELECT vector FROM items WHERE id = ?", rec.row), IN * 4);
    float *v = NULL;
    CHECK_INT(items_vector(db, inst, "a", IN, NULL, &v), DB_OK);
    CHECK(v && !memcmp(v, x, sizeof x));
    free(v);
    v = NULL;
    /* Read in a compact space (an instance switched, its rows not yet
     * rewritten: storage/compaction.h), it is coded on the fly. */
    static float y[OUT];
    static int8_t q[OUT];
    CHECK_INT(vectors_code_rows(pr, 1, x, q), 0);
    projection_decode(pr, q, y);
    CHECK_INT(items_vector_row(db, rec.row, OUT, pr, &v), DB_OK);
    CHECK(v && !memcmp(v, y, sizeof y));
    free(v);
    v = NULL;
    /* Any other size is refused: neither floats nor codes of that space. */
    CHECK_INT(items_vector_row(db, rec.row, OUT / 2, pr, &v), DB_ERROR);
    db_close(db);
}

/* Every (id, vector) an instance's index would be built from, in order. */
struct all {
    size_t n, cap;
    int64_t *ids;
    float *vecs;
};

static int gather(void *arg, size_t n, const int64_t *ids, const float *vecs)
{
    struct all *a = arg;
    if (a->n + n > a->cap) {
        a->cap = (a->n + n) * 2;
        a->ids = realloc(a->ids, a->cap * sizeof *a->ids);
        a->vecs = realloc(a->vecs, a->cap * OUT * sizeof *a->vecs);
        if (!a->ids || !a->vecs)
            return -1;
    }
    memcpy(a->ids + a->n, ids, n * sizeof *ids);
    memcpy(a->vecs + a->n * OUT, vecs, n * OUT * sizeof *vecs);
    a->n += n;
    return 0;
}

static int same(const struct all *a, const struct all *b)
{
    return a->n == b->n && !memcmp(a->ids, b->ids, a->n * sizeof *a->ids) &&
           !memcmp(a->vecs, b->vecs, a->n * OUT * sizeof *a->vecs);
}

static void all_free(struct all *a)
{
    free(a->ids);
    free(a->vecs);
    memset(a, 0, sizeof *a);
}

static long long count_rows(struct db *db, const char *sql, int64_t inst)
{
    struct sql_stmt *st = sql_prepare(db_conn(db), sql);
    long long n = -1;
    if (st && sql_bind_int64(st, 1, inst) == 0 && sql_step(st) == SQL_ROW)
        n = sql_column_int64(st, 0);
    sql_finalize(st);
    return n;
}

/* Float vectors left in an instance (items and views). */
static long long float_rows(struct db *db, int64_t inst)
{
    return count_rows(db,
                      "SELECT count(*) FROM items WHERE instance_id = ? AND length(vector) > 256",
                      inst) +
           count_rows(db,
                      "SELECT count(*) FROM item_regions r JOIN items i ON i.id = r.item"
                      " WHERE i.instance_id = ? AND length(r.vector) > 256",
                      inst);
}

static int stop_after;
static int stop_countdown(void *arg)
{
    (void)arg;
    return stop_after-- <= 0;
}

/* The conversion (storage/compaction.h): a float instance with 300 items (2
 * views each, so the rewrite crosses its batches in both tables) is
 * switched in one short transaction: the projection is stored under its
 * digest, change_seq moved on and replay_floor with it, and every reader
 * codes the rows still float on the fly. The rewrite then runs in batches;
 * stopped half way, an item deleted and one added (as codes) meanwhile, it
 * resumes and finishes. Before, half way and after, every reader gives
 * bit-identical vectors: a mixed instance is never visible as such. A
 * second switch is refused and changes nothing. */
static void test_compaction(void)
{
    struct db *db = open_db("compaction");
    if (!db)
        return;
    int64_t inst = make_instance(db, "f", NULL);
    int64_t bystander = make_instance(db, "g", NULL);
    enum { N = 300 };
    static float x[N][2][IN];
    static const int ks[] = {1};
    unsigned seed = 11;
    int64_t first_row = 0;
    for (int i = 0; i < N; i++) {
        for (int v = 0; v < 2; v++)
            for (int d = 0; d < IN; d++)
                x[i][v][d] = rnd(&seed);
        char id[16];
        snprintf(id, sizeof id, "i%03d", i);
        struct item_rec rec = {.item_id = id,
                               .vector = x[i][0],
                               .dim = IN,
                               .extra = x[i][1],
                               .extra_k = ks,
                               .n_extra = 1};
        int64_t old = 0;
        CHECK_INT(items_put(db, i % 50 == 7 ? bystander : inst, &rec, 0, &old), DB_OK);
        if (i == 0)
            first_row = rec.row;
    }
    const int mine = N - N / 50; /* items of inst; the others are the bystander's */
    float *sample = NULL;
    size_t n = 0;
    CHECK_INT(compaction_sample(db, inst, IN, 100000, &sample, &n), 0);
    CHECK_INT(n, 2 * mine);
    free(sample);
    CHECK_INT(compaction_sample(db, inst, IN, 50, &sample, &n), 0);
    CHECK_INT(n, 50);
    free(sample);

    int64_t cs0 = 0, floor0 = 0, cs1 = 0, floor1 = 0;
    CHECK_INT(vectors_log_state(db, inst, &cs0, &floor0), 0);
    unsigned char *bytes = NULL;
    size_t len = 0;
    CHECK_INT(projection_to_bytes(pr, &bytes, &len), 0);
    char err[256] = "";
    int64_t *ids = NULL;
    CHECK_INT(compaction_pending(db, &ids, &n), 0);
    CHECK_INT(n, 0);
    free(ids);
    CHECK_INT(compaction_switch(db, inst, pr, bytes, len, err, sizeof err), 0);
    if (*err)
        fprintf(stderr, "  %s\n", err);
    CHECK_INT(vectors_log_state(db, inst, &cs1, &floor1), 0);
    CHECK_INT(cs1, cs0 + 1);
    CHECK_INT(floor1, cs1);
    char *digest = NULL;
    CHECK_INT(vectors_projection(db, inst, &digest), DB_OK);
    CHECK_STR(digest, pr->digest);
    free(digest);
    unsigned char *back = NULL;
    size_t blen = 0;
    CHECK_INT(projections_get(db, pr->digest, &back, &blen), DB_OK);
    CHECK(blen == len && back && !memcmp(back, bytes, len));
    free(back);
    CHECK_INT(projections_get(db, "0000", &back, &blen), DB_NOT_FOUND);
    /* Switched, not yet rewritten: every row still float, and pending. */
    CHECK_INT(float_rows(db, inst), 2 * mine);
    CHECK_INT(compaction_pending(db, &ids, &n), 0);
    CHECK(n == 1 && ids[0] == inst);
    free(ids);

    /* Coded alone or in a batch, a vector gives the same bytes. */
    static int8_t one[OUT], all[N][2][OUT];
    CHECK_INT(vectors_code_rows(pr, 2 * N, x[0][0], all[0][0]), 0);
    int equal = 1;
    for (int i = 0; i < N; i += 37)
        for (int v = 0; v < 2; v++) {
            CHECK_INT(vectors_code_rows(pr, 1, x[i][v], one), 0);
            equal &= !memcmp(one, all[i][v], OUT);
        }
    CHECK(equal);
    /* On the fly, each float row reads as the codes of its float. */
    static float y[OUT];
    static int8_t q[OUT];
    memcpy(q, all[0][0], OUT);
    projection_decode(pr, q, y);
    float *v = NULL;
    CHECK_INT(items_vector(db, inst, "i000", OUT, pr, &v), DB_OK);
    CHECK(v && !memcmp(v, y, sizeof y));
    free(v);
    static float got[2][OUT];
    unsigned char found[2] = {0, 0};
    int64_t fetch_ids[2] = {first_row, vec_id(first_row, 1)};
    CHECK_INT(vectors_fetch(db, inst, 2, fetch_ids, OUT, pr, got[0], found), 0);
    CHECK(found[0] && found[1] && !memcmp(got[0], y, sizeof y));
    struct all before = {0}, mid = {0}, after = {0};
    CHECK_INT(vectors_for_each(db, inst, OUT, pr, gather, &before), 0);
    CHECK_INT(before.n, 2 * mine);

    /* Stopped after three batches of 64: 192 rows rewritten, the rest float. */
    struct compaction_pace pace = {64, 0, stop_countdown, NULL};
    struct compaction_progress prog;
    stop_after = 3;
    CHECK_INT(compaction_rewrite(db, inst, pr, &pace, &prog, err, sizeof err), 1);
    CHECK_INT(prog.converted, 192);
    CHECK_INT(prog.batches, 3);
    CHECK(prog.max_hold_ms >= 0 && prog.hold_ms >= prog.max_hold_ms);
    CHECK_INT(float_rows(db, inst), 2 * mine - 192);
    CHECK_INT(blob_bytes(db, "SELECT vector FROM items WHERE id = ?", first_row), OUT);
    CHECK_INT(vectors_for_each(db, inst, OUT, pr, gather, &mid), 0);
    CHECK(same(&before, &mid));
    /* Meanwhile: the last item deleted (still float), a new one as codes. */
    char last[16];
    snprintf(last, sizeof last, "i%03d", N - 1);
    int64_t row = 0;
    CHECK_INT(items_delete(db, inst, last, &row), DB_OK);
    struct item_rec rec = {.item_id = "new",
                           .vector = y,
                           .codes = q,
                           .dim = OUT,
                           .extra = y,
                           .extra_codes = q,
                           .extra_k = ks,
                           .n_extra = 1};
    int64_t old = 0;
    CHECK_INT(items_put(db, inst, &rec, 0, &old), DB_OK);

    /* Resumed: the rest, and nothing else (the bystander stays float). */
    stop_after = 1 << 30;
    CHECK_INT(compaction_rewrite(db, inst, pr, &pace, &prog, err, sizeof err), 0);
    CHECK_INT(prog.converted, 2 * mine - 192 - 2);
    CHECK_INT(float_rows(db, inst), 0);
    CHECK_INT(float_rows(db, bystander), 2 * (N - mine));
    CHECK_INT(compaction_pending(db, &ids, &n), 0);
    CHECK_INT(n, 0);
    free(ids);
    CHECK_INT(vectors_for_each(db, inst, OUT, pr, gather, &after), 0);
    CHECK_INT(after.n, before.n); /* one item gone, one come, with as many views */
    /* Every vector but the deleted item's and the new one's, as before. */
    CHECK(!memcmp(after.ids, before.ids, (mine - 1) * sizeof *after.ids));
    CHECK(!memcmp(after.vecs, before.vecs, (size_t)(mine - 1) * OUT * sizeof *after.vecs));
    CHECK(!memcmp(after.vecs + (size_t)(mine - 1) * OUT, y, sizeof y));
    CHECK_INT(items_vector(db, inst, "i000", OUT, pr, &v), DB_OK);
    CHECK(v && !memcmp(v, y, sizeof y));
    free(v);
    v = NULL;
    struct seen s = {0};
    CHECK_INT(vectors_for_each(db, inst, IN, NULL, collect, &s), 0);
    CHECK_INT(s.n, 0); /* no float vector left */
    /* Nothing left: a rewrite is a no-op. */
    CHECK_INT(compaction_rewrite(db, inst, pr, NULL, &prog, err, sizeof err), 0);
    CHECK_INT(prog.converted, 0);

    /* Already compact: refused, nothing changes. */
    CHECK(compaction_switch(db, inst, pr, bytes, len, err, sizeof err) != 0);
    CHECK_INT(vectors_log_state(db, inst, &cs0, &floor0), 0);
    CHECK_INT(cs0, cs1 + 2); /* the delete and the add */
    all_free(&before);
    all_free(&mid);
    all_free(&after);
    free(bytes);
    db_close(db);
}

int main(void)
{
    if (testdb_init("test-vectors") != 0)
        return 1;
    /* A projection fitted on random vectors: enough for storage. */
    float *train = malloc((size_t)NTRAIN * IN * sizeof *train);
    unsigned seed = 1;
    for (size_t i = 0; i < (size_t)NTRAIN * IN; i++)
        train[i] = rnd(&seed);
    char err[256];
    if (projection_train(train, NTRAIN, IN, OUT, 1, 0, &pr, err, sizeof err) != 0) {
        fprintf(stderr, "projection_train: %s\n", err);
        return 1;
    }
    free(train);
    /* What a saved projection's digest looks like (train alone leaves it empty). */
    memset(pr->digest, 'a', 64);
    pr->digest[64] = '\0';
    RUN(test_codes_round_trip);
    RUN(test_float_instance_unchanged);
    RUN(test_compaction);
    RUN(test_fetch_by_index_id);
    projection_free(pr);
    testdb_cleanup();
    return unit_report();
}
