/* test_decode.c: every decoder on the fixtures of tests/fixtures/make_images.py
 * (pixel placement via four coloured quadrants), limits, corrupt input,
 * DCT scaling, crop and rotate. Runs from the repo root. */
#include "index/image.h"
#include "tests/unit.h"

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#define FIX "tests/fixtures/images/"

/* Keep in sync with QUAD in make_images.py: TL, TR, BL, BR. */
static const uint8_t quad[4][3] = {{220, 30, 30}, {30, 200, 30}, {30, 30, 220}, {230, 220, 40}};

static const struct decode_limits test_lim = {16, 4095, 0};
static const struct decode_limits v2_lim = {65, 4095, 0};

static uint8_t *load(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    *len = 0;
    if (!f) {
        fprintf(stderr, "  cannot open %s\n", path);
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        rewind(f);
        buf = malloc(n > 0 ? (size_t)n : 1);
        if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n)
            *len = (size_t)n;
    }
    fclose(f);
    return buf;
}

static enum decode_status decode_file(const char *name, const struct decode_limits *lim,
                                      struct image *img)
{
    char path[256];
    size_t len;
    snprintf(path, sizeof(path), FIX "%s", name);
    uint8_t *buf = load(path, &len);
    enum decode_status st = buf ? decode_image(buf, len, lim, img) : DECODE_UNSUPPORTED;
    free(buf);
    return st;
}

static int near(const uint8_t *px, const uint8_t *want, int tol)
{
    for (int i = 0; i < 3; i++)
        if (abs((int)px[i] - (int)want[i]) > tol)
            return 0;
    return 1;
}

static const uint8_t *pixel(const struct image *img, int x, int y)
{
    return img->rgb + ((size_t)y * img->width + x) * 3;
}

/* Centres of the quadrants must hold the expected colours. */
static int quadrants_ok(const struct image *img, const uint8_t want[4][3], int tol)
{
    int w = img->width, h = img->height, ok = 1;
    int xs[4] = {w / 4, 3 * w / 4, w / 4, 3 * w / 4};
    int ys[4] = {h / 4, h / 4, 3 * h / 4, 3 * h / 4};
    for (int i = 0; i < 4; i++) {
        const uint8_t *p = pixel(img, xs[i], ys[i]);
        if (!near(p, want[i], tol)) {
            fprintf(stderr, "  quadrant %d: got %d,%d,%d want %d,%d,%d\n", i, p[0], p[1], p[2],
                    want[i][0], want[i][1], want[i][2]);
            ok = 0;
        }
    }
    return ok;
}

/* Decodes `name` and checks it is the 96x64 four-quadrant picture. */
static void check_quad_file(const char *name, int tol)
{
    struct image img;
    enum decode_status st = decode_file(name, &test_lim, &img);
    if (st != DECODE_OK)
        fprintf(stderr, "  %s: %s\n", name, decode_status_text(st));
    CHECK_INT(st, DECODE_OK);
    if (st != DECODE_OK)
        return;
    CHECK_INT(img.width, 96);
    CHECK_INT(img.height, 64);
    CHECK_INT(img.orig_width, 96);
    CHECK_INT(img.orig_height, 64);
    if (!quadrants_ok(&img, quad, tol))
        fprintf(stderr, "  in %s\n", name);
    CHECK(quadrants_ok(&img, quad, tol));
    image_free(&img);
}

static void test_sniff(void)
{
    CHECK_INT(image_sniff((const uint8_t *)"\xff\xd8\xff\xe0", 4), IMG_JPEG);
    CHECK_INT(image_sniff((const uint8_t *)"\x89PNG\r\n\x1a\n", 8), IMG_PNG);
    CHECK_INT(image_sniff((const uint8_t *)"BM", 2), IMG_BMP);
    CHECK_INT(image_sniff((const uint8_t *)"RIFF\0\0\0\0WEBP", 12), IMG_WEBP);
    CHECK_INT(image_sniff((const uint8_t *)"RIFF\0\0\0\0WAVE", 12), IMG_UNKNOWN);
    CHECK_INT(image_sniff((const uint8_t *)"GIF89a", 6), IMG_UNKNOWN);
    CHECK_INT(image_sniff(NULL, 0), IMG_UNKNOWN);
    CHECK_STR(image_format_name(IMG_WEBP), "webp");
    CHECK_STR(image_format_name(IMG_UNKNOWN), "unknown");
    CHECK_STR(decode_status_text(DECODE_TOO_LARGE), "image is too large");
}

static void test_jpeg_variants(void)
{
    check_quad_file("jpeg_baseline.jpg", 40);
    check_quad_file("jpeg_progressive.jpg", 40);
    check_quad_file("jpeg_444.jpg", 30);
    check_quad_file("jpeg_cmyk.jpg", 40);
}

static void test_jpeg_gray(void)
{
    struct image img;
    CHECK_INT(decode_file("jpeg_gray.jpg", &test_lim, &img), DECODE_OK);
    if (!img.rgb)
        return;
    /* Gray comes out as R == G == B, with the luma of each quadrant. */
    const uint8_t *p = pixel(&img, 24, 16);
    CHECK(p[0] == p[1] && p[1] == p[2]);
    int luma = (299 * 220 + 587 * 30 + 114 * 30) / 1000;
    CHECK(abs(p[0] - luma) < 10);
    image_free(&img);
}

/* Every orientation displays as the same picture once EXIF is applied. */
static void test_jpeg_exif_orientation(void)
{
    for (int o = 1; o <= 8; o++) {
        char name[64];
        snprintf(name, sizeof(name), "jpeg_orient_%d.jpg", o);
        check_quad_file(name, 40);
    }
}

static void test_jpeg_dct_scaling(void)
{
    struct image img;
    struct decode_limits lim = {16, 4095, 0};
    CHECK_INT(decode_file("jpeg_400x300.jpg", &lim, &img), DECODE_OK);
    CHECK_INT(img.width, 400);
    CHECK_INT(img.height, 300);
    image_free(&img);
    /* 300/2 = 150 >= 100 but 300/4 = 75 < 100: half size. */
    lim.target_side = 100;
    CHECK_INT(decode_file("jpeg_400x300.jpg", &lim, &img), DECODE_OK);
    CHECK_INT(img.width, 200);
    CHECK_INT(img.height, 150);
    CHECK_INT(img.orig_width, 400);
    CHECK_INT(img.orig_height, 300);
    image_free(&img);
    lim.target_side = 75; /* 300/4 = 75 exactly */
    CHECK_INT(decode_file("jpeg_400x300.jpg", &lim, &img), DECODE_OK);
    CHECK_INT(img.width, 100);
    CHECK_INT(img.height, 75);
    image_free(&img);
    lim.target_side = 30; /* 300/8 = 37.5 -> 38 */
    CHECK_INT(decode_file("jpeg_400x300.jpg", &lim, &img), DECODE_OK);
    CHECK_INT(img.width, 50);
    CHECK_INT(img.height, 38);
    image_free(&img);
    lim.target_side = 301; /* larger than the image: full size */
    CHECK_INT(decode_file("jpeg_400x300.jpg", &lim, &img), DECODE_OK);
    CHECK_INT(img.width, 400);
    image_free(&img);
    /* Scaling and orientation together: 64x96 stored, displayed 96x64. */
    lim.target_side = 32;
    CHECK_INT(decode_file("jpeg_orient_6.jpg", &lim, &img), DECODE_OK);
    CHECK_INT(img.width, 48);
    CHECK_INT(img.height, 32);
    CHECK_INT(img.orig_width, 96);
    CHECK_INT(img.orig_height, 64);
    CHECK(quadrants_ok(&img, quad, 40));
    image_free(&img);
}

static void test_png_variants(void)
{
    check_quad_file("png_rgb8.png", 0);
    check_quad_file("png_rgb16.png", 0);
    check_quad_file("png_pal8.png", 0);
    struct image img;
    /* tRNS: palette index 0 (top-left) is transparent -> white. */
    const uint8_t trns[4][3] = {{255, 255, 255}, {30, 200, 30}, {30, 30, 220}, {230, 220, 40}};
    CHECK_INT(decode_file("png_pal_trns.png", &test_lim, &img), DECODE_OK);
    if (img.rgb)
        CHECK(quadrants_ok(&img, trns, 0));
    image_free(&img);
    /* Half-transparent red over white. */
    const uint8_t rgba[4][3] = {{238, 143, 143}, {30, 200, 30}, {30, 30, 220}, {230, 220, 40}};
    CHECK_INT(decode_file("png_rgba8.png", &test_lim, &img), DECODE_OK);
    if (img.rgb)
        CHECK(quadrants_ok(&img, rgba, 1));
    image_free(&img);
    const uint8_t rgba16[4][3] = {{220, 30, 30}, {30, 200, 30}, {30, 30, 220}, {255, 255, 255}};
    CHECK_INT(decode_file("png_rgba16.png", &test_lim, &img), DECODE_OK);
    if (img.rgb)
        CHECK(quadrants_ok(&img, rgba16, 0));
    image_free(&img);
}

static void test_png_gray(void)
{
    struct image img;
    CHECK_INT(decode_file("png_gray8.png", &test_lim, &img), DECODE_OK);
    if (img.rgb) {
        const uint8_t g[4][3] = {{0, 0, 0}, {80, 80, 80}, {160, 160, 160}, {240, 240, 240}};
        CHECK(quadrants_ok(&img, g, 0));
    }
    image_free(&img);
    const uint8_t bw[4][3] = {{0, 0, 0}, {255, 255, 255}, {0, 0, 0}, {255, 255, 255}};
    CHECK_INT(decode_file("png_gray1.png", &test_lim, &img), DECODE_OK);
    if (img.rgb)
        CHECK(quadrants_ok(&img, bw, 0));
    image_free(&img);
    /* Gray+alpha: transparent left half -> white, opaque black right half. */
    const uint8_t ga[4][3] = {{255, 255, 255}, {0, 0, 0}, {255, 255, 255}, {0, 0, 0}};
    CHECK_INT(decode_file("png_graya8.png", &test_lim, &img), DECODE_OK);
    if (img.rgb)
        CHECK(quadrants_ok(&img, ga, 0));
    image_free(&img);
}

static void test_bmp_variants(void)
{
    check_quad_file("bmp_24.bmp", 0);
    check_quad_file("bmp_24_topdown.bmp", 0);
    check_quad_file("bmp_32.bmp", 0);
    check_quad_file("bmp_32_v5_bitfields.bmp", 0);
    check_quad_file("bmp_16_565.bmp", 8); /* 5/6-bit channels */
    check_quad_file("bmp_8.bmp", 0);
    check_quad_file("bmp_8_topdown.bmp", 0);
    check_quad_file("bmp_4.bmp", 0);
    struct image img;
    const uint8_t bw[4][3] = {{0, 0, 0}, {255, 255, 255}, {0, 0, 0}, {255, 255, 255}};
    CHECK_INT(decode_file("bmp_1.bmp", &test_lim, &img), DECODE_OK);
    if (img.rgb)
        CHECK(quadrants_ok(&img, bw, 0));
    image_free(&img);
    CHECK_INT(decode_file("bmp_rle8.bmp", &test_lim, &img), DECODE_UNSUPPORTED);
    CHECK(img.rgb == NULL);
}

static void test_webp_variants(void)
{
    check_quad_file("webp_lossy.webp", 40);
    check_quad_file("webp_lossless.webp", 0);
    const uint8_t alpha[4][3] = {{255, 255, 255}, {30, 200, 30}, {30, 30, 220}, {230, 220, 40}};
    struct image img;
    CHECK_INT(decode_file("webp_alpha_lossless.webp", &test_lim, &img), DECODE_OK);
    if (img.rgb)
        CHECK(quadrants_ok(&img, alpha, 0));
    image_free(&img);
    CHECK_INT(decode_file("webp_alpha_lossy.webp", &test_lim, &img), DECODE_OK);
    if (img.rgb)
        CHECK(quadrants_ok(&img, alpha, 40));
    image_free(&img);
    /* Same power-of-two reduction as JPEG. */
    struct decode_limits lim = {16, 4095, 100};
    CHECK_INT(decode_file("webp_400x300.webp", &lim, &img), DECODE_OK);
    CHECK_INT(img.width, 200);
    CHECK_INT(img.height, 150);
    CHECK_INT(img.orig_width, 400);
    image_free(&img);
}

static void test_limits(void)
{
    struct image img;
    /* 96x64 against v2 (65): the short side 64 is too small. */
    CHECK_INT(decode_file("png_rgb8.png", &v2_lim, &img), DECODE_TOO_SMALL);
    CHECK_INT(decode_file("jpeg_baseline.jpg", &v2_lim, &img), DECODE_TOO_SMALL);
    CHECK_INT(decode_file("bmp_24.bmp", &v2_lim, &img), DECODE_TOO_SMALL);
    CHECK_INT(decode_file("webp_lossy.webp", &v2_lim, &img), DECODE_TOO_SMALL);
    CHECK(img.rgb == NULL);
    /* Inclusive bounds: 96 long side passes at 96, fails at 95; 64 short passes at 64. */
    struct decode_limits lim = {64, 96, 0};
    CHECK_INT(decode_file("png_rgb8.png", &lim, &img), DECODE_OK);
    image_free(&img);
    lim.max_long_side = 95;
    CHECK_INT(decode_file("png_rgb8.png", &lim, &img), DECODE_TOO_LARGE);
    CHECK_INT(decode_file("jpeg_orient_6.jpg", &lim, &img), DECODE_TOO_LARGE);
    CHECK_INT(decode_file("bmp_8.bmp", &lim, &img), DECODE_TOO_LARGE);
    CHECK_INT(decode_file("webp_lossless.webp", &lim, &img), DECODE_TOO_LARGE);
    /* v1 (100/2048): too small. */
    struct decode_limits v1 = {100, 2048, 0};
    CHECK_INT(decode_file("jpeg_400x300.jpg", &v1, &img), DECODE_OK);
    image_free(&img);
    v1.max_long_side = 399;
    CHECK_INT(decode_file("jpeg_400x300.jpg", &v1, &img), DECODE_TOO_LARGE);
}

/* Headers declaring 30000x30000 with no pixel data: refused from the header,
 * quickly, before anything is allocated. NULL limits still use a hard cap. */
static void test_huge_headers(void)
{
    static const char *files[] = {"png_huge_header.png", "jpeg_huge_header.jpg",
                                  "bmp_huge_header.bmp", "webp_huge_header.webp",
                                  "webp_huge_vp8l.webp"};
    struct image img;
    clock_t t0 = clock();
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        enum decode_status st = decode_file(files[i], &v2_lim, &img);
        if (st != DECODE_TOO_LARGE)
            fprintf(stderr, "  %s: %s\n", files[i], decode_status_text(st));
        CHECK_INT(st, DECODE_TOO_LARGE);
        CHECK(img.rgb == NULL);
        if (i < 4)
            CHECK_INT(decode_file(files[i], NULL, &img), DECODE_TOO_LARGE);
    }
    CHECK((double)(clock() - t0) / CLOCKS_PER_SEC < 0.5);
}

static void check_truncations(const char *name)
{
    char path[256];
    size_t len;
    snprintf(path, sizeof(path), FIX "%s", name);
    uint8_t *buf = load(path, &len);
    CHECK(buf != NULL);
    if (!buf)
        return;
    /* Cut at many points; each must fail cleanly as corrupt (the sanitizer
     * build checks for leaks and overreads). Keep 20 bytes so the format is
     * still recognised and the header complete. */
    for (size_t cut = 20; cut + 16 < len; cut += (len / 40) + 1) {
        uint8_t *copy = malloc(cut); /* exact size: ASan sees any overread */
        memcpy(copy, buf, cut);
        struct image img;
        enum decode_status st = decode_image(copy, cut, &test_lim, &img);
        if (st != DECODE_CORRUPT)
            fprintf(stderr, "  %s cut at %zu/%zu: %s\n", name, cut, len, decode_status_text(st));
        CHECK_INT(st, DECODE_CORRUPT);
        CHECK(img.rgb == NULL);
        image_free(&img);
        free(copy);
    }
    free(buf);
}

static void test_truncated(void)
{
    check_truncations("jpeg_baseline.jpg");
    check_truncations("jpeg_progressive.jpg");
    check_truncations("png_rgb8.png");
    check_truncations("png_pal8.png");
    check_truncations("webp_lossy.webp");
    check_truncations("webp_lossless.webp");
    check_truncations("bmp_24.bmp");
}

static void test_garbage(void)
{
    struct image img;
    static const uint8_t gif[] = "GIF89a\x10\x00\x10\x00";
    CHECK_INT(decode_image(gif, sizeof(gif), &test_lim, &img), DECODE_UNSUPPORTED);
    CHECK_INT(decode_image((const uint8_t *)"", 0, &test_lim, &img), DECODE_UNSUPPORTED);
    CHECK_INT(decode_image(NULL, 0, &test_lim, &img), DECODE_UNSUPPORTED);
    uint8_t noise[512];
    for (size_t i = 0; i < sizeof(noise); i++)
        noise[i] = (uint8_t)(i * 131 + 7);
    CHECK_INT(decode_image(noise, sizeof(noise), &test_lim, &img), DECODE_UNSUPPORTED);
    /* Right magic, garbage after it. */
    memcpy(noise, "\xff\xd8\xff", 3);
    CHECK_INT(decode_image(noise, sizeof(noise), &test_lim, &img), DECODE_CORRUPT);
    memcpy(noise, "\x89PNG\r\n\x1a\n", 8);
    CHECK_INT(decode_image(noise, sizeof(noise), &test_lim, &img), DECODE_CORRUPT);
    memcpy(noise, "RIFF\x00\x01\x00\x00WEBP", 12);
    CHECK_INT(decode_image(noise, sizeof(noise), &test_lim, &img), DECODE_CORRUPT);
    CHECK(img.rgb == NULL);
}

/* Valid JPEG structure, but a process we do not decode: 12-bit samples,
 * lossless (SOF3). Both are "unsupported", not "corrupt". */
static void test_jpeg_unsupported_process(void)
{
    size_t len;
    uint8_t *buf = load(FIX "jpeg_baseline.jpg", &len);
    CHECK(buf != NULL);
    if (!buf)
        return;
    size_t sof = 0;
    for (size_t i = 2; i + 4 < len && buf[i] == 0xFF;) {
        if (buf[i + 1] == 0xC0) {
            sof = i;
            break;
        }
        i += 2 + ((size_t)buf[i + 2] << 8 | buf[i + 3]);
    }
    CHECK(sof != 0);
    struct image img;
    buf[sof + 4] = 12; /* precision */
    CHECK_INT(decode_image(buf, len, &test_lim, &img), DECODE_UNSUPPORTED);
    buf[sof + 4] = 8;
    buf[sof + 1] = 0xC3; /* lossless */
    CHECK_INT(decode_image(buf, len, &test_lim, &img), DECODE_UNSUPPORTED);
    CHECK(img.rgb == NULL);
    free(buf);
}

/* A synthetic w x h image whose pixel (x, y) is (x, y, 7). */
static struct image coord_image(int w, int h)
{
    struct image img = {w, h, w, h, malloc((size_t)w * h * 3)};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = img.rgb + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)x;
            p[1] = (uint8_t)y;
            p[2] = 7;
        }
    return img;
}

static void test_crop(void)
{
    struct image in = coord_image(40, 30), out;
    CHECK_INT(image_crop(&in, 5, 6, 15, 26, &out), 0);
    CHECK_INT(out.width, 10);
    CHECK_INT(out.height, 20);
    CHECK_INT(out.orig_width, 10);
    CHECK_INT(out.orig_height, 20);
    CHECK_INT(pixel(&out, 0, 0)[0], 5);
    CHECK_INT(pixel(&out, 0, 0)[1], 6);
    CHECK_INT(pixel(&out, 9, 19)[0], 14);
    CHECK_INT(pixel(&out, 9, 19)[1], 25);
    image_free(&out);
    /* Clamped to the image. */
    CHECK_INT(image_crop(&in, -10, -10, 100, 100, &out), 0);
    CHECK_INT(out.width, 40);
    CHECK_INT(out.height, 30);
    image_free(&out);
    /* Empty or inverted or outside. */
    CHECK_INT(image_crop(&in, 5, 5, 5, 10, &out), -1);
    CHECK_INT(image_crop(&in, 10, 5, 5, 10, &out), -1);
    CHECK_INT(image_crop(&in, 50, 50, 60, 60, &out), -1);
    CHECK(out.rgb == NULL);
    /* Original coordinates scaled to a half-size decode. */
    in.orig_width = 80;
    in.orig_height = 60;
    CHECK_INT(image_crop(&in, 10, 20, 31, 41, &out), 0);
    CHECK_INT(out.width, 11); /* 5 .. ceil(15.5) = 16 */
    CHECK_INT(out.height, 11);
    CHECK_INT(pixel(&out, 0, 0)[0], 5);
    CHECK_INT(pixel(&out, 0, 0)[1], 10);
    CHECK_INT(out.orig_width, 21);
    image_free(&out);
    image_free(&in);
}

static void test_rotate(void)
{
    struct image in = coord_image(4, 3), out;
    CHECK_INT(image_rotate(&in, 1, &out), 0); /* 90 cw: bottom-left goes top-left */
    CHECK_INT(out.width, 3);
    CHECK_INT(out.height, 4);
    CHECK_INT(pixel(&out, 0, 0)[0], 0);
    CHECK_INT(pixel(&out, 0, 0)[1], 2);
    CHECK_INT(pixel(&out, 2, 0)[1], 0);
    CHECK_INT(pixel(&out, 2, 3)[0], 3);
    image_free(&out);
    CHECK_INT(image_rotate(&in, 2, &out), 0);
    CHECK_INT(out.width, 4);
    CHECK_INT(pixel(&out, 0, 0)[0], 3);
    CHECK_INT(pixel(&out, 0, 0)[1], 2);
    image_free(&out);
    CHECK_INT(image_rotate(&in, -1, &out), 0); /* == 3: 270 cw, top-right goes top-left */
    CHECK_INT(out.width, 3);
    CHECK_INT(pixel(&out, 0, 0)[0], 3);
    CHECK_INT(pixel(&out, 0, 0)[1], 0);
    image_free(&out);
    CHECK_INT(image_rotate(&in, 4, &out), 0);
    CHECK(memcmp(out.rgb, in.rgb, 4 * 3 * 3) == 0);
    image_free(&out);
    struct image empty = {0};
    CHECK_INT(image_rotate(&empty, 1, &out), -1);
    image_free(&in);
    image_free(&in); /* idempotent */
}

int main(void)
{
    RUN(test_sniff);
    RUN(test_jpeg_variants);
    RUN(test_jpeg_gray);
    RUN(test_jpeg_exif_orientation);
    RUN(test_jpeg_dct_scaling);
    RUN(test_png_variants);
    RUN(test_png_gray);
    RUN(test_bmp_variants);
    RUN(test_webp_variants);
    RUN(test_limits);
    RUN(test_huge_headers);
    RUN(test_truncated);
    RUN(test_garbage);
    RUN(test_jpeg_unsupported_process);
    RUN(test_crop);
    RUN(test_rotate);
    return unit_report();
}
