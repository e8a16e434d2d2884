/* json_util.h: typed, range-checked access to request fields. Each getter
 * returns E_OK, E_MISSING_PARAM (required and absent) or E_BAD_PARAM (wrong
 * type or range) and names the field in req->detail. An absent optional
 * field leaves *out untouched, so callers preset defaults. JSON null counts
 * as absent, as the SDKs omit unset fields but hand-written clients send null. */
#ifndef IMGSEARCH_JSON_UTIL_H
#define IMGSEARCH_JSON_UTIL_H

#include <jansson.h>
#include <stdint.h>
#include "server/request.h"

enum { JOPT = 0, JREQ = 1 };

enum err jget_string(struct request *req, json_t *obj, const char *key, int required,
                     size_t min_len, size_t max_len, const char **out);
/* Integers: JSON integers, or reals with an integral value (the SDKs send 1.0). */
enum err jget_int(struct request *req, json_t *obj, const char *key, int required, long long min,
                  long long max, long long *out);
enum err jget_number(struct request *req, json_t *obj, const char *key, int required, double min,
                     double max, double *out);
enum err jget_bool(struct request *req, json_t *obj, const char *key, int required, int *out);
/* Object / array: *out is borrowed from obj. */
enum err jget_object(struct request *req, json_t *obj, const char *key, int required, json_t **out);
enum err jget_array(struct request *req, json_t *obj, const char *key, int required, size_t min_n,
                    size_t max_n, json_t **out);

/* Length in characters (UTF-8 code points), as the cloud counts. */
size_t utf8_len(const char *s);

/* Parses a body into an object; NULL when it is not a JSON object. */
json_t *json_parse_object(const uint8_t *body, size_t len);

#endif
