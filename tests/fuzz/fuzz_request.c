/* fuzz_request.c: libFuzzer target for request parsing: arbitrary bytes as a
 * request body through json_parse_object and every shared validator of the
 * v2/v1 handlers (field getters, tag maps, tag filters, keywords, cursor,
 * search type, box), plus the Authorization header parser and the
 * canonical-request builder. Nothing may crash, leak or read out of bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "server/json_util.h"
#include "server/params.h"
#include "server/signer.h"

static const char *hdr(void *ctx, const char *name)
{
    return strcmp(name, "host") == 0 ? (const char *)ctx : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char *tag_keys[] = {"brand", "color"};
    static char *num_keys[] = {"year"};
    struct instance inst = {.tag_keys = tag_keys,
                            .n_tag_keys = 2,
                            .num_tag_keys = num_keys,
                            .n_num_tag_keys = 1,
                            .search_types = ST_IMAGE | ST_KEYWORD};
    struct request req;
    memset(&req, 0, sizeof req);
    req.family = size && (data[0] & 1) ? API_V1 : API_V2;

    json_t *body = json_parse_object(data, size);
    if (body) {
        const char *s;
        long long i;
        double d;
        int b, present;
        json_t *o, *tags, *num, *kw;
        struct item_filter f;
        unsigned type;
        jget_string(&req, body, "item_id", JREQ, 1, 256, &s);
        jget_int(&req, body, "limit", JOPT, 1, 1000, &i);
        jget_number(&req, body, "min_score", JOPT, 0, 1, &d);
        jget_bool(&req, body, "force", JOPT, &b);
        jget_object(&req, body, "optional_params", JOPT, &o);
        jget_array(&req, body, "keywords", JOPT, 1, 100, &o);
        params_item_tags(&req, &inst, body, &tags, &num);
        params_filter(&req, &inst, body, &f);
        params_keywords(&req, body, 1, 10, JOPT, &kw);
        params_cursor(&req, body, &present, &d, &s);
        params_search_type(&req, body, &type);
        json_decref(body);
    }

    /* The same bytes as header values. */
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    int x1, y1, x2, y2;
    parse_box(text, &x1, &y1, &x2, &y2);
    char *ak, *sh, *sig;
    if (signer_parse_authorization(text, &ak, &sh, &sig) == 0) {
        char *creq = signer_canonical_request("POST", "/v2/p/mms/s/search", NULL, 0, sh, hdr,
                                              "127.0.0.1:1", "0");
        free(creq);
        free(ak);
        free(sh);
        free(sig);
    }
    signer_parse_date(text);
    free(text);
    return 0;
}
