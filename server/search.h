/* search.h: nearest-neighbour search over one instance, shared by v2 search
 * and v1 image search: tag filter -> allowed ids, index search (k up to
 * SEARCH_MAX_K), exact-duplicate fast path by perceptual hash, scores. */
#ifndef IMGSEARCH_SEARCH_H
#define IMGSEARCH_SEARCH_H

#include <stdint.h>
#include "server/request.h"
#include "storage/instances.h"
#include "storage/items.h"

#define SEARCH_MAX_K 1000
/* Subtracted from the score of a stored extra view (k != 0), and of a
 * query's centre window or grey view (measured: docs/bench/quality.md). */
#define VIEW_PENALTY 0.02
#define QUERY_VIEW_PENALTY 0.02
/* The query's centre window: 0.7 x 0.7 of its sides. */
#define QUERY_WINDOW_TENTHS 7

struct shard_gaps;

struct hit {
    int64_t row;
    double score; /* in [0, 1] */
};

struct search_opts {
    const struct item_filter *filter; /* NULL: none */
    int nprobe;                       /* <= 0: default */
    long max_scan;                    /* <= 0: unlimited */
    int k;                            /* how many best hits, <= SEARCH_MAX_K */
    int use_phash;
    uint64_t phash;
    int grey;     /* a grey query: compared with grey views only (others never are) */
    int in_space; /* the query is a stored vector, already in the instance's
                   * space (compact.h); else an extractor vector */
    /* An instance of several shards: NULL fails a search missing a shard
     * (503); else the missing ones are recorded here ("partial": true). */
    struct shard_gaps *gaps;
};

/* Cosine similarity of L2-normalised descriptors to a score in [0, 1]:
 * non-negative CNN features make the cosine non-negative already; the map
 * only clamps rounding. Monotone; documented in docs/compatibility.md. */
double search_score(float inner_product);

/* The query is projected into the instance's space first (compact.h)
 * unless o->in_space. */
enum err search_vector(struct request *req, const struct instance *inst, const float *query,
                       const struct search_opts *o, struct hit **hits, size_t *n);

struct image;

/* Searches with the query vector; while the best score stays low, also
 * with the image's centre window and grey view (per [search] query_views,
 * instances with views) and then rotated 90/180/270 degrees (per [search]
 * rotations). A row's score is its best over the views, less each view's
 * penalty. *rotated says whether the rotated views were used. */
enum err search_image(struct request *req, const struct instance *inst, const struct image *img,
                      const float *upright, const struct search_opts *o, struct hit **hits,
                      size_t *n, int *rotated);

#endif
