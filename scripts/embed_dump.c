/* embed_dump.c: offline descriptor dump for the quality experiments of
 * scripts/bench-quality (issue 4). Reads image file paths from stdin, one a
 * line; decodes each exactly like the server's v2 path (decode_image with
 * limits {65, 4095, EXTRACT_SIDE}) and writes its EXTRACT_DIM float32
 * descriptor (L2-normalised, the server's) to stdout, in input order. A file
 * that fails to decode gives a zero vector and a message on stderr.
 *
 * build: cc -O2 -I. scripts/embed_dump.c build/release/libimgsearch.a \
 *          $(LIBS of the Makefile) -o build/embed_dump
 * usage: build/embed_dump < list.txt > vectors.f32   (model: IMGSEARCH_MODEL or default) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/extract.h"
#include "index/image.h"

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

int main(void)
{
    char err[256], line[4096];
    struct extractor *ex = NULL;
    if (extractor_open(getenv("IMGSEARCH_MODEL"), &ex, err, sizeof err) != 0) {
        fprintf(stderr, "embed_dump: %s\n", err);
        return 1;
    }
    struct decode_limits lim = {65, 4095, EXTRACT_SIDE};
    static float vec[EXTRACT_DIM];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        size_t len = 0;
        unsigned char *buf = slurp(line, &len);
        struct image img = {0};
        memset(vec, 0, sizeof vec);
        if (!buf || decode_image(buf, len, &lim, &img) != DECODE_OK ||
            extractor_embed(ex, &img, vec) != 0)
            fprintf(stderr, "embed_dump: cannot embed %s\n", line);
        image_free(&img);
        free(buf);
        fwrite(vec, sizeof(float), EXTRACT_DIM, stdout);
    }
    fflush(stdout);
    extractor_close(ex);
    return 0;
}
