/* mnv2.h: the MobileNetV2 backbone as read from the flat weight file that
 * scripts/convert-model.js writes (format in docs/extractor.md): a chain of
 * convolutions whose weights point straight into the read-only mapping. */
#ifndef IMGSEARCH_MNV2_H
#define IMGSEARCH_MNV2_H

#include <stddef.h>

#include "index/kernels.h"

#define MNV2_MAX_LAYERS 96

enum mnv2_op { MNV2_CONV = 1, MNV2_DWCONV = 2 };

struct mnv2_layer {
    enum mnv2_op op;
    int save_input; /* this layer's input is the skip of a later add */
    int add_skip;   /* add the saved input to this layer's output */
    struct kern_conv conv;
    struct kern_q8 q8;   /* int8 weights (mnv2_prepare_int8), q8.mem NULL if none */
    unsigned short *w16; /* depthwise: fp16 weights for MNV2_INT8 (mnv2_prepare_int8) or NULL */
};

struct mnv2 {
    void *map;
    size_t map_len;
    int side;             /* input side the geometry was laid out for */
    float in_mul, in_sub; /* graph preprocessing: x * in_mul - in_sub */
    int nlayers;
    struct mnv2_layer layers[MNV2_MAX_LAYERS];
    int out_ch;     /* channels of the last layer */
    size_t max_act; /* floats of the largest activation */
    size_t max_col; /* floats of the largest im2col scratch */
};

/* Maps `path` and checks it from header to chain of shapes, for a
 * side x side x 3 input. Returns 0, or -1 with a message in errbuf. */
int mnv2_load(const char *path, int side, struct mnv2 *net, char *errbuf, size_t errlen);
void mnv2_unload(struct mnv2 *net);

/* Floats of scratch mnv2_forward needs. */
size_t mnv2_scratch_floats(const struct mnv2 *net);

enum mnv2_path {
    MNV2_REF,       /* plain-C reference kernels */
    MNV2_FAST,      /* fast kernels, best GEMM for this CPU */
    MNV2_FAST_BLAS, /* fast kernels without the AVX-512 ones (OpenBLAS GEMM) */
    MNV2_INT8,      /* MNV2_FAST with the 1x1 convolutions in int8 (after mnv2_prepare_int8) */
};

/* Requantises the 1x1 convolutions' weights to int8 for MNV2_INT8 (the stem
 * and the tensors between blocks stay float; inside a fused block, on CPUs
 * with AVX512-FP16, the expand writes fp16 and the depthwise runs in fp16,
 * writing the project's codes). Returns 0; -1 if the
 * CPU lacks AVX-512 VNNI or memory runs out (nothing is kept then, and
 * MNV2_INT8 runs as MNV2_FAST). mnv2_unload frees the weights. */
int mnv2_prepare_int8(struct mnv2 *net);

/* Runs the network on a side x side x 3 HWC input in [0,1] and writes the
 * global average pool of the last layer (out_ch floats) to `gap`. `scratch`
 * holds mnv2_scratch_floats() floats. */
void mnv2_forward(const struct mnv2 *net, const float *input, enum mnv2_path path, float *scratch,
                  float *gap);

#endif
