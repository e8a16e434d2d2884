/* test_projection.c: index/projection.c on vectors whose principal axes are
 * known (Gaussian along 10 coordinate axes with decreasing spreads, a little
 * noise on the rest): the fitted rows are those axes, scaled by lambda^-1/2
 * when whitening (power 1) and of unit length without (power 0); int8 codes
 * round-trip within half a step; a saved file loads back identical with the
 * same digest; a flipped byte, a short file, a bad magic, non-finite
 * numbers and too few training vectors are refused. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "index/projection.h"
#include "tests/unit.h"

#define D 64
#define K 8
#define N 4000

static const int axis_of[10] = {5, 17, 3, 40, 22, 61, 9, 33, 50, 12};
static float *data;
static char dir[64];

static uint64_t rng = 88172645463325252ull;

static double uniform(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return ((rng >> 11) + 0.5) / 9007199254740992.0;
}

static double gauss(void)
{
    return sqrt(-2 * log(uniform())) * cos(2 * M_PI * uniform());
}

static double sigma(int k)
{
    return 10.0 - k; /* 10, 9, ... 1 along axis_of[k] */
}

static void make_data(void)
{
    data = malloc((size_t)N * D * sizeof *data);
    for (int i = 0; i < N; i++) {
        float *x = data + (size_t)i * D;
        for (int j = 0; j < D; j++)
            x[j] = (float)(0.5 + 0.01 * gauss()); /* a mean to take out, and noise */
        for (int k = 0; k < 10; k++)
            x[axis_of[k]] += (float)(sigma(k) * gauss());
    }
}

static struct projection *fit(double power)
{
    struct projection *pr = NULL;
    char err[256] = "";
    int rc = projection_train(data, N, D, K, power, 0, &pr, err, sizeof err);
    CHECK_INT(rc, 0);
    if (rc)
        fprintf(stderr, "  %s\n", err);
    return pr;
}

static void test_whitened_axes(void)
{
    struct projection *pr = fit(1);
    if (!pr)
        return;
    CHECK_INT(pr->in_dim, D);
    CHECK_INT(pr->out_dim, K);
    for (int j = 0; j < D; j++)
        CHECK(fabsf(pr->mean[j] - 0.5f) < 0.5f);
    for (int k = 0; k < K; k++) {
        const float *row = pr->p + (size_t)k * D;
        /* Row k points along the k-th widest axis, with length 1 / sigma. */
        double on = fabs(row[axis_of[k]]) * sigma(k);
        CHECK(on > 0.93 && on < 1.07);
        double off = 0;
        for (int j = 0; j < D; j++)
            if (j != axis_of[k])
                off += (double)row[j] * row[j];
        CHECK(sqrt(off) * sigma(k) < 0.25); /* sampling mixes close axes a little */
    }
    projection_free(pr);
}

static void test_pca_unit_rows_and_unit_output(void)
{
    struct projection *pr = fit(0);
    if (!pr)
        return;
    for (int k = 0; k < K; k++) {
        double n2 = 0;
        for (int j = 0; j < D; j++)
            n2 += (double)pr->p[(size_t)k * D + j] * pr->p[(size_t)k * D + j];
        CHECK(fabs(n2 - 1) < 1e-4);
    }
    float y[K];
    projection_apply(pr, data, y);
    double n2 = 0;
    for (int k = 0; k < K; k++)
        n2 += (double)y[k] * y[k];
    CHECK(fabs(n2 - 1) < 1e-5);
    projection_free(pr);
}

static void test_int8_round_trip(void)
{
    struct projection *pr = fit(1);
    if (!pr)
        return;
    float y[K], back[K];
    int8_t q[K];
    double worst_cos = 1;
    for (int i = 0; i < N; i += 7) {
        projection_apply(pr, data + (size_t)i * D, y);
        projection_encode(pr, y, q);
        projection_decode(pr, q, back);
        double dot = 0, nb = 0;
        for (int k = 0; k < K; k++) {
            /* The scales cover the training range: nothing is clipped. */
            CHECK(fabsf(back[k] - y[k]) <= pr->scale[k] * 0.5f + 1e-7f);
            dot += (double)back[k] * y[k];
            nb += (double)back[k] * back[k];
        }
        double c = dot / sqrt(nb);
        worst_cos = c < worst_cos ? c : worst_cos;
    }
    CHECK(worst_cos > 0.99);
    /* Past the scale: clipped to +-127. */
    float big[K];
    for (int k = 0; k < K; k++)
        big[k] = (k % 2 ? -1000.0f : 1000.0f) * pr->scale[k];
    projection_encode(pr, big, q);
    for (int k = 0; k < K; k++)
        CHECK_INT(q[k], k % 2 ? -127 : 127);
    projection_free(pr);
}

static void test_save_load(void)
{
    struct projection *pr = fit(1), *back = NULL;
    if (!pr)
        return;
    char path[128], err[256] = "";
    snprintf(path, sizeof path, "%s/p.bin", dir);
    CHECK_INT(projection_save(pr, path, err, sizeof err), 0);
    CHECK_INT(strlen(pr->digest), 64);
    CHECK_INT(projection_load(path, &back, err, sizeof err), 0);
    if (back) {
        CHECK_STR(back->digest, pr->digest);
        CHECK_INT(back->n_train, N);
        CHECK(back->power == 1.0f);
        CHECK(!memcmp(back->p, pr->p, sizeof(float) * D * K));
        CHECK(!memcmp(back->mean, pr->mean, sizeof(float) * D));
        CHECK(!memcmp(back->scale, pr->scale, sizeof(float) * K));
        projection_free(back);
        back = NULL;
    }
    CHECK(access(path, F_OK) == 0);

    /* One flipped byte in the matrix. */
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    if (f) {
        fseek(f, 200, SEEK_SET);
        int c = fgetc(f);
        fseek(f, 200, SEEK_SET);
        fputc(c ^ 0x10, f);
        fclose(f);
    }
    CHECK_INT(projection_load(path, &back, err, sizeof err), -1);
    CHECK(strstr(err, "checksum") != NULL);

    /* Short, and not a projection at all. */
    CHECK_INT(projection_save(pr, path, err, sizeof err), 0);
    CHECK_INT(truncate(path, 1000), 0);
    CHECK_INT(projection_load(path, &back, err, sizeof err), -1);
    CHECK(strstr(err, "truncated") != NULL);
    f = fopen(path, "wb");
    if (f) {
        fputs("not a projection, just text long enough for a header", f);
        fclose(f);
    }
    CHECK_INT(projection_load(path, &back, err, sizeof err), -1);
    CHECK(strstr(err, "not a projection") != NULL);
    CHECK(back == NULL);

    /* A well-formed file of bad numbers: the checksum holds, the load refuses. */
    float keep = pr->mean[3];
    pr->mean[3] = NAN;
    CHECK_INT(projection_save(pr, path, err, sizeof err), 0);
    CHECK_INT(projection_load(path, &back, err, sizeof err), -1);
    CHECK(strstr(err, "not finite") != NULL);
    pr->mean[3] = keep;
    /* And a NaN component encodes to 0, not to whatever a cast makes of it. */
    float y[K] = {NAN};
    int8_t q[K];
    projection_encode(pr, y, q);
    CHECK_INT(q[0], 0);
    projection_free(pr);
}

/* In memory (how a projection fitted on an instance is kept in the
 * database): the bytes are the file's, the digest the same, and a flipped
 * byte or a short buffer is refused. */
static void test_bytes_round_trip(void)
{
    struct projection *pr = fit(1), *back = NULL;
    if (!pr)
        return;
    unsigned char *b = NULL;
    size_t len = 0;
    char err[256] = "", path[128];
    CHECK_INT(projection_to_bytes(pr, &b, &len), 0);
    CHECK_INT(strlen(pr->digest), 64);
    snprintf(path, sizeof path, "%s/q.bin", dir);
    CHECK_INT(projection_save(pr, path, err, sizeof err), 0);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (size_t)st.st_size == len);
    CHECK_INT(projection_from_bytes(b, len, "test", &back, err, sizeof err), 0);
    if (back) {
        CHECK_STR(back->digest, pr->digest);
        CHECK(!memcmp(back->p, pr->p, sizeof(float) * D * K));
        projection_free(back);
        back = NULL;
    }
    b[len / 2] ^= 1;
    CHECK_INT(projection_from_bytes(b, len, "test", &back, err, sizeof err), -1);
    CHECK(strstr(err, "checksum") != NULL);
    CHECK_INT(projection_from_bytes(b, len - 1, "test", &back, err, sizeof err), -1);
    CHECK_INT(projection_from_bytes(b, 10, "test", &back, err, sizeof err), -1);
    CHECK(back == NULL);
    free(b);
    projection_free(pr);
}

static void test_too_few_vectors(void)
{
    struct projection *pr = NULL;
    char err[256] = "";
    CHECK_INT(projection_train(data, K, D, K, 1, 0, &pr, err, sizeof err), -1);
    CHECK(pr == NULL);
    CHECK(strstr(err, "cannot fit") != NULL);
    CHECK_INT(projection_train(data, N, D, D + 1, 1, 0, &pr, err, sizeof err), -1);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/imgsearch-test-proj-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    make_data();
    RUN(test_whitened_axes);
    RUN(test_pca_unit_rows_and_unit_output);
    RUN(test_int8_round_trip);
    RUN(test_save_load);
    RUN(test_bytes_round_trip);
    RUN(test_too_few_vectors);
    free(data);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return unit_report();
}
