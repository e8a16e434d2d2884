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
 * With --map SIDE [--view K] [--rot Q] it writes instead the last feature map
 * of the image (rotated by Q quarter turns with image_rotate, as the
 * server's orientation search; then its view K, made by item_view) squashed
 * to SIDE x SIDE:
 * g x g x EXTRACT_DIM float32 a line, g = ceil(SIDE / 32), HWC, post-ReLU6
 * Conv_1 (extractor_feature_map); for the compact-descriptor study
 * (scripts/bench-compact-offline).
 *
 * With --side SIDE [--view K | --window F] [--rot Q] it writes one descriptor
 * a line: the image (turned by Q quarter turns; then its view K by item_view,
 * or its centre window of F x F of the sides, F in (0, 1]) run through the
 * network at SIDE x SIDE (extractor_embed_side); for the view-resolution
 * study (scripts/bench-views-offline --sides, issue 9). --side 224 --view K
 * is --views' vector K.
 *
 * build: cc -O2 -I. scripts/embed_dump.c build/release/libimgsearch.a \
 *          $(LIBS of the Makefile) -o build/embed_dump
 * usage: build/embed_dump [--views | --map SIDE [--view K] [--rot Q] |
 *                          --side SIDE [--view K | --window F] [--rot Q]] < list.txt > vectors.f32
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

static int embed_map(const struct extractor *ex, const struct image *img, int side, int view,
                     int rot, float *out)
{
    struct image r = {0}, v = {0};
    int grid = 0, rc = -1;
    if (rot > 0 && image_rotate(img, rot, &r) != 0)
        goto done;
    const struct image *src = rot > 0 ? &r : img;
    if (view > 0 && item_view(src, view, &v) != 0)
        goto done;
    rc = extractor_feature_map(ex, view > 0 ? &v : src, side, out, &grid);
    rc = rc == 0 && grid == (side + 31) / 32 ? 0 : -1;
done:
    image_free(&v);
    image_free(&r);
    return rc;
}

/* The centre window of f x f of the sides, truncated, as search.c cuts the
 * query's (w * 7 / 10 for f = 0.7). */
static int centre_window(const struct image *img, double f, struct image *out)
{
    int w = img->orig_width, h = img->orig_height;
    int cw = (int)(w * f + 1e-9), ch = (int)(h * f + 1e-9);
    if (cw < 1)
        cw = 1;
    if (ch < 1)
        ch = 1;
    return image_crop(img, (w - cw) / 2, (h - ch) / 2, (w - cw) / 2 + cw, (h - ch) / 2 + ch, out);
}

static int embed_at(const struct extractor *ex, const struct image *img, int side, int view,
                    double window, int rot, float *out)
{
    struct image r = {0}, v = {0};
    int rc = -1;
    if (rot > 0 && image_rotate(img, rot, &r) != 0)
        goto done;
    const struct image *src = rot > 0 ? &r : img;
    if (view > 0 && item_view(src, view, &v) != 0)
        goto done;
    if (window > 0 && centre_window(src, window, &v) != 0)
        goto done;
    rc = extractor_embed_side(ex, view > 0 || window > 0 ? &v : src, side, out);
done:
    image_free(&v);
    image_free(&r);
    return rc;
}

int main(int argc, char **argv)
{
    char err[256], line[4096];
    int views = 0, side = 0, view = 0, rot = 0, bad = 0, vside = 0;
    double window = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--views"))
            views = 1;
        else if (!strcmp(argv[i], "--map") && i + 1 < argc)
            side = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--side") && i + 1 < argc)
            vside = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--window") && i + 1 < argc)
            window = atof(argv[++i]);
        else if (!strcmp(argv[i], "--view") && i + 1 < argc)
            view = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rot") && i + 1 < argc)
            rot = atoi(argv[++i]);
        else
            bad = 1;
    }
    if (bad || (views && (side || vside)) || (side && vside) ||
        ((view || rot) && !side && !vside) || (window && !vside) || (window && view) ||
        window < 0 || window > 1 || (side && (side < 32 || side > 1024)) ||
        (vside && (vside < EXTRACT_MIN_SIDE || vside > EXTRACT_MAX_SIDE)) || view < 0 || rot < 0 ||
        rot > 3) {
        fprintf(stderr,
                "usage: embed_dump [--views | --map SIDE [--view K] [--rot Q] | --side SIDE "
                "[--view K | --window F] [--rot Q]] < list\n");
        return 2;
    }
    int grid = (side + 31) / 32;
    size_t nvec = side ? (size_t)grid * grid : views ? 3 : 1;
    struct extractor *ex = NULL;
    if (extractor_open(getenv("IMGSEARCH_MODEL"), &ex, err, sizeof err) != 0) {
        fprintf(stderr, "embed_dump: %s\n", err);
        return 1;
    }
    struct decode_limits lim = {65, 4095, EXTRACT_SIDE};
    float *vec = malloc(sizeof(float) * nvec * EXTRACT_DIM);
    if (!vec)
        return 1;
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        size_t len = 0;
        unsigned char *buf = slurp(line, &len);
        struct image img = {0};
        memset(vec, 0, sizeof(float) * nvec * EXTRACT_DIM);
        if (!buf || decode_image(buf, len, &lim, &img) != DECODE_OK ||
            (side    ? embed_map(ex, &img, side, view, rot, vec)
             : vside ? embed_at(ex, &img, vside, view, window, rot, vec)
             : views ? embed_views(ex, &img, vec)
                     : extractor_embed(ex, &img, vec)) != 0)
            fprintf(stderr, "embed_dump: cannot embed %s\n", line);
        image_free(&img);
        free(buf);
        fwrite(vec, sizeof(float), nvec * EXTRACT_DIM, stdout);
    }
    fflush(stdout);
    free(vec);
    extractor_close(ex);
    return 0;
}
