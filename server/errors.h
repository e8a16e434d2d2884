/* errors.h: the one table of every error the server can send. Handlers
 * return an `enum err`; only errors.c knows codes, statuses and messages. */
#ifndef IMGSEARCH_ERRORS_H
#define IMGSEARCH_ERRORS_H

#include <stddef.h>

/* Which API family a request belongs to: each answers its own code family
 * for the same condition, as the cloud does (v2: MMS/ModelArts, v1: IS). */
enum api_family { API_OTHER = 0, API_V2, API_V1, API_ADMIN };

enum err {
    E_OK = 0,
    /* Conditions whose code depends on the family (see err_resolve). */
    E_BAD_JSON,      /* body is not valid JSON / not an object */
    E_BAD_PARAM,     /* invalid field value: detail = field name */
    E_MISSING_PARAM, /* required field absent: detail = field name */
    E_NO_INSTANCE,   /* unknown service / instance name */
    E_INSTANCE_EXISTS,
    E_BAD_INSTANCE_NAME,
    E_TOKEN_MISSING,
    E_INTERNAL,
    E_STORE_FAILED, /* SQLite write failed */
    E_INDEX_FAILED, /* vector index failed */
    E_TIMEOUT,
    /* Fixed codes. */
    E_MMS_0001,
    E_MMS_0002,
    E_MMS_1002,
    E_MMS_1003,
    E_MMS_1005,
    E_MMS_ITEM_EXISTS,
    E_MMS_ITEM_NOT_FOUND,
    E_MMS_SEARCH_TYPE_DISABLED,
    E_MMS_SEARCH_TYPE_UNSUPPORTED,
    E_MA_0203,
    E_MA_4508,
    E_MA_4101,
    E_MA_4102,
    E_MA_4103,
    E_MA_4104,
    E_MA_4105,
    E_MA_4401,
    E_MA_4403,
    E_MA_4601,
    E_MA_4603,
    E_MA_4703,
    E_MA_4704,
    E_MA_4705,
    E_MA_4706,
    E_APIG_0101,
    E_APIG_0101_METHOD,
    E_APIG_0201_TOO_LARGE,
    E_APIG_0201_URI_TOO_LARGE,
    E_APIG_0201_HEADERS_TOO_LARGE,
    E_APIG_0301,
    E_APIG_0302,
    E_APIG_0308,
    E_APIG_0601,
    E_IS_0001,
    E_IS_0002,
    E_IS_0003,
    E_IS_0004,
    E_IS_0005,
    E_IS_0006,
    E_IS_0007,
    E_IS_0008,
    E_IS_0009,
    E_IS_0010,
    E_IS_0012,
    E_IS_0013,
    E_IS_0014,
    E_IS_0016,
    E_COUNT
};

struct err_info {
    const char *code;    /* "MMS.0003" */
    int http_status;     /* 400 */
    const char *message; /* exact cloud text; "%s" takes the detail */
    int gateway;         /* 1: gateway error, body also carries request_id */
};

/* Maps a family-dependent condition to the fixed error for `family`;
 * fixed errors map to themselves. */
enum err err_resolve(enum err e, enum api_family family);
const struct err_info *err_info(enum err e);

/* Writes the error message (with `detail` where the message takes one, or
 * appended as ": detail" for APIG.0301) into buf. */
void err_message(enum err e, const char *detail, char *buf, size_t len);

#endif
