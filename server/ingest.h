/* ingest.h: the image path shared by every image-taking call and by import
 * jobs: bytes (base64 / URL / object store) -> decoded image (limits, box)
 * -> vector + hash + thumbnail -> item row and index entry. */
#ifndef IMGSEARCH_INGEST_H
#define IMGSEARCH_INGEST_H

#include <stdint.h>
#include "index/extract.h"
#include "index/image.h"
#include "server/request.h"
#include "storage/instances.h"
#include "storage/items.h"
#include "storage/vectors.h"

#define V2_MAX_IMAGE_BYTES (5u * 1024 * 1024)
#define V1_MAX_IMAGE_BYTES (5u * 1024 * 1024)
#define THUMB_SIDE 160

struct image_input {
    const char *base64; /* wins when both are given */
    const char *url;    /* http(s) URL or object-store path */
    const char *base64_field, *url_field;
    struct decode_limits limits;
    size_t max_bytes;
    int has_box; /* region in original coordinates */
    int x1, y1, x2, y2;
    int min_box_side; /* v2: 15 */
    const char *box_field;
};

/* Fetches and decodes; applies the box. On success *img owns its pixels. */
enum err image_load(struct request *req, const struct image_input *in, struct image *img);

/* Vector (EXTRACT_DIM floats) and perceptual hash; waits for a free core. */
enum err image_embed(struct request *req, const struct image *img, float *vec, uint64_t *phash);

/* The kinds k (storage/vectors.h) of the vectors an item of `inst` has,
 * k = 0 first then ascending; returns how many. */
int instance_view_kinds(const struct instance *inst, int ks[VEC_KINDS]);

/* View k (1..7, storage/vectors.h) of a decoded image, as stored for an
 * item: a window, the low-resolution copy or the grey copy. 0 ok. */
int item_view(const struct image *img, int k, struct image *out);

/* Stores the item and indexes its vector, durably, under the instance's
 * write lock. rec->vector etc. filled by the caller; the thumbnail is made
 * here. E_MMS_ITEM_EXISTS when it exists and !force. */
enum err item_store(struct request *req, const struct instance *inst, struct item_rec *rec,
                    const struct image *img, int force);

/* Removes an item from SQLite and the index. */
enum err item_remove(struct request *req, const struct instance *inst, const char *item_id,
                     int *found);

/* The answer to a metadata write: {"result":"success"}, `not_found` naming
 * the item, or a store failure. */
enum err item_write_result(struct request *req, enum db_status s, enum err not_found,
                           const char *item_id);

#endif
