/* bench_extract.c: times the feature extractor on one thread: extract alone
 * (resize + network + normalise) on an in-memory image, and decode + extract
 * of a JPEG (TurboJPEG, full size and DCT-downscaled to the smallest of its
 * M/8 scales; and the server's own decoder, index/decode.c, which keeps to
 * 1/2, 1/4, 1/8), fast (float and int8) and reference paths. Prints the median of N runs each, as
 * wall time and as this thread's CPU time (less disturbed when other
 * processes share the cores).
 *
 * usage: bench_extract FILE.jpg [N]   (model from IMGSEARCH_MODEL or default) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <turbojpeg.h>

#include "index/extract.h"
#include "index/image.h"

static clockid_t bench_clock = CLOCK_MONOTONIC;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(bench_clock, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Decodes to RGB at the smallest TurboJPEG scale whose shorter side stays
 * >= min_side (0 = full size). */
static int decode(tjhandle tj, const unsigned char *buf, unsigned long len, int min_side,
                  struct image *img)
{
    int w, h, sub, cs, nsf;
    if (tjDecompressHeader3(tj, buf, len, &w, &h, &sub, &cs) != 0)
        return -1;
    tjscalingfactor *sf = tjGetScalingFactors(&nsf), best = {1, 1};
    for (int i = 0; min_side > 0 && i < nsf; i++) {
        int sw = TJSCALED(w, sf[i]), sh = TJSCALED(h, sf[i]);
        int bw = TJSCALED(w, best), bh = TJSCALED(h, best);
        if ((sw < sh ? sw : sh) >= min_side && sw * sh < bw * bh)
            best = sf[i];
    }
    img->orig_width = w;
    img->orig_height = h;
    img->width = TJSCALED(w, best);
    img->height = TJSCALED(h, best);
    img->rgb = malloc((size_t)img->width * img->height * 3);
    if (!img->rgb)
        return -1;
    return tjDecompress2(tj, buf, len, img->rgb, img->width, 0, img->height, TJPF_RGB, 0);
}

struct result {
    double decode_full, decode_scaled, extract, full, scaled, extract_ref, extract_blas;
    double extract_int8, scaled_int8, server_int8;
    int int8; /* the int8 extractor really runs int8 (AVX-512 VNNI) */
    int w, h, sw, sh, vw, vh;
};

static int run(const char *path, int n, struct result *r)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(len);
    if (!buf || fread(buf, 1, len, f) != (size_t)len) {
        fclose(f);
        return -1;
    }
    fclose(f);

    char err[256];
    struct extractor *fast = NULL, *ref = NULL, *blas = NULL, *q8 = NULL;
    unsetenv("IMGSEARCH_EXTRACT_REF");
    if (extractor_open(NULL, &fast, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    setenv("IMGSEARCH_EXTRACT_REF", "1", 1);
    if (extractor_open(NULL, &ref, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    unsetenv("IMGSEARCH_EXTRACT_REF");
    setenv("IMGSEARCH_EXTRACT_BLAS", "1", 1);
    if (extractor_open(NULL, &blas, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    unsetenv("IMGSEARCH_EXTRACT_BLAS");
    if (extractor_open_path(NULL, EXTRACT_PATH_INT8, &q8, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    r->int8 = extractor_path(q8) == EXTRACT_PATH_INT8;
    tjhandle tj = tjInitDecompress();
    double *t[10];
    for (int k = 0; k < 10; k++)
        t[k] = calloc(n, sizeof(double));
    float out[EXTRACT_DIM];
    struct image img = {0};

    /* Warm-up: page in the weights, fill the scratch pool. */
    decode(tj, buf, len, 0, &img);
    extractor_embed(fast, &img, out);
    extractor_embed(ref, &img, out);
    extractor_embed(blas, &img, out);
    extractor_embed(q8, &img, out);
    r->w = img.width;
    r->h = img.height;
    free(img.rgb);

    int nref = n / 5 > 3 ? n / 5 : 3;
    for (int i = 0; i < n; i++) {
        double t0 = now_ms();
        decode(tj, buf, len, 0, &img);
        double t1 = now_ms();
        extractor_embed(fast, &img, out);
        double t2 = now_ms();
        t[2][i] = t2 - t1;
        t[3][i] = t2 - t0;
        if (i < nref) {
            extractor_embed(ref, &img, out);
            t[5][i] = now_ms() - t2;
        }
        t2 = now_ms();
        extractor_embed(blas, &img, out);
        t[6][i] = now_ms() - t2;
        t2 = now_ms();
        extractor_embed(q8, &img, out);
        t[7][i] = now_ms() - t2;
        free(img.rgb);
        t[0][i] = t1 - t0;

        t0 = now_ms();
        decode(tj, buf, len, EXTRACT_SIDE, &img);
        t1 = now_ms();
        extractor_embed(fast, &img, out);
        t2 = now_ms();
        r->sw = img.width;
        r->sh = img.height;
        free(img.rgb);
        t[1][i] = t1 - t0;
        t[4][i] = t2 - t0;

        t0 = now_ms();
        decode(tj, buf, len, EXTRACT_SIDE, &img);
        extractor_embed(q8, &img, out);
        t[8][i] = now_ms() - t0;
        free(img.rgb);

        /* The server's path: decode_image with the v2 limits (h_v2_data.c). */
        struct decode_limits lim = {65, 4095, EXTRACT_SIDE};
        struct image simg = {0};
        t0 = now_ms();
        if (decode_image(buf, len, &lim, &simg) == DECODE_OK)
            extractor_embed(q8, &simg, out);
        t[9][i] = now_ms() - t0;
        r->vw = simg.width;
        r->vh = simg.height;
        image_free(&simg);
    }
    r->decode_full = median(t[0], n);
    r->decode_scaled = median(t[1], n);
    r->extract = median(t[2], n);
    r->full = median(t[3], n);
    r->scaled = median(t[4], n);
    r->extract_ref = median(t[5], nref);
    r->extract_blas = median(t[6], n);
    r->extract_int8 = median(t[7], n);
    r->scaled_int8 = median(t[8], n);
    r->server_int8 = median(t[9], n);
    for (int k = 0; k < 10; k++)
        free(t[k]);
    tjDestroy(tj);
    free(buf);
    extractor_close(fast);
    extractor_close(ref);
    extractor_close(blas);
    extractor_close(q8);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE.jpg [N]\n", argv[0]);
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : 30;
    if (n < 1)
        n = 1;
    struct result r, c;
    bench_clock = CLOCK_MONOTONIC;
    if (run(argv[1], n, &r) != 0)
        goto fail;
    bench_clock = CLOCK_THREAD_CPUTIME_ID;
    if (run(argv[1], n, &c) != 0)
        goto fail;
    printf("| %dx%d JPEG, median of %d (ref: %d) | wall ms | cpu ms |\n|---|---|---|\n", r.w, r.h,
           n, n / 5 > 3 ? n / 5 : 3);
    printf("| decode, full size | %.2f | %.2f |\n", r.decode_full, c.decode_full);
    printf("| decode, DCT-scaled to %dx%d | %.2f | %.2f |\n", r.sw, r.sh, r.decode_scaled,
           c.decode_scaled);
    printf("| extract alone, fast path (from %dx%d RGB) | %.2f | %.2f |\n", r.w, r.h, r.extract,
           c.extract);
    printf("| extract alone, portable fast path (IMGSEARCH_EXTRACT_BLAS=1) | %.2f | %.2f "
           "|\n",
           r.extract_blas, c.extract_blas);
    printf("| extract alone, reference path (IMGSEARCH_EXTRACT_REF=1) | %.2f | %.2f |\n",
           r.extract_ref, c.extract_ref);
    printf("| extract alone, int8 path%s | %.2f | %.2f |\n",
           r.int8 ? "" : " (no VNNI: runs the float path)", r.extract_int8, c.extract_int8);
    printf("| decode full + extract, fast | %.2f | %.2f |\n", r.full, c.full);
    printf("| decode scaled + extract, fast | %.2f | %.2f |\n", r.scaled, c.scaled);
    printf("| decode scaled + extract, int8 | %.2f | %.2f |\n", r.scaled_int8, c.scaled_int8);
    printf("| the server's decode_image (to %dx%d) + extract, int8 | %.2f | %.2f |\n", r.vw, r.vh,
           r.server_int8, c.server_int8);
    return 0;
fail:
    fprintf(stderr, "bench failed\n");
    return 1;
}
