/* embed_views.c: like embed_dump.c, but writes the three extra views an
 * instance with views stores for each image (storage/vectors.h, in kind
 * order): centre window k = 1 (0.6 x 0.6 of the sides), 96 px copy k = 6,
 * grey contrast-stretched copy k = 7; 3 x EXTRACT_DIM float32 per input
 * line. Same decode, windows and views as server/ingest.c. For
 * scripts/bench-ann-real --views.
 *
 * usage: embed_views < list.txt > views.f32 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/extract.h"
#include "index/image.h"
#include "index/views.h"

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

static int view(const struct image *img, int k, struct image *out)
{
    if (k == 1) { /* as make_view in server/ingest.c */
        int w = img->orig_width, h = img->orig_height;
        int cw = (w * 3 + 2) / 5, ch = (h * 3 + 2) / 5;
        int x = (w - cw) / 2, y = (h - ch) / 2;
        return image_crop(img, x, y, x + cw, y + ch, out);
    }
    return k == 6 ? image_lowres(img, VIEW_LOWRES_SIDE, out) : image_grey_stretch(img, out);
}

int main(void)
{
    static const int kinds[3] = {1, 6, 7};
    char err[256], line[4096];
    struct extractor *ex = NULL;
    if (extractor_open(getenv("IMGSEARCH_MODEL"), &ex, err, sizeof err) != 0) {
        fprintf(stderr, "embed_views: %s\n", err);
        return 1;
    }
    struct decode_limits lim = {65, 4095, EXTRACT_SIDE};
    static float vec[3][EXTRACT_DIM];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        size_t len = 0;
        unsigned char *buf = slurp(line, &len);
        struct image img = {0};
        memset(vec, 0, sizeof vec);
        int ok = buf && decode_image(buf, len, &lim, &img) == DECODE_OK;
        for (int i = 0; i < 3 && ok; i++) {
            struct image v;
            ok = view(&img, kinds[i], &v) == 0 && extractor_embed(ex, &v, vec[i]) == 0;
            image_free(&v);
        }
        if (!ok)
            fprintf(stderr, "embed_views: cannot embed %s\n", line);
        image_free(&img);
        free(buf);
        fwrite(vec, sizeof(float), 3 * EXTRACT_DIM, stdout);
    }
    fflush(stdout);
    extractor_close(ex);
    return 0;
}
