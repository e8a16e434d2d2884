/* extract.h: turns an image into a global descriptor (MobileNetV2 alpha=1.4,
 * ImageNet backbone, GAP of Conv_1, L2-normalised) and a 64-bit DCT hash. */
#ifndef IMGSEARCH_EXTRACT_H
#define IMGSEARCH_EXTRACT_H

#include <stdint.h>
#include "index/image.h"

#define EXTRACT_DIM 1792
#define EXTRACT_SIDE 224
/* Other input sides the network can run at (it is fully convolutional):
 * from EXTRACT_MIN_SIDE to EXTRACT_MAX_SIDE, at most EXTRACT_MAX_SIDES of
 * them per extractor besides EXTRACT_SIDE. */
#define EXTRACT_MIN_SIDE 32
#define EXTRACT_MAX_SIDE 1024
#define EXTRACT_MAX_SIDES 8

struct extractor;

/* Maps the flat weight file written by scripts/convert-model.js.
 * Returns 0, or -1 with a message in errbuf. */
int extractor_open(const char *model_path, struct extractor **out, char *errbuf, size_t errlen);
void extractor_close(struct extractor *ex);

/* Which kernels run the network. */
enum extract_path {
    EXTRACT_PATH_DEFAULT, /* float fast path, unless IMGSEARCH_EXTRACT_REF / _BLAS / _INT8 say */
    EXTRACT_PATH_FLOAT,   /* float fast path (AVX-512 kernels, OpenBLAS on other CPUs) */
    EXTRACT_PATH_INT8,    /* 1x1 convolutions in int8 (AVX-512 VNNI); float elsewhere; falls
                             back to EXTRACT_PATH_FLOAT on CPUs without VNNI */
    EXTRACT_PATH_BLAS,    /* float, OpenBLAS GEMM, no hand-written AVX-512 kernels */
    EXTRACT_PATH_REF,     /* plain-C reference kernels */
};

/* extractor_open with an explicit path (extractor_open is the DEFAULT one). */
int extractor_open_path(const char *model_path, enum extract_path path, struct extractor **out,
                        char *errbuf, size_t errlen);
/* The path the extractor actually runs (never DEFAULT; FLOAT where INT8 was
 * asked for on a CPU without VNNI). */
enum extract_path extractor_path(const struct extractor *ex);

/* Thread-safe: each call uses its own scratch. `out` gets EXTRACT_DIM floats
 * with unit L2 norm. Returns 0, or -1 on allocation failure. */
int extractor_embed(const struct extractor *ex, const struct image *img, float *out);

/* extractor_embed with the image squashed to side x side instead of
 * EXTRACT_SIDE (the same resampling), the network laid out for that side:
 * a descriptor of the same kind and dimension, costing about
 * (side / EXTRACT_SIDE)^2 of a 224 pass. The net of a new side is loaded
 * (mapped, and its int8 weights packed when the extractor runs int8) on
 * first use, under a lock; thread-safe like extractor_embed. Returns 0, or
 * -1 (bad side, too many sides, allocation failure). */
int extractor_embed_side(const struct extractor *ex, const struct image *img, int side, float *out);

/* Same, on an already-resized 224x224 RGB float input in [0,1] (HWC); used by
 * the golden tests to compare against the reference model. */
int extractor_embed_input(const struct extractor *ex, const float *input224, float *out);

/* 64-bit perceptual hash (DCT of a 32x32 grey thumbnail). */
uint64_t image_phash(const struct image *img);

/* Offline studies only (scripts/embed_dump.c --map): the last layer's
 * activations (post-ReLU6 Conv_1, HWC) of `img` squashed to side x side,
 * g x g x EXTRACT_DIM floats with g = ceil(side / 32); for side ==
 * EXTRACT_SIDE their mean over the g x g cells, L2-normalised, is
 * extractor_embed's descriptor (extractor_embed_side's for another side,
 * whose net is loaded as there). Thread-safe. Writes g to *grid. Returns 0,
 * or -1. */
int extractor_feature_map(const struct extractor *ex, const struct image *img, int side, float *map,
                          int *grid);

#endif
