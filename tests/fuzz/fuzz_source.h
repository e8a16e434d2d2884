/* fuzz_source.h: the object-store source the fuzz targets read through: one
 * local bucket "b1" rooted at a scratch directory. Header-only: each target
 * is one .c file (scripts/fuzz.sh builds tests/fuzz/fuzz_*.c). */
#ifndef IMGSEARCH_FUZZ_SOURCE_H
#define IMGSEARCH_FUZZ_SOURCE_H

#include <stdlib.h>
#include <string.h>
#include "config/config.h"
#include "storage/source.h"

/* Aborts on failure: a fuzz target without its source tests nothing. */
static inline void fuzz_local_source(const char *root, struct source **out)
{
    struct config cfg;
    char err[256];
    config_defaults(&cfg);
    cfg.buckets = calloc(1, sizeof *cfg.buckets);
    if (!cfg.buckets)
        abort();
    cfg.n_buckets = 1;
    cfg.buckets[0].name = strdup("b1");
    cfg.buckets[0].root = strdup(root);
    if (source_global_init() || source_create(&cfg, out, err, sizeof err))
        abort();
    config_free(&cfg);
}

#endif
