/* test_errors.c: server/errors.c. Every enum err value resolves, in every
 * family, to a non-empty code, a status in 200..599 and a message; the
 * family-dependent conditions answer MMS/ModelArts on v2 and admin and IS on
 * v1; err_message fills in or drops the detail; and codes, texts and
 * statuses match api-spec §3 (literals copied from the spec). */
#include <string.h>
#include "server/errors.h"
#include "tests/unit.h"

static const enum api_family families[] = {API_OTHER, API_V2, API_V1, API_ADMIN};

static void test_every_value_has_an_entry(void)
{
    for (int e = 1; e < E_COUNT; e++) {
        const struct err_info *raw = err_info((enum err)e);
        CHECK(raw != NULL);
        for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
            enum err r = err_resolve((enum err)e, families[f]);
            CHECK(r > E_OK && r < E_COUNT);
            const struct err_info *i = err_info(r);
            CHECK(i != NULL);
            if (!i)
                continue;
            int ok = i->code && i->code[0] && i->http_status >= 200 && i->http_status <= 599 &&
                     i->message && i->message[0];
            if (!ok)
                fprintf(stderr, "  enum %d family %d: bad entry\n", e, (int)families[f]);
            CHECK(ok);
            /* Errors are errors. */
            CHECK(i->http_status >= 400);
            char buf[512];
            err_message(r, "field", buf, sizeof buf);
            CHECK(buf[0] != 0);
            CHECK(strstr(buf, "%s") == NULL);
        }
    }
}

/* Fixed codes map to themselves and have their own table row (no silent
 * fall-back to APIG.0601 because a row was forgotten). */
static void test_fixed_codes_have_rows(void)
{
    for (int e = E_MMS_0001; e < E_COUNT; e++) {
        for (size_t f = 0; f < sizeof families / sizeof families[0]; f++)
            CHECK_INT(err_resolve((enum err)e, families[f]), e);
        const struct err_info *i = err_info((enum err)e);
        if (e != E_APIG_0601 && !strcmp(i->code, "APIG.0601"))
            fprintf(stderr, "  enum %d has no row of its own\n", e);
        CHECK(e == E_APIG_0601 || strcmp(i->code, "APIG.0601") != 0);
        /* Code prefixes name the family. */
        CHECK(!strncmp(i->code, "MMS.", 4) || !strncmp(i->code, "ModelArts.", 10) ||
              !strncmp(i->code, "APIG.", 5) || !strncmp(i->code, "IS.", 3));
    }
}

/* On v1 every family-dependent condition answers an IS code; elsewhere it
 * never does. */
static void test_family_separation(void)
{
    for (int e = 1; e < E_MMS_0001; e++) {
        const struct err_info *v1 = err_info(err_resolve((enum err)e, API_V1));
        CHECK(!strncmp(v1->code, "IS.", 3));
        static const enum api_family cloud[] = {API_V2, API_ADMIN, API_OTHER};
        for (size_t f = 0; f < 3; f++) {
            const struct err_info *i = err_info(err_resolve((enum err)e, cloud[f]));
            CHECK(strncmp(i->code, "IS.", 3) != 0);
        }
    }
}

static void expect(enum err e, enum api_family fam, const char *code, int status,
                   const char *detail, const char *msg)
{
    enum err r = err_resolve(e, fam);
    const struct err_info *i = err_info(r);
    CHECK_STR(i->code, code);
    CHECK_INT(i->http_status, status);
    char buf[512];
    err_message(r, detail, buf, sizeof buf);
    CHECK_STR(buf, msg);
}

static void test_resolve_per_family(void)
{
    const char *bad_json = "The JSON format of the input data is incorrect.";
    expect(E_BAD_JSON, API_V2, "ModelArts.4105", 400, NULL, bad_json);
    expect(E_BAD_JSON, API_ADMIN, "ModelArts.4105", 400, NULL, bad_json);
    expect(E_BAD_JSON, API_V1, "IS.0008", 400, NULL, bad_json);

    expect(E_BAD_PARAM, API_V2, "MMS.0003", 400, "item_id", "Invalid parameter: item_id");
    expect(E_BAD_PARAM, API_ADMIN, "MMS.0003", 400, "custom_tags",
           "Invalid parameter: custom_tags");
    expect(E_BAD_PARAM, API_V1, "IS.0002", 400, "item_id",
           "The type of the request parameter is not supported.");

    expect(E_MISSING_PARAM, API_V2, "MMS.0003", 400, "item_id", "Invalid parameter: item_id");
    expect(E_MISSING_PARAM, API_V1, "IS.0001", 400, "item_id",
           "The request parameter is missing or empty.");

    expect(E_NO_INSTANCE, API_V2, "MMS.1001", 400, "svc", "Service instance not found.");
    expect(E_NO_INSTANCE, API_ADMIN, "MMS.1001", 400, NULL, "Service instance not found.");
    expect(E_NO_INSTANCE, API_V1, "IS.0007", 400, "svc", "Invalid instance name.");

    expect(E_INSTANCE_EXISTS, API_V2, "MMS.1004", 400, NULL, "Instance name is already exists.");
    expect(E_INSTANCE_EXISTS, API_V1, "IS.0007", 400, NULL, "Invalid instance name.");

    expect(E_TOKEN_MISSING, API_V2, "ModelArts.4101", 401, NULL, "Token header cannot be empty.");
    expect(E_TOKEN_MISSING, API_ADMIN, "ModelArts.4101", 401, NULL,
           "Token header cannot be empty.");
    expect(E_TOKEN_MISSING, API_V1, "IS.0013", 401, NULL, "The token is empty.");

    expect(E_STORE_FAILED, API_V2, "MMS.1015", 500, NULL, "Process BIZ failed.");
    expect(E_INDEX_FAILED, API_V2, "MMS.1016", 500, NULL, "Process INDEX failed.");
    expect(E_STORE_FAILED, API_V1, "IS.0009", 500, NULL,
           "The request failed due to an internal error.");
    expect(E_INTERNAL, API_V2, "APIG.0601", 500, NULL, "Internal server error.");
    expect(E_INTERNAL, API_V1, "IS.0009", 500, NULL,
           "The request failed due to an internal error.");
    expect(E_TIMEOUT, API_V1, "IS.0012", 400, NULL, "Operation timed out.");
    /* API_OTHER (health, console) answers like v2. */
    expect(E_BAD_JSON, API_OTHER, "ModelArts.4105", 400, NULL, bad_json);
}

static void test_message_formats(void)
{
    char buf[256];
    enum err bp = err_resolve(E_BAD_PARAM, API_V2);
    err_message(bp, "item_id", buf, sizeof buf);
    CHECK_STR(buf, "Invalid parameter: item_id");
    /* Without a field: the spec's plain "Invalid parameter." */
    err_message(bp, NULL, buf, sizeof buf);
    CHECK_STR(buf, "Invalid parameter.");
    err_message(bp, "", buf, sizeof buf);
    CHECK_STR(buf, "Invalid parameter.");
    /* A detail is data, never a format. */
    err_message(bp, "%s%n%s", buf, sizeof buf);
    CHECK_STR(buf, "Invalid parameter: %s%n%s");

    err_message(E_MMS_ITEM_EXISTS, "id-1", buf, sizeof buf);
    CHECK_STR(buf, "Item already exists: id-1");
    err_message(E_MMS_ITEM_NOT_FOUND, NULL, buf, sizeof buf);
    CHECK_STR(buf, "Item not found.");

    /* APIG.0301 takes its detail after a colon (spec §2.3). */
    err_message(E_APIG_0301, "verify aksk signature fail", buf, sizeof buf);
    CHECK_STR(buf, "Incorrect IAM authentication information: verify aksk signature fail");
    err_message(E_APIG_0301, "token expires", buf, sizeof buf);
    CHECK_STR(buf, "Incorrect IAM authentication information: token expires");

    /* Messages without a slot ignore the detail. */
    err_message(E_MA_4105, "ignored", buf, sizeof buf);
    CHECK_STR(buf, "The JSON format of the input data is incorrect.");
    err_message(E_IS_0007, "ignored", buf, sizeof buf);
    CHECK_STR(buf, "Invalid instance name.");

    /* Truncation is safe and terminated. */
    char small[8];
    memset(small, 'x', sizeof small);
    err_message(bp, "a_very_long_field_name", small, sizeof small);
    CHECK_INT(strlen(small), sizeof small - 1);
    CHECK(!strncmp(small, "Invalid", 7));
    memset(small, 'x', sizeof small);
    err_message(bp, NULL, small, sizeof small);
    CHECK_INT(strlen(small), sizeof small - 1);
}

/* Literal code/message pairs from api-spec §3.2-§3.5. */
static void test_spec_texts(void)
{
    static const struct {
        enum err e;
        const char *code, *msg;
        int status; /* 0: the spec gives none */
    } spec[] = {
        /* §3.2 MMS */
        {E_MMS_0001, "MMS.0001", "Request is unauthorized.", 0},
        {E_MMS_0002, "MMS.0002", "Request cannot be accessed by the current authorization.", 0},
        {E_MMS_1002, "MMS.1002", "Instances number out of limit.", 0},
        {E_MMS_1003, "MMS.1003", "Description of instance is too long.", 0},
        {E_MMS_1005, "MMS.1005", "No such service type.", 0},
        /* §3.3 ModelArts */
        {E_MA_0203, "ModelArts.0203", "Invalid token.", 0},
        {E_MA_4101, "ModelArts.4101", "Token header cannot be empty.", 0},
        {E_MA_4102, "ModelArts.4102", "Parse Token error.", 0},
        {E_MA_4103, "ModelArts.4103", "Invalid Token header.", 0},
        {E_MA_4104, "ModelArts.4104", "Invalid Request Content Length.", 0},
        {E_MA_4105, "ModelArts.4105", "The JSON format of the input data is incorrect.", 0},
        {E_MA_4401, "ModelArts.4401", "Max concurrency error.", 0},
        {E_MA_4601, "ModelArts.4601", "The URL is not allowed.", 0},
        {E_MA_4603, "ModelArts.4603", "Obtaining the file from the URL failed.", 0},
        {E_MA_4703, "ModelArts.4703", "The Obs URL is invalid.", 0},
        {E_MA_4704, "ModelArts.4704", "Obtaining the file from the OBS failed.", 0},
        {E_MA_4705, "ModelArts.4705", "The file stored on the OBS is oversized.", 0},
        {E_MA_4706, "ModelArts.4706", "The Obs file is not exist.", 0},
        /* §3.4 APIG, statuses documented */
        {E_APIG_0101, "APIG.0101",
         "The API does not exist or has not been published in the environment.", 404},
        {E_APIG_0101_METHOD, "APIG.0101", "The API does not exist.", 404},
        {E_APIG_0201_TOO_LARGE, "APIG.0201", "Request entity too large.", 413},
        {E_APIG_0201_URI_TOO_LARGE, "APIG.0201", "Request URI too large.", 414},
        {E_APIG_0201_HEADERS_TOO_LARGE, "APIG.0201", "Request headers too large.", 494},
        {E_APIG_0302, "APIG.0302", "The IAM user is not authorized to access the API.", 403},
        {E_APIG_0308, "APIG.0308", "The throttling threshold has been reached.", 429},
        {E_APIG_0601, "APIG.0601", "Internal server error.", 500},
        /* §3.5 IS */
        {E_IS_0001, "IS.0001", "The request parameter is missing or empty.", 0},
        {E_IS_0002, "IS.0002", "The type of the request parameter is not supported.", 0},
        {E_IS_0003, "IS.0003", "The request parameter cannot be empty.", 0},
        {E_IS_0004, "IS.0004", "The authentication token is abnormal.", 0},
        {E_IS_0005, "IS.0005", "The header is missing or empty.", 0},
        {E_IS_0006, "IS.0006", "The request body is too big.", 0},
        {E_IS_0007, "IS.0007", "Invalid instance name.", 0},
        {E_IS_0008, "IS.0008", "The JSON format of the input data is incorrect.", 0},
        {E_IS_0009, "IS.0009", "The request failed due to an internal error.", 0},
        {E_IS_0010, "IS.0010", "The request method is not allowed.", 0},
        {E_IS_0012, "IS.0012", "Operation timed out.", 0},
        {E_IS_0013, "IS.0013", "The token is empty.", 0},
        {E_IS_0014, "IS.0014", "Instance status is abnormal.", 0},
        {E_IS_0016, "IS.0016", "The path is invalid.", 0},
    };
    for (size_t k = 0; k < sizeof spec / sizeof spec[0]; k++) {
        const struct err_info *i = err_info(spec[k].e);
        CHECK_STR(i->code, spec[k].code);
        char buf[256];
        err_message(spec[k].e, NULL, buf, sizeof buf);
        CHECK_STR(buf, spec[k].msg);
        if (spec[k].status)
            CHECK_INT(i->http_status, spec[k].status);
    }
    /* APIG.0301 is 401 and its text starts as in §2.3 / §3.4. */
    const struct err_info *a = err_info(E_APIG_0301);
    CHECK_STR(a->code, "APIG.0301");
    CHECK_INT(a->http_status, 401);
    CHECK(!strncmp(a->message, "Incorrect IAM authentication information", 40));
    /* The token-failure codes of §2.1 are all 401. */
    CHECK_INT(err_info(E_MA_0203)->http_status, 401);
    CHECK_INT(err_info(E_MA_4101)->http_status, 401);
    CHECK_INT(err_info(E_MA_4102)->http_status, 401);
    CHECK_INT(err_info(E_MA_4103)->http_status, 401);
    /* Gateway errors, and only they, carry request_id in the body (§3.1). */
    for (int e = 1; e < E_COUNT; e++) {
        const struct err_info *i = err_info(err_resolve((enum err)e, API_V2));
        CHECK_INT(i->gateway, !strncmp(i->code, "APIG.", 5));
    }
}

/* Out-of-range values never crash and answer an internal error. */
static void test_out_of_range(void)
{
    const struct err_info *i = err_info(E_COUNT);
    CHECK(i != NULL);
    CHECK_STR(i->code, "APIG.0601");
    i = err_info((enum err) - 1);
    CHECK_STR(i->code, "APIG.0601");
    CHECK_INT(err_resolve(E_COUNT, API_V1), E_COUNT);
}

int main(void)
{
    RUN(test_every_value_has_an_entry);
    RUN(test_fixed_codes_have_rows);
    RUN(test_family_separation);
    RUN(test_resolve_per_family);
    RUN(test_message_formats);
    RUN(test_spec_texts);
    RUN(test_out_of_range);
    return unit_report();
}
