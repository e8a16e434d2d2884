/* json_util.c: field getters with the cloud's validation rules. */
#include <math.h>
#include <string.h>
#include "server/json_util.h"

/* A counting loop over a known length, so that it vectorises: base64
 * images are hundreds of KB of it. */
__attribute__((optimize("O3"))) size_t utf8_len(const char *s)
{
    size_t len = strlen(s), n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

/* Fetches the member, treating null as absent. */
static json_t *member(json_t *obj, const char *key)
{
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    return json_is_null(v) ? NULL : v;
}

static enum err absent(struct request *req, const char *key, int required)
{
    return required ? req_fail(req, E_MISSING_PARAM, key) : E_OK;
}

enum err jget_string(struct request *req, json_t *obj, const char *key, int required,
                     size_t min_len, size_t max_len, const char **out)
{
    json_t *v = member(obj, key);
    if (!v)
        return absent(req, key, required);
    if (!json_is_string(v))
        return req_fail(req, E_BAD_PARAM, key);
    const char *s = json_string_value(v);
    size_t n = utf8_len(s);
    /* v1 distinguishes "missing or empty" (IS.0001) from a bad value. */
    if (required && n == 0 && min_len > 0)
        return req_fail(req, E_MISSING_PARAM, key);
    /* Embedded NULs would silently truncate ids and paths. */
    if (strlen(s) != json_string_length(v) || n < min_len || n > max_len)
        return req_fail(req, E_BAD_PARAM, key);
    *out = s;
    return E_OK;
}

enum err jget_int(struct request *req, json_t *obj, const char *key, int required, long long min,
                  long long max, long long *out)
{
    json_t *v = member(obj, key);
    if (!v)
        return absent(req, key, required);
    long long x;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        /* (double)LLONG_MAX rounds up to 2^63: refuse that before converting. */
        if (d != floor(d) || d < (double)min || d > (double)max || d >= 9223372036854775808.0 ||
            d < -9223372036854775808.0)
            return req_fail(req, E_BAD_PARAM, key);
        x = (long long)d;
    } else {
        return req_fail(req, E_BAD_PARAM, key);
    }
    if (x < min || x > max)
        return req_fail(req, E_BAD_PARAM, key);
    *out = x;
    return E_OK;
}

enum err jget_number(struct request *req, json_t *obj, const char *key, int required, double min,
                     double max, double *out)
{
    json_t *v = member(obj, key);
    if (!v)
        return absent(req, key, required);
    if (!json_is_number(v))
        return req_fail(req, E_BAD_PARAM, key);
    double d = json_number_value(v);
    if (!isfinite(d) || d < min || d > max)
        return req_fail(req, E_BAD_PARAM, key);
    *out = d;
    return E_OK;
}

enum err jget_bool(struct request *req, json_t *obj, const char *key, int required, int *out)
{
    json_t *v = member(obj, key);
    if (!v)
        return absent(req, key, required);
    if (!json_is_boolean(v))
        return req_fail(req, E_BAD_PARAM, key);
    *out = json_is_true(v);
    return E_OK;
}

enum err jget_object(struct request *req, json_t *obj, const char *key, int required, json_t **out)
{
    json_t *v = member(obj, key);
    if (!v)
        return absent(req, key, required);
    if (!json_is_object(v))
        return req_fail(req, E_BAD_PARAM, key);
    *out = v;
    return E_OK;
}

enum err jget_array(struct request *req, json_t *obj, const char *key, int required, size_t min_n,
                    size_t max_n, json_t **out)
{
    json_t *v = member(obj, key);
    if (!v)
        return absent(req, key, required);
    if (!json_is_array(v) || json_array_size(v) < min_n || json_array_size(v) > max_n)
        return req_fail(req, E_BAD_PARAM, key);
    *out = v;
    return E_OK;
}
