/* params.h: validation of the request objects the v2 endpoints share
 * (tag maps, tag filters, keywords, cursors), with the cloud's limits
 * (API spec §4, §6). Each returns E_OK or E_BAD_PARAM naming the field. */
#ifndef IMGSEARCH_PARAMS_H
#define IMGSEARCH_PARAMS_H

#include <jansson.h>
#include "server/request.h"
#include "storage/instances.h"
#include "storage/items.h"

/* custom_tags {key: "value"} (value 1..64) and custom_num_tags {key: number};
 * keys must be configured on the instance. Borrowed into *tags and *num. */
enum err params_item_tags(struct request *req, const struct instance *inst, json_t *body,
                          json_t **tags, json_t **num);

/* Filters {key: ["v", ...]} (1..32 values of 1..64) and {key: {from, to}}. */
enum err params_filter(struct request *req, const struct instance *inst, json_t *body,
                       struct item_filter *f);

/* keywords: array of min_n..max_n strings of 1..64. */
enum err params_keywords(struct request *req, json_t *body, size_t min_n, size_t max_n,
                         int required, json_t **out);

/* last_item {score, id}; *present says whether it was given. */
enum err params_cursor(struct request *req, json_t *body, int *present, double *score,
                       const char **id);

/* search_type: "IMAGE" | "KEYWORD" | "TEXT" | "CATEGORY" or 0..3 (as a
 * string or number). */
enum err params_search_type(struct request *req, json_t *body, unsigned *type);

/* Parses a box "x1,y1,x2,y2" (no spaces). 0 on success. */
int parse_box(const char *s, int *x1, int *y1, int *x2, int *y2);

#endif
