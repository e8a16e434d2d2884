/* fuzz_json_body.c: libFuzzer target for server/json_body.c, differential:
 * any bytes through json_parse_object_cut (at a cut size taken from the
 * first byte, so short literals are cut too) must give what jansson gives
 * for the same bytes: an equal object, or both refused. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include "server/json_body.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t min = 1 + (data[0] & 15), restored;
    data++, size--;
    json_error_t jerr;
    json_t *want = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (want && !json_is_object(want)) {
        json_decref(want);
        want = NULL;
    }
    json_t *got = json_parse_object_cut(data, size, min, &restored);
    if (want ? !got || !json_equal(want, got) : got != NULL)
        abort();
    json_decref(want);
    json_decref(got);
    return 0;
}
