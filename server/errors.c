/* errors.c: the error table (code, HTTP status, message). Codes and texts are
 * the cloud's, from the API spec §3; where the spec leaves a condition open
 * (item exists, item not found, search type disabled) we chose a code and
 * wrote the choice down in docs/compatibility.md. */
#include <stdio.h>
#include <string.h>
#include "server/errors.h"

static const struct err_info table[E_COUNT] = {
    [E_OK] = {"", 200, "", 0},
    [E_MMS_0001] = {"MMS.0001", 403, "Request is unauthorized.", 0},
    [E_MMS_0002] = {"MMS.0002", 403, "Request cannot be accessed by the current authorization.", 0},
    [E_MMS_1002] = {"MMS.1002", 400, "Instances number out of limit.", 0},
    [E_MMS_1003] = {"MMS.1003", 400, "Description of instance is too long.", 0},
    [E_MMS_1005] = {"MMS.1005", 400, "No such service type.", 0},
    /* Undocumented in the cloud: we use free MMS.10xx numbers. */
    [E_MMS_ITEM_EXISTS] = {"MMS.1013", 400, "Item already exists: %s", 0},
    [E_MMS_ITEM_NOT_FOUND] = {"MMS.1014", 400, "Item not found: %s", 0},
    [E_MMS_SEARCH_TYPE_DISABLED] = {"MMS.1017", 400,
                                    "Search type is not enabled on this instance: %s", 0},
    [E_MMS_SEARCH_TYPE_UNSUPPORTED] = {"MMS.1018", 400,
                                       "Search type is not supported by this server: %s", 0},
    [E_MA_0203] = {"ModelArts.0203", 401, "Invalid token.", 0},
    [E_MA_4508] = {"ModelArts.4508", 503, "Service not start.", 0},
    [E_MA_4101] = {"ModelArts.4101", 401, "Token header cannot be empty.", 0},
    [E_MA_4102] = {"ModelArts.4102", 401, "Parse Token error.", 0},
    [E_MA_4103] = {"ModelArts.4103", 401, "Invalid Token header.", 0},
    [E_MA_4104] = {"ModelArts.4104", 400, "Invalid Request Content Length.", 0},
    [E_MA_4105] = {"ModelArts.4105", 400, "The JSON format of the input data is incorrect.", 0},
    [E_MA_4401] = {"ModelArts.4401", 429, "Max concurrency error.", 0},
    /* A shard of the instance did not answer (docs/cluster.md). */
    [E_MA_4403] = {"ModelArts.4403", 503, "Backend service unavailable error.", 0},
    [E_MA_4601] = {"ModelArts.4601", 400, "The URL is not allowed.", 0},
    [E_MA_4603] = {"ModelArts.4603", 400, "Obtaining the file from the URL failed.", 0},
    [E_MA_4703] = {"ModelArts.4703", 400, "The Obs URL is invalid.", 0},
    [E_MA_4704] = {"ModelArts.4704", 400, "Obtaining the file from the OBS failed.", 0},
    [E_MA_4705] = {"ModelArts.4705", 400, "The file stored on the OBS is oversized.", 0},
    [E_MA_4706] = {"ModelArts.4706", 400, "The Obs file is not exist.", 0},
    [E_APIG_0101] = {"APIG.0101", 404,
                     "The API does not exist or has not been published in the environment.", 1},
    [E_APIG_0101_METHOD] = {"APIG.0101", 404, "The API does not exist.", 1},
    [E_APIG_0201_TOO_LARGE] = {"APIG.0201", 413, "Request entity too large.", 1},
    [E_APIG_0201_URI_TOO_LARGE] = {"APIG.0201", 414, "Request URI too large.", 1},
    [E_APIG_0201_HEADERS_TOO_LARGE] = {"APIG.0201", 494, "Request headers too large.", 1},
    [E_APIG_0301] = {"APIG.0301", 401, "Incorrect IAM authentication information.", 1},
    [E_APIG_0302] = {"APIG.0302", 403, "The IAM user is not authorized to access the API.", 1},
    [E_APIG_0308] = {"APIG.0308", 429, "The throttling threshold has been reached.", 1},
    [E_APIG_0601] = {"APIG.0601", 500, "Internal server error.", 1},
    [E_IS_0001] = {"IS.0001", 400, "The request parameter is missing or empty.", 0},
    [E_IS_0002] = {"IS.0002", 400, "The type of the request parameter is not supported.", 0},
    [E_IS_0003] = {"IS.0003", 400, "The request parameter cannot be empty.", 0},
    [E_IS_0004] = {"IS.0004", 401, "The authentication token is abnormal.", 0},
    [E_IS_0005] = {"IS.0005", 400, "The header is missing or empty.", 0},
    [E_IS_0006] = {"IS.0006", 400, "The request body is too big.", 0},
    [E_IS_0007] = {"IS.0007", 400, "Invalid instance name.", 0},
    [E_IS_0008] = {"IS.0008", 400, "The JSON format of the input data is incorrect.", 0},
    [E_IS_0009] = {"IS.0009", 500, "The request failed due to an internal error.", 0},
    [E_IS_0010] = {"IS.0010", 400, "The request method is not allowed.", 0},
    [E_IS_0012] = {"IS.0012", 400, "Operation timed out.", 0},
    [E_IS_0013] = {"IS.0013", 401, "The token is empty.", 0},
    [E_IS_0014] = {"IS.0014", 400, "Instance status is abnormal.", 0},
    [E_IS_0016] = {"IS.0016", 400, "The path is invalid.", 0},
};

/* Family-dependent conditions: { v2/admin error, v1 error }. Messages of the
 * v2 entries that take a detail are built in err_message. */
static const struct {
    enum err cond;
    struct err_info v2;
    enum err v1;
} by_family[] = {
    {E_BAD_JSON, {0}, E_IS_0008},
    {E_BAD_PARAM, {"MMS.0003", 400, "Invalid parameter: %s", 0}, E_IS_0002},
    {E_MISSING_PARAM, {"MMS.0003", 400, "Invalid parameter: %s", 0}, E_IS_0001},
    {E_NO_INSTANCE, {"MMS.1001", 400, "Service instance not found.", 0}, E_IS_0007},
    {E_INSTANCE_EXISTS, {"MMS.1004", 400, "Instance name is already exists.", 0}, E_IS_0007},
    {E_BAD_INSTANCE_NAME, {"MMS.0003", 400, "Invalid parameter: %s", 0}, E_IS_0007},
    {E_TOKEN_MISSING, {0}, E_IS_0013},
    {E_INTERNAL, {0}, E_IS_0009},
    {E_STORE_FAILED, {"MMS.1015", 500, "Process BIZ failed.", 0}, E_IS_0009},
    {E_INDEX_FAILED, {"MMS.1016", 500, "Process INDEX failed.", 0}, E_IS_0009},
    {E_TIMEOUT, {0}, E_IS_0012},
};

/* v2 equivalents that are themselves fixed table entries. */
static enum err v2_fixed(enum err cond)
{
    switch (cond) {
    case E_BAD_JSON:
        return E_MA_4105;
    case E_TOKEN_MISSING:
        return E_MA_4101;
    case E_INTERNAL:
        return E_APIG_0601;
    case E_TIMEOUT:
        return E_APIG_0601;
    default:
        return E_OK;
    }
}

enum err err_resolve(enum err e, enum api_family family)
{
    for (size_t i = 0; i < sizeof by_family / sizeof by_family[0]; i++) {
        if (by_family[i].cond != e)
            continue;
        if (family == API_V1)
            return by_family[i].v1;
        return v2_fixed(e) != E_OK ? v2_fixed(e) : e;
    }
    return e;
}

const struct err_info *err_info(enum err e)
{
    for (size_t i = 0; i < sizeof by_family / sizeof by_family[0]; i++)
        if (by_family[i].cond == e && by_family[i].v2.code)
            return &by_family[i].v2;
    if (e < 0 || e >= E_COUNT || !table[e].code)
        return &table[E_APIG_0601];
    return &table[e];
}

void err_message(enum err e, const char *detail, char *buf, size_t len)
{
    const struct err_info *info = err_info(e);
    if (strstr(info->message, "%s")) {
        /* "Invalid parameter: %s" without a field reads "Invalid parameter." */
        if (detail && *detail) {
            snprintf(buf, len, info->message, detail);
        } else {
            const char *cut = strstr(info->message, ": %s");
            int n = cut ? (int)(cut - info->message) : (int)strlen(info->message);
            snprintf(buf, len, "%.*s.", n, info->message);
        }
    } else if (e == E_APIG_0301 && detail && *detail) {
        /* "...information: <detail>", the gateway's form with a detail. */
        snprintf(buf, len, "%.*s: %s", (int)strlen(info->message) - 1, info->message, detail);
    } else {
        snprintf(buf, len, "%s", info->message);
    }
}
