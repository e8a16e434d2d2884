/* fuzz_base64.c: libFuzzer target for base64_decode. Checks the fast decoder
 * against a slow, obviously-correct reference (same acceptance rules) and
 * that whatever decodes re-encodes and decodes to the same bytes. */
#include "storage/base64.h"

#include <stdlib.h>
#include <string.h>

static int ref_value(uint8_t c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

static int ref_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Reference for input without a data: prefix: 1 = valid, 0 = invalid. */
static int ref_decode(const uint8_t *in, size_t len, uint8_t *out, size_t *out_len)
{
    size_t n = 0, pads = 0, o = 0;
    uint32_t acc = 0;
    for (size_t i = 0; i < len; i++) {
        if (ref_space(in[i]))
            continue;
        if (in[i] == '=') {
            pads++;
            continue;
        }
        int v = ref_value(in[i]);
        if (v < 0 || pads)
            return 0; /* junk, or data after padding */
        acc = acc << 6 | (uint32_t)v;
        if (++n % 4 == 0) {
            out[o++] = (uint8_t)(acc >> 16);
            out[o++] = (uint8_t)(acc >> 8);
            out[o++] = (uint8_t)acc;
            acc = 0;
        }
    }
    size_t rem = n % 4;
    if (rem == 1)
        return 0;
    if (pads && !((rem == 2 && pads == 2) || (rem == 3 && pads == 1)))
        return 0;
    if (rem == 2)
        out[o++] = (uint8_t)(acc >> 4);
    if (rem == 3) {
        out[o++] = (uint8_t)(acc >> 10);
        out[o++] = (uint8_t)(acc >> 2);
    }
    *out_len = o;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *out = NULL;
    size_t n = 0;
    /* Unlimited, then against a limit just below the output size. */
    enum b64_status st = base64_decode((const char *)data, size, (size_t)-1, &out, &n);
    if (st == B64_OK) {
        if (n > 0) {
            uint8_t *o2;
            size_t n2;
            if (base64_decode((const char *)data, size, n - 1, &o2, &n2) != B64_TOO_LARGE)
                abort();
            if (o2 || n2)
                abort();
        }
        char *e = base64_encode(out, n);
        if (!e)
            abort();
        uint8_t *back;
        size_t nb;
        if (base64_decode(e, strlen(e), n, &back, &nb) != B64_OK || nb != n ||
            memcmp(back, out, n) != 0)
            abort();
        free(back);
        free(e);
    } else if (out || n) {
        abort();
    }

    int has_colon = memchr(data, ':', size) != NULL;
    if (!has_colon && st != B64_NOMEM) {
        uint8_t *ref = malloc(size / 4 * 3 + 3);
        size_t rn = 0;
        int ok = ref_decode(data, size, ref, &rn);
        if (ok != (st == B64_OK))
            abort();
        if (ok && (rn != n || memcmp(ref, out, n) != 0))
            abort();
        free(ref);
    }
    free(out);
    return 0;
}
