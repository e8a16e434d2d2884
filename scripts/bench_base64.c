/* bench_base64.c: throughput of base64_decode on one core (64 MB of base64
 * text, unbroken and MIME-wrapped at 76 columns with CRLF; also 6.7 MB, a 5 MB
 * image, and 128 KB, which stays in cache), and decode_image
 * times for the JPEG files given on the command line, at full size and with
 * DCT scaling to a 224 px target. Prints medians: the CPU is shared.
 *
 * usage: bench_base64 [RUNS] [FILE.jpg ...] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "index/image.h"
#include "storage/base64.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Median over `runs` of the time per decode; small inputs are repeated so
 * each timed sample lasts a few milliseconds. */
static double time_decode(const char *text, size_t len, size_t want, int runs)
{
    double t[64];
    int reps = (int)(((size_t)32 << 20) / len) + 1;
    for (int r = 0; r < runs; r++) {
        double t0 = now_s();
        for (int k = 0; k < reps; k++) {
            uint8_t *out;
            size_t n;
            /* A generous limit: the exact-size pass is not what we measure. */
            enum b64_status st = base64_decode(text, len, want * 2, &out, &n);
            if (st != B64_OK || n != want) {
                fprintf(stderr, "decode failed: %d\n", st);
                exit(1);
            }
            free(out);
        }
        t[r] = (now_s() - t0) / reps;
    }
    return median(t, runs);
}

static double time_memcpy(size_t len, int runs)
{
    double t[64];
    int reps = (int)(((size_t)32 << 20) / len) + 1;
    char *a = malloc(len);
    memset(a, 'A', len);
    for (int r = 0; r < runs; r++) {
        double t0 = now_s();
        for (int k = 0; k < reps; k++) {
            char *b = malloc(len);
            memcpy(b, a, len);
            __asm__ volatile("" : : "r"(b) : "memory"); /* keep the copy */
            free(b);
        }
        t[r] = (now_s() - t0) / reps;
    }
    free(a);
    return median(t, runs);
}

static void bench_size(size_t raw_len, int runs)
{
    uint8_t *raw = malloc(raw_len);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < raw_len; i++) { /* xorshift: incompressible bytes */
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        raw[i] = (uint8_t)x;
    }
    char *text = base64_encode(raw, raw_len);
    size_t tlen = strlen(text);
    /* MIME style: CRLF after every 76 characters. */
    char *wrapped = malloc(tlen + tlen / 76 * 2 + 2);
    size_t w = 0;
    for (size_t i = 0; i < tlen; i += 76) {
        size_t n = tlen - i < 76 ? tlen - i : 76;
        memcpy(wrapped + w, text + i, n);
        w += n;
        wrapped[w++] = '\r';
        wrapped[w++] = '\n';
    }
    double plain = time_decode(text, tlen, raw_len, runs);
    double crlf = time_decode(wrapped, w, raw_len, runs);
    double copy = time_memcpy(tlen, runs);
    printf("base64_decode %9.3f MB text: %6.2f GB/s unbroken, %6.2f GB/s CRLF/76"
           " (malloc+memcpy of the text: %6.2f GB/s)\n",
           (double)tlen / 1e6, (double)tlen / plain / 1e9, (double)w / crlf / 1e9,
           (double)tlen / copy / 1e9);
    free(wrapped);
    free(text);
    free(raw);
}

static void bench_jpeg(const char *path, int runs)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    rewind(f);
    uint8_t *buf = malloc((size_t)len);
    if (fread(buf, 1, (size_t)len, f) != (size_t)len)
        exit(1);
    fclose(f);
    int targets[2] = {0, 224};
    for (int k = 0; k < 2; k++) {
        struct decode_limits lim = {1, 16384, targets[k]};
        double t[64];
        struct image img = {0};
        for (int r = 0; r < runs; r++) {
            image_free(&img);
            double t0 = now_s();
            enum decode_status st = decode_image(buf, (size_t)len, &lim, &img);
            t[r] = now_s() - t0;
            if (st != DECODE_OK) {
                fprintf(stderr, "%s: %s\n", path, decode_status_text(st));
                exit(1);
            }
        }
        printf("decode_image %s %dx%d target %3d -> %dx%d: %7.2f ms (median of %d)\n", path,
               img.orig_width, img.orig_height, targets[k], img.width, img.height,
               median(t, runs) * 1e3, runs);
        image_free(&img);
    }
    free(buf);
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 7;
    if (runs < 1 || runs > 64)
        runs = 7;
    printf("(GB/s of base64 input, median of %d; one thread)\n", runs);
    bench_size((size_t)48 << 20, runs); /* 64 MiB of text: memory-bound */
    bench_size((size_t)5 << 20, runs);  /* the v2 5 MB image limit */
    bench_size((size_t)96 << 10, runs); /* 128 KiB: cache-resident */
    for (int i = 2; i < argc; i++)
        bench_jpeg(argv[i], runs);
    return 0;
}
