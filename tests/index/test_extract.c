/* test_extract.c: the feature extractor against golden vectors from the
 * original TF.js model (scripts/make-golden.sh), fast path against the
 * reference path, and the properties the search relies on: unit norm,
 * determinism, thread safety, stability under resizing/flipping, and a
 * perceptual hash that survives recompression. Images are synthesised here. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "index/extract.h"
#include "tests/unit.h"

#define NGOLDEN 4
#define NIN (EXTRACT_SIDE * EXTRACT_SIDE * 3)

#ifdef __SANITIZE_ADDRESS__
#define SANITIZED 1 /* the reference path is slow under ASan: fewer runs */
#else
#define SANITIZED 0
#endif

static struct extractor *ex_fast, *ex_ref, *ex_blas, *ex_int8;
static char golden_dir[1024];

static double cosine(const float *a, const float *b, int n)
{
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return ab / (sqrt(aa * bb) + 1e-30);
}

static int read_floats(const char *path, float *buf, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t got = fread(buf, sizeof(float), n, f);
    int extra = fgetc(f) != EOF;
    fclose(f);
    return got == n && !extra ? 0 : -1;
}

/* A deterministic scene evaluated in continuous coordinates, so the "same
 * picture" can be rendered at any size: gradient, blobs, bars, texture. */
static void render(int seed, int w, int h, struct image *img)
{
    img->width = img->orig_width = w;
    img->height = img->orig_height = h;
    img->rgb = malloc((size_t)w * h * 3);
    uint32_t s = 2654435761u * (uint32_t)(seed + 1);
    double p[16];
    for (int i = 0; i < 16; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (s >> 8) / 16777216.0;
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double u = (x + 0.5) / w, v = (y + 0.5) / h, c[3];
            for (int k = 0; k < 3; k++)
                c[k] = 0.2 + 0.5 * p[k] * u + 0.3 * p[k + 3] * v;
            double dx = u - p[6], dy = v - p[7];
            if (dx * dx + dy * dy < 0.04 + 0.05 * p[8])
                c[0] = 0.9, c[1] = 0.2 + 0.6 * p[9], c[2] = 0.1;
            if (fabs(u - p[10]) < 0.12 && v > 0.2 && v < 0.8)
                c[0] = 0.1, c[1] = 0.3, c[2] = 0.8 * p[11] + 0.2;
            double tex = 0.08 * sin(40 * p[12] * u + 25 * p[13] * v) * sin(30 * p[14] * v);
            for (int k = 0; k < 3; k++) {
                double q = (c[k] + tex) * 255.0;
                img->rgb[((size_t)y * w + x) * 3 + k] = (uint8_t)(q < 0     ? 0
                                                                  : q > 255 ? 255
                                                                            : q + 0.5);
            }
        }
}

static void mirror(const struct image *in, struct image *out)
{
    *out = *in;
    out->rgb = malloc((size_t)in->width * in->height * 3);
    for (int y = 0; y < in->height; y++)
        for (int x = 0; x < in->width; x++)
            memcpy(out->rgb + ((size_t)y * in->width + x) * 3,
                   in->rgb + ((size_t)y * in->width + (in->width - 1 - x)) * 3, 3);
}

/* JPEG round trip at `quality` via TurboJPEG, like an upload would get. */
static int jpeg_roundtrip(const struct image *in, int quality, struct image *out)
{
    tjhandle c = tjInitCompress(), d = tjInitDecompress();
    unsigned char *jpg = NULL;
    unsigned long len = 0;
    int rc = -1;
    *out = *in;
    out->rgb = malloc((size_t)in->width * in->height * 3);
    if (c && d && out->rgb &&
        tjCompress2(c, in->rgb, in->width, 0, in->height, TJPF_RGB, &jpg, &len, TJSAMP_420, quality,
                    0) == 0 &&
        tjDecompress2(d, jpg, len, out->rgb, in->width, 0, in->height, TJPF_RGB, 0) == 0)
        rc = 0;
    tjFree(jpg);
    if (c)
        tjDestroy(c);
    if (d)
        tjDestroy(d);
    return rc;
}

static void golden_case(struct extractor *ex, int n)
{
    float *in = malloc(sizeof(float) * NIN), want[EXTRACT_DIM], got[EXTRACT_DIM];
    char path[1100];
    CHECK(ex != NULL && in != NULL);
    if (!ex || !in)
        goto done;
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/input_%d.f32", golden_dir, i);
        int ok = read_floats(path, in, NIN) == 0;
        snprintf(path, sizeof path, "%s/embed_%d.f32", golden_dir, i);
        ok = ok && read_floats(path, want, EXTRACT_DIM) == 0;
        if (!ok) {
            fprintf(stderr,
                    "  golden file missing or short in %s: run scripts/make-golden.sh "
                    "(or set IMGSEARCH_GOLDEN_DIR)\n",
                    golden_dir);
            CHECK(!"golden files present");
            goto done;
        }
        CHECK_INT(extractor_embed_input(ex, in, got), 0);
        double cs = cosine(got, want, EXTRACT_DIM);
        fprintf(stderr, "  golden %d: cosine %.8f\n", i, cs);
        CHECK(cs >= 0.999);
    }
done:
    free(in);
}

static void test_golden_fast(void)
{
    golden_case(ex_fast, NGOLDEN);
}

static void test_golden_ref(void)
{
    golden_case(ex_ref, SANITIZED ? 1 : NGOLDEN);
}

/* The portable fast path (OpenBLAS GEMM, no hand-written AVX-512 kernels),
 * which CPUs without AVX-512 take. */
static void test_golden_blas(void)
{
    golden_case(ex_blas, SANITIZED ? 1 : NGOLDEN);
}

/* The int8 path (1x1 convolutions in int8, AVX-512 VNNI) against the float
 * fast path on the golden inputs: the bar is cosine >= 0.999 to the float
 * descriptor (measured ~0.9998). On CPUs without VNNI it is the float path. */
static void test_golden_int8(void)
{
    float *in = malloc(sizeof(float) * NIN), want[EXTRACT_DIM], got[EXTRACT_DIM];
    char path[1100];
    CHECK(ex_int8 != NULL && in != NULL);
    if (!ex_int8 || !in)
        goto done;
    if (extractor_path(ex_int8) != EXTRACT_PATH_INT8)
        fprintf(stderr, "  no AVX-512 VNNI here: the int8 extractor runs the float path\n");
    for (int i = 0; i < NGOLDEN; i++) {
        snprintf(path, sizeof path, "%s/input_%d.f32", golden_dir, i);
        if (read_floats(path, in, NIN) != 0) {
            fprintf(stderr, "  golden input missing in %s: run scripts/make-golden.sh\n",
                    golden_dir);
            CHECK(!"golden files present");
            goto done;
        }
        CHECK_INT(extractor_embed_input(ex_fast, in, want), 0);
        CHECK_INT(extractor_embed_input(ex_int8, in, got), 0);
        double cs = cosine(got, want, EXTRACT_DIM);
        fprintf(stderr, "  golden %d: int8 vs float cosine %.6f\n", i, cs);
        CHECK(cs >= 0.999);
    }
    golden_case(ex_int8, NGOLDEN); /* and against TF.js itself */
done:
    free(in);
}

/* Decodes a fixture image (the formats the server takes). */
static int load_fixture(const char *name, struct image *img)
{
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/images/%s", name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    static uint8_t buf[1 << 20];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    struct decode_limits lim = {.min_short_side = 16, .max_long_side = 4095};
    return decode_image(buf, len, &lim, img) == DECODE_OK ? 0 : -1;
}

/* int8 against float on other pictures: decoded fixtures (JPEG, WebP, BMP)
 * and rendered scenes at several sizes. */
static void test_int8_images(void)
{
    static const char *const fixtures[] = {"jpeg_400x300.jpg", "webp_400x300.webp", "bmp_24.bmp"};
    float a[EXTRACT_DIM], b[EXTRACT_DIM];
    CHECK(ex_int8 != NULL);
    if (!ex_int8)
        return;
    for (int i = 0; i < 3 + 4; i++) {
        struct image img = {0};
        if (i < 3)
            CHECK_INT(load_fixture(fixtures[i], &img), 0);
        else
            render(20 + i, 160 + 300 * (i - 3), 120 + 170 * (i - 3), &img);
        if (!img.rgb)
            continue;
        CHECK_INT(extractor_embed(ex_fast, &img, a), 0);
        CHECK_INT(extractor_embed(ex_int8, &img, b), 0);
        double cs = cosine(a, b, EXTRACT_DIM);
        fprintf(stderr, "  %s %dx%d: int8 vs float cosine %.6f\n", i < 3 ? fixtures[i] : "rendered",
                img.width, img.height, cs);
        CHECK(cs >= 0.999);
        image_free(&img);
    }
}

static void test_fast_matches_ref(void)
{
    struct image img;
    float a[EXTRACT_DIM], b[EXTRACT_DIM];
    render(7, 300, 200, &img);
    CHECK(ex_fast && ex_ref);
    if (ex_fast && ex_ref) {
        CHECK_INT(extractor_embed(ex_fast, &img, a), 0);
        CHECK_INT(extractor_embed(ex_ref, &img, b), 0);
        double cs = cosine(a, b, EXTRACT_DIM);
        fprintf(stderr, "  fast vs ref: cosine %.7f\n", cs);
        CHECK(cs >= 0.99999);
    }
    free(img.rgb);
}

static void test_unit_norm_and_determinism(void)
{
    struct image img;
    float a[EXTRACT_DIM], b[EXTRACT_DIM];
    render(1, 640, 480, &img);
    CHECK_INT(extractor_embed(ex_fast, &img, a), 0);
    CHECK_INT(extractor_embed(ex_fast, &img, b), 0);
    double n2 = 0;
    for (int i = 0; i < EXTRACT_DIM; i++)
        n2 += (double)a[i] * a[i];
    CHECK(fabs(sqrt(n2) - 1.0) < 1e-5);
    CHECK(memcmp(a, b, sizeof a) == 0);
    free(img.rgb);
}

struct job {
    const struct image *img;
    float out[EXTRACT_DIM];
    int rc;
};

static struct extractor *ex_threads; /* the extractor test_threads shares */

static void *worker(void *arg)
{
    struct job *j = arg;
    for (int i = 0; i < 3 && j->rc == 0; i++)
        j->rc = extractor_embed(ex_threads, j->img, j->out);
    return NULL;
}

static void threads_case(struct extractor *ex)
{
    struct image im[2];
    struct job jobs[2];
    float want[2][EXTRACT_DIM];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        render(10 + i, 400 + 80 * i, 300, &im[i]);
        CHECK_INT(extractor_embed(ex, &im[i], want[i]), 0);
        jobs[i].img = &im[i];
        jobs[i].rc = 0;
    }
    ex_threads = ex;
    for (int i = 0; i < 2; i++)
        CHECK_INT(pthread_create(&th[i], NULL, worker, &jobs[i]), 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        CHECK_INT(jobs[i].rc, 0);
        CHECK(cosine(jobs[i].out, want[i], EXTRACT_DIM) > 0.999999);
        free(im[i].rgb);
    }
}

/* Float and int8 extractors, each shared by two threads. */
static void test_threads(void)
{
    threads_case(ex_fast);
    if (ex_int8)
        threads_case(ex_int8);
}

static void test_resized_and_flipped(void)
{
    struct image big, small, tiny, flipped, other;
    float eb[EXTRACT_DIM], es[EXTRACT_DIM], et[EXTRACT_DIM], ef[EXTRACT_DIM], eo[EXTRACT_DIM];
    render(3, 1024, 768, &big);
    render(3, 320, 240, &small);
    render(3, 120, 90, &tiny); /* upscaled path */
    render(4, 640, 480, &other);
    mirror(&big, &flipped);
    CHECK_INT(extractor_embed(ex_fast, &big, eb), 0);
    CHECK_INT(extractor_embed(ex_fast, &small, es), 0);
    CHECK_INT(extractor_embed(ex_fast, &tiny, et), 0);
    CHECK_INT(extractor_embed(ex_fast, &flipped, ef), 0);
    CHECK_INT(extractor_embed(ex_fast, &other, eo), 0);
    double c_small = cosine(eb, es, EXTRACT_DIM), c_tiny = cosine(eb, et, EXTRACT_DIM);
    double c_flip = cosine(eb, ef, EXTRACT_DIM), c_other = cosine(eb, eo, EXTRACT_DIM);
    fprintf(stderr, "  cosine 1024 vs 320: %.4f, vs 120: %.4f, flipped: %.4f, other: %.4f\n",
            c_small, c_tiny, c_flip, c_other);
    CHECK(c_small > 0.95);
    CHECK(c_tiny > 0.90);
    CHECK(c_flip > 0.80);
    CHECK(c_flip > c_other);
    CHECK(c_other < 0.9);
    free(big.rgb);
    free(small.rgb);
    free(tiny.rgb);
    free(flipped.rgb);
    free(other.rgb);
}

/* A 224x224 image must reach the network untouched (/255 only), and a flat
 * colour must stay flat whatever the scaling. */
static void test_resize_identity(void)
{
    struct image img, flat = {.width = 517, .height = 203, .orig_width = 517, .orig_height = 203};
    float *in = malloc(sizeof(float) * NIN), a[EXTRACT_DIM], b[EXTRACT_DIM];
    render(8, EXTRACT_SIDE, EXTRACT_SIDE, &img);
    flat.rgb = malloc((size_t)flat.width * flat.height * 3);
    CHECK(in && img.rgb && flat.rgb);
    if (!in || !img.rgb || !flat.rgb)
        goto done;
    for (int i = 0; i < NIN; i++)
        in[i] = img.rgb[i] / 255.0f;
    CHECK_INT(extractor_embed(ex_fast, &img, a), 0);
    CHECK_INT(extractor_embed_input(ex_fast, in, b), 0);
    CHECK(cosine(a, b, EXTRACT_DIM) > 0.999999);
    for (int i = 0; i < flat.width * flat.height; i++)
        memcpy(flat.rgb + 3 * i, (const uint8_t[3]){200, 90, 30}, 3);
    for (int i = 0; i < NIN; i += 3) {
        in[i] = 200 / 255.0f;
        in[i + 1] = 90 / 255.0f;
        in[i + 2] = 30 / 255.0f;
    }
    CHECK_INT(extractor_embed(ex_fast, &flat, a), 0);
    CHECK_INT(extractor_embed_input(ex_fast, in, b), 0);
    CHECK(cosine(a, b, EXTRACT_DIM) > 0.99999);
done:
    free(in);
    free(img.rgb);
    free(flat.rgb);
}

static void test_phash(void)
{
    struct image a, a_small, a_jpeg, b;
    render(5, 800, 600, &a);
    render(5, 400, 300, &a_small);
    render(6, 800, 600, &b);
    CHECK_INT(jpeg_roundtrip(&a_small, 40, &a_jpeg), 0);
    uint64_t ha = image_phash(&a), hs = image_phash(&a_small), hj = image_phash(&a_jpeg);
    uint64_t hb = image_phash(&b);
    int d_small = __builtin_popcountll(ha ^ hs), d_jpeg = __builtin_popcountll(ha ^ hj);
    int d_other = __builtin_popcountll(ha ^ hb);
    fprintf(stderr, "  phash hamming: resized %d, resized+jpeg40 %d, other image %d\n", d_small,
            d_jpeg, d_other);
    CHECK(d_small <= 4);
    CHECK(d_jpeg <= 8);
    CHECK(d_other >= 16);
    CHECK(image_phash(&a) == ha);
    free(a.rgb);
    free(a_small.rgb);
    free(a_jpeg.rgb);
    free(b.rgb);
}

static void test_bad_inputs(void)
{
    char err[256] = "";
    struct extractor *ex = NULL;
    const char *path = "build/test_extract_bad_model.bin";
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        fputs("IMGSMNV2 but truncated", f);
        fclose(f);
    }
    CHECK_INT(extractor_open(path, &ex, err, sizeof err), -1);
    CHECK(ex == NULL && err[0] != '\0');
    remove(path);
    CHECK_INT(extractor_open("build/no-such-model.bin", &ex, err, sizeof err), -1);
    struct image empty = {0};
    float out[EXTRACT_DIM];
    CHECK_INT(extractor_embed(ex_fast, &empty, out), -1);
}

/* The offline studies' feature map: its cell mean is the descriptor, values
 * are post-ReLU6, and another input side gives its own grid. */
static void test_feature_map(void)
{
    struct image img;
    float want[EXTRACT_DIM], gap[EXTRACT_DIM];
    float *map = malloc(sizeof(float) * 49 * EXTRACT_DIM);
    int grid = 0;
    render(5, 640, 480, &img);
    CHECK_INT(extractor_embed(ex_fast, &img, want), 0);
    CHECK_INT(extractor_feature_map(ex_fast, &img, EXTRACT_SIDE, map, &grid), 0);
    CHECK_INT(grid, 7);
    float lo = 1e9f, hi = -1e9f;
    for (int ch = 0; ch < EXTRACT_DIM; ch++) {
        gap[ch] = 0.0f;
        for (int p = 0; p < 49; p++) {
            float v = map[(size_t)p * EXTRACT_DIM + ch];
            gap[ch] += v;
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
    }
    CHECK(cosine(gap, want, EXTRACT_DIM) > 0.999999);
    CHECK(lo >= 0.0f && hi <= 6.0f);
    CHECK_INT(extractor_feature_map(ex_fast, &img, 96, map, &grid), 0);
    CHECK_INT(grid, 3);
    CHECK_INT(extractor_feature_map(ex_fast, &img, 16, map, &grid), -1);
    free(map);
    free(img.rgb);
}

/* extractor_embed_side: the network laid out for another input side. At
 * EXTRACT_SIDE it is extractor_embed; at another side the fast path agrees
 * with the reference kernels and with the feature map's cell mean, and the
 * int8 extractor runs it too (its own int8 weights per side). */
static void test_side(void)
{
    struct image img;
    float a[EXTRACT_DIM], b[EXTRACT_DIM];
    float *map = malloc(sizeof(float) * 25 * EXTRACT_DIM);
    int grid = 0;
    render(21, 500, 330, &img);
    CHECK_INT(extractor_embed(ex_fast, &img, a), 0);
    CHECK_INT(extractor_embed_side(ex_fast, &img, EXTRACT_SIDE, b), 0);
    CHECK(memcmp(a, b, sizeof a) == 0);
    static const int sides[] = {160, 96, 112};
    for (int i = 0; i < 3; i++) {
        int s = sides[i];
        CHECK_INT(extractor_embed_side(ex_fast, &img, s, a), 0);
        double n2 = 0;
        for (int j = 0; j < EXTRACT_DIM; j++)
            n2 += (double)a[j] * a[j];
        CHECK(fabs(sqrt(n2) - 1.0) < 1e-5);
        if (ex_ref) {
            CHECK_INT(extractor_embed_side(ex_ref, &img, s, b), 0);
            double cs = cosine(a, b, EXTRACT_DIM);
            fprintf(stderr, "  side %d: fast vs ref cosine %.7f\n", s, cs);
            CHECK(cs >= 0.99999);
        }
        /* not the 224 descriptor: the network really ran at side s */
        float full[EXTRACT_DIM];
        CHECK_INT(extractor_embed(ex_fast, &img, full), 0);
        CHECK(cosine(a, full, EXTRACT_DIM) < 0.9999);
        if (s == 160) {
            CHECK_INT(extractor_feature_map(ex_fast, &img, s, map, &grid), 0);
            CHECK_INT(grid, 5);
            float gap[EXTRACT_DIM] = {0};
            for (int ch = 0; ch < EXTRACT_DIM; ch++)
                for (int p = 0; p < 25; p++)
                    gap[ch] += map[(size_t)p * EXTRACT_DIM + ch];
            CHECK(cosine(gap, a, EXTRACT_DIM) > 0.999999);
        }
        if (ex_int8) {
            CHECK_INT(extractor_embed_side(ex_int8, &img, s, b), 0);
            double cs = cosine(a, b, EXTRACT_DIM);
            fprintf(stderr, "  side %d: int8 vs float cosine %.6f\n", s, cs);
            CHECK(cs >= 0.999);
        }
    }
    CHECK_INT(extractor_embed_side(ex_fast, &img, EXTRACT_MIN_SIDE - 1, a), -1);
    CHECK_INT(extractor_embed_side(ex_fast, &img, EXTRACT_MAX_SIDE + 1, a), -1);
    struct image empty = {0};
    CHECK_INT(extractor_embed_side(ex_fast, &empty, 96, a), -1);
    free(map);
    free(img.rgb);
}

/* At most EXTRACT_MAX_SIDES other sides per extractor: the next is refused,
 * the loaded ones keep working. */
static void test_side_limit(void)
{
    char err[256];
    struct extractor *ex = NULL;
    struct image img;
    float v[EXTRACT_DIM];
    render(22, 200, 150, &img);
    CHECK_INT(extractor_open(NULL, &ex, err, sizeof err), 0);
    if (ex) {
        for (int i = 0; i < EXTRACT_MAX_SIDES; i++)
            CHECK_INT(extractor_embed_side(ex, &img, 64 + 8 * i, v), 0);
        CHECK_INT(extractor_embed_side(ex, &img, 64 + 8 * EXTRACT_MAX_SIDES, v), -1);
        CHECK_INT(extractor_embed_side(ex, &img, 64, v), 0);
        CHECK_INT(extractor_embed_side(ex, &img, EXTRACT_SIDE, v), 0);
    }
    extractor_close(ex);
    free(img.rgb);
}

struct side_job {
    struct extractor *ex;
    const struct image *img;
    const float *want; /* [3][EXTRACT_DIM]: at 224, 160, 96 */
    int rc, same;
};

static const int job_sides[3] = {EXTRACT_SIDE, 160, 96};

static void *side_worker(void *arg)
{
    struct side_job *j = arg;
    float out[EXTRACT_DIM];
    j->same = 1;
    for (int r = 0; r < 4 && j->rc == 0; r++)
        for (int k = 0; k < 3 && j->rc == 0; k++) {
            j->rc = extractor_embed_side(j->ex, j->img, job_sides[(r + k) % 3], out);
            if (cosine(out, j->want + (size_t)((r + k) % 3) * EXTRACT_DIM, EXTRACT_DIM) < 0.999999)
                j->same = 0;
        }
    return NULL;
}

/* Two threads on a fresh extractor, each loading the other sides as it
 * first meets them (so both race for the same lazy load): every vector as
 * one thread alone computes it with another extractor. Float and int8. */
static void side_threads_case(enum extract_path path, struct extractor *single)
{
    char err[256];
    struct extractor *ex = NULL;
    struct image im[2];
    float *want = malloc(sizeof(float) * 2 * 3 * EXTRACT_DIM);
    CHECK_INT(extractor_open_path(NULL, path, &ex, err, sizeof err), 0);
    if (!ex || !want) {
        free(want);
        extractor_close(ex);
        return;
    }
    struct side_job jobs[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        render(30 + i, 360 + 100 * i, 270, &im[i]);
        for (int k = 0; k < 3; k++)
            CHECK_INT(extractor_embed_side(single, &im[i], job_sides[k],
                                           want + (size_t)(i * 3 + k) * EXTRACT_DIM),
                      0);
        jobs[i] = (struct side_job){ex, &im[i], want + (size_t)i * 3 * EXTRACT_DIM, 0, 0};
    }
    for (int i = 0; i < 2; i++)
        CHECK_INT(pthread_create(&th[i], NULL, side_worker, &jobs[i]), 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        CHECK_INT(jobs[i].rc, 0);
        CHECK(jobs[i].same);
        free(im[i].rgb);
    }
    free(want);
    extractor_close(ex);
}

static void test_side_threads(void)
{
    side_threads_case(EXTRACT_PATH_FLOAT, ex_fast);
    if (ex_int8)
        side_threads_case(EXTRACT_PATH_INT8, ex_int8);
}

int main(void)
{
    char err[512] = "";
    const char *g = getenv("IMGSEARCH_GOLDEN_DIR");
    const char *cache = getenv("IMGSEARCH_CACHE");
    if (g && *g)
        snprintf(golden_dir, sizeof golden_dir, "%s", g);
    else
        snprintf(golden_dir, sizeof golden_dir, "%s/golden", cache && *cache ? cache : ".cache");

    unsetenv("IMGSEARCH_EXTRACT_REF");
    if (extractor_open(NULL, &ex_fast, err, sizeof err) != 0) {
        fprintf(stderr, "cannot open the model (%s): run scripts/fetch-model.sh\n", err);
        printf("0 passed, 1 failed\n");
        return 1;
    }
    setenv("IMGSEARCH_EXTRACT_REF", "1", 1);
    if (extractor_open(NULL, &ex_ref, err, sizeof err) != 0)
        fprintf(stderr, "reference extractor: %s\n", err);
    unsetenv("IMGSEARCH_EXTRACT_REF");
    setenv("IMGSEARCH_EXTRACT_BLAS", "1", 1);
    if (extractor_open(NULL, &ex_blas, err, sizeof err) != 0)
        fprintf(stderr, "OpenBLAS extractor: %s\n", err);
    unsetenv("IMGSEARCH_EXTRACT_BLAS");
    if (extractor_open_path(NULL, EXTRACT_PATH_INT8, &ex_int8, err, sizeof err) != 0)
        fprintf(stderr, "int8 extractor: %s\n", err);

    RUN(test_golden_fast);
    RUN(test_golden_ref);
    RUN(test_golden_blas);
    RUN(test_golden_int8);
    RUN(test_int8_images);
    RUN(test_fast_matches_ref);
    RUN(test_unit_norm_and_determinism);
    RUN(test_threads);
    RUN(test_resized_and_flipped);
    RUN(test_resize_identity);
    RUN(test_phash);
    RUN(test_bad_inputs);
    RUN(test_feature_map);
    RUN(test_side);
    RUN(test_side_limit);
    RUN(test_side_threads);

    extractor_close(ex_fast);
    extractor_close(ex_ref);
    extractor_close(ex_blas);
    extractor_close(ex_int8);
    return unit_report();
}
