/* embed_dump.c: offline descriptor dump for the quality experiments of
 * scripts/bench-quality (issue 4). Reads image file paths from stdin, one a
 * line; decodes each exactly like the server's v2 path (decode_image with
 * limits {65, 4095, EXTRACT_SIDE}) and writes its EXTRACT_DIM float32
 * descriptor (L2-normalised, the server's) to stdout, in input order. A file
 * that fails to decode gives zero vectors and a message on stderr.
 *
 * With --views it writes instead the three extra views an instance with
 * views stores (storage/vectors.h, in kind order): centre window k = 1
 * (0.6 x 0.6 of the sides), 96 px copy k = 6, grey contrast-stretched copy
 * k = 7: 3 x EXTRACT_DIM floats a line, made by the server's item_view.
 *
 * build: cc -O2 -I. scripts/embed_dump.c build/release/libimgsearch.a \
 *          $(LIBS of the Makefile) -o build/embed_dump
 * usage: build/embed_dump [--views] < list.txt > vectors.f32
 *        (model: IMGSEARCH_MODEL or default) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/extract.h"
#include "index/image.h"
#include "server/ingest.h"

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static int embed_views(const struct extractor *ex, const struct image *img, float *out)
{
    static const int kinds[3] = {VEC_K_CENTRE, VEC_K_LOWRES, VEC_K_GREY};
    for (int i = 0; i < 3; i++) {
        struct image v;
        int ok = item_view(img, kinds[i], &v) == 0 &&
                 extractor_embed(ex, &v, out + i * EXTRACT_DIM) == 0;
        image_free(&v);
        if (!ok)
            return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    char err[256], line[4096];
    int views = argc > 1 && !strcmp(argv[1], "--views");
    int nvec = views ? 3 : 1;
    struct extractor *ex = NULL;
    if (extractor_open(getenv("IMGSEARCH_MODEL"), &ex, err, sizeof err) != 0) {
        fprintf(stderr, "embed_dump: %s\n", err);
        return 1;
    }
    struct decode_limits lim = {65, 4095, EXTRACT_SIDE};
    static float vec[3 * EXTRACT_DIM];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        size_t len = 0;
        unsigned char *buf = slurp(line, &len);
        struct image img = {0};
        memset(vec, 0, sizeof vec);
        if (!buf || decode_image(buf, len, &lim, &img) != DECODE_OK ||
            (views ? embed_views(ex, &img, vec) : extractor_embed(ex, &img, vec)) != 0)
            fprintf(stderr, "embed_dump: cannot embed %s\n", line);
        image_free(&img);
        free(buf);
        fwrite(vec, sizeof(float), (size_t)nvec * EXTRACT_DIM, stdout);
    }
    fflush(stdout);
    extractor_close(ex);
    return 0;
}
