/* train_projection.c: fits a compact-descriptor projection (index/projection.c)
 * on raw float32 vectors and writes it, the way scripts/train-projection does
 * at `make model` time.
 *
 * usage: train_projection IN.f32 IN_DIM OUT_DIM POWER SHRINK OUT.bin
 *   IN.f32: n x IN_DIM float32, row-major, no header.
 * Prints "projection: n=N in=D out=K digest=HEX". */
#include <stdio.h>
#include <stdlib.h>
#include "index/projection.h"

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: %s IN.f32 IN_DIM OUT_DIM POWER SHRINK OUT.bin\n", argv[0]);
        return 2;
    }
    int in_dim = atoi(argv[2]), out_dim = atoi(argv[3]);
    double power = atof(argv[4]), shrink = atof(argv[5]);
    FILE *f = fopen(argv[1], "rb");
    if (!f || in_dim <= 0) {
        perror(argv[1]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    size_t row = (size_t)in_dim * sizeof(float), n = bytes > 0 ? (size_t)bytes / row : 0;
    float *x = malloc(n * row + 1);
    if (!x || n * row != (size_t)bytes || fread(x, row, n, f) != n) {
        fprintf(stderr, "%s: not n x %d float32\n", argv[1], in_dim);
        return 1;
    }
    fclose(f);
    struct projection *pr = NULL;
    char err[512];
    if (projection_train(x, n, in_dim, out_dim, power, shrink, &pr, err, sizeof err) != 0 ||
        projection_save(pr, argv[6], err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    printf("projection: n=%zu in=%d out=%d digest=%s\n", n, in_dim, out_dim, pr->digest);
    projection_free(pr);
    free(x);
    return 0;
}
