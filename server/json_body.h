/* json_body.h: json_parse_object's fast path for long string values
 * (json_util.h has the public entry). */
#ifndef IMGSEARCH_JSON_BODY_H
#define IMGSEARCH_JSON_BODY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* String values of at least this many bytes skip jansson's lexer. */
#define JSON_CUT_MIN 4096

/* json_parse_object with string values of >= min_cut plain bytes cut out
 * before the parse and put back after; *restored is how many were (0 when
 * the plain parse answered). Same result as json_parse_object always:
 * exposed for the tests and the fuzzer, which cut at any size. */
json_t *json_parse_object_cut(const uint8_t *body, size_t len, size_t min_cut, size_t *restored);

#endif
