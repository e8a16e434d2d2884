/* extract.h: turns an image into a global descriptor (MobileNetV2 alpha=1.4,
 * ImageNet backbone, GAP of Conv_1, L2-normalised) and a 64-bit DCT hash. */
#ifndef IMGSEARCH_EXTRACT_H
#define IMGSEARCH_EXTRACT_H

#include <stdint.h>
#include "index/image.h"

#define EXTRACT_DIM 1792
#define EXTRACT_SIDE 224

struct extractor;

/* Maps the flat weight file written by scripts/convert-model.js.
 * Returns 0, or -1 with a message in errbuf. */
int extractor_open(const char *model_path, struct extractor **out, char *errbuf, size_t errlen);
void extractor_close(struct extractor *ex);

/* Thread-safe: each call uses its own scratch. `out` gets EXTRACT_DIM floats
 * with unit L2 norm. Returns 0, or -1 on allocation failure. */
int extractor_embed(const struct extractor *ex, const struct image *img, float *out);

/* Same, on an already-resized 224x224 RGB float input in [0,1] (HWC); used by
 * the golden tests to compare against the reference model. */
int extractor_embed_input(const struct extractor *ex, const float *input224, float *out);

/* 64-bit perceptual hash (DCT of a 32x32 grey thumbnail). */
uint64_t image_phash(const struct image *img);

/* Offline studies only (scripts/embed_dump.c --map): the last layer's
 * activations (post-ReLU6 Conv_1, HWC) of `img` squashed to side x side,
 * g x g x EXTRACT_DIM floats with g = ceil(side / 32); for side ==
 * EXTRACT_SIDE their mean over the g x g cells, L2-normalised, is
 * extractor_embed's descriptor. Another side loads the model again (from
 * IMGSEARCH_MODEL or the default path) and keeps it: not thread-safe then.
 * Writes g to *grid. Returns 0, or -1. */
int extractor_feature_map(const struct extractor *ex, const struct image *img, int side, float *map,
                          int *grid);

#endif
