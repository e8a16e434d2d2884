/* projection.h: the learned linear map from the extractor's descriptors to
 * compact ones (issue 9; chosen in docs/bench/compact.md): PCA with
 * whitening to out_dim dimensions, L2 re-normalised, and int8 codes with one
 * scale per output dimension, so an item's views take out_dim bytes each.
 *
 * y = L2(P (x - mean)), the rows of P the top principal axes of the training
 * vectors scaled by (lambda + shrink * mean lambda)^(-power / 2): power 0 is
 * plain PCA, power 1 full whitening. The file ends with the SHA-256 of
 * everything before it; that digest names the space codes are in. */
#ifndef IMGSEARCH_PROJECTION_H
#define IMGSEARCH_PROJECTION_H

#include <stddef.h>
#include <stdint.h>

struct projection {
    int in_dim, out_dim;
    float power, shrink;
    uint32_t n_train; /* how many vectors it was fitted on */
    float *mean;      /* in_dim */
    float *p;         /* out_dim x in_dim, row-major */
    float *scale;     /* out_dim: one int8 step per output dimension */
    float *pt;        /* p transposed (in_dim x out_dim), then out_dim zeros: for batches */
    char digest[65];  /* hex SHA-256 of the file's contents before the digest */
};

/* Fits a projection on n vectors of in_dim floats (row-major): needs
 * n > out_dim. The int8 scales are the largest |y_d| over the training
 * vectors / 127. 0 ok; -1 with a message in errbuf. */
int projection_train(const float *x, size_t n, int in_dim, int out_dim, double power, double shrink,
                     struct projection **out, char *errbuf, size_t errlen);

/* Writes atomically (temp file, fsync, rename). 0 ok; -1 with errbuf. */
int projection_save(struct projection *pr, const char *path, char *errbuf, size_t errlen);

/* The file's bytes in memory (what instances fitted their own projection
 * keep in the database); sets pr->digest. 0 ok; -1 out of memory. */
int projection_to_bytes(struct projection *pr, unsigned char **out, size_t *len);
/* Parses and checks them (magic, sizes, digest); `name` is for messages. */
int projection_from_bytes(const unsigned char *b, size_t len, const char *name,
                          struct projection **out, char *errbuf, size_t errlen);

/* Reads and checks the file (magic, sizes, digest). 0 ok; -1 with errbuf. */
int projection_load(const char *path, struct projection **out, char *errbuf, size_t errlen);

void projection_free(struct projection *pr);

/* y (out_dim floats) = L2(P (x - mean)); y is all zeros for a zero result. */
void projection_apply(const struct projection *pr, const float *x, float *y);

/* projection_apply for n rows of x (n x in_dim) into y (n x out_dim), in one
 * matrix product: what a conversion to codes runs (storage/compaction.h).
 * A row gives the same bits whether alone or with others (not necessarily
 * the bits projection_apply gives). 0 ok; -1 out of memory. */
int projection_apply_rows(const struct projection *pr, size_t n, const float *x, float *y);

/* int8 codes of a projected vector (values past the scale are clipped), and
 * back. */
void projection_encode(const struct projection *pr, const float *y, int8_t *q);
void projection_decode(const struct projection *pr, const int8_t *q, float *y);

#endif
