/* base64.c: strict, table-driven base64 decoding of image payloads (and a
 * plain encoder for tests and tools).
 *
 * The hot loop decodes 16 characters into 12 bytes with four lookups per
 * 4-char group into pre-shifted tables: each table entry is the group's
 * contribution to a little 24-bit word, and every non-alphabet character
 * (whitespace, '=', junk) sets bit 24, so one OR over the block tells whether
 * the fast path applies. Blocks containing anything else (line breaks, the
 * final padding) go through a careful per-character path that also owns all
 * the validation. On x86-64 CPUs with AVX2, 32-char blocks go through a
 * vector decoder first (nibble lookup tables: validate, translate, pack;
 * the approach of Muła and Lemire), which is several times faster again. */
#include "storage/base64.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define B64_HAVE_AVX2 1
#include <immintrin.h>
#endif

#define B64_BAD 0x01000000u /* any non-alphabet char: bit 24 */
#define B64_WS 0x40         /* class table: whitespace */
#define B64_PAD 0x41        /* class table: '=' */
#define B64_INV 0xFF        /* class table: everything else */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* cls: 0..63 alphabet value, or B64_WS / B64_PAD / B64_INV.
 * d0..d3: contribution of a char at position 0..3 of a group to the 3 output
 * bytes laid out little-endian in a uint32 (byte 0 lowest). */
static struct {
    uint8_t cls[256];
    uint32_t d0[256], d1[256], d2[256], d3[256];
} tab;

static void b64_init_tables(void)
{
    for (int c = 0; c < 256; c++) {
        tab.cls[c] = B64_INV;
        tab.d0[c] = tab.d1[c] = tab.d2[c] = tab.d3[c] = B64_BAD;
    }
    tab.cls[' '] = tab.cls['\t'] = tab.cls['\n'] = tab.cls['\r'] = B64_WS;
    tab.cls['\f'] = tab.cls['\v'] = B64_WS;
    tab.cls['='] = B64_PAD;
    for (uint32_t v = 0; v < 64; v++) {
        uint8_t c = (uint8_t)b64_alphabet[v];
        tab.cls[c] = (uint8_t)v;
        /* byte0 = v0<<2 | v1>>4; byte1 = (v1&15)<<4 | v2>>2; byte2 = (v2&3)<<6 | v3 */
        tab.d0[c] = v << 2;
        tab.d1[c] = (v >> 4) | ((v & 0x0F) << 12);
        tab.d2[c] = ((v >> 2) << 8) | ((v & 0x03) << 22);
        tab.d3[c] = v << 16;
    }
}

/* Tables are built once; pthread_once keeps concurrent first calls safe. */
static pthread_once_t b64_once = PTHREAD_ONCE_INIT;

#ifdef B64_HAVE_AVX2
static int b64_use_avx2;

static void b64_init(void)
{
    b64_init_tables();
    __builtin_cpu_init();
    b64_use_avx2 = __builtin_cpu_supports("avx2");
}

/* Decodes whole 32-char blocks of pure alphabet from `s` (n chars) into `o`,
 * 24 bytes each; stops at the first block holding anything else. Writes 32
 * bytes per block, so `o` needs 8 bytes of slack. Returns chars consumed. */
__attribute__((target("avx2"))) static size_t b64_avx2_blocks(const uint8_t *s, size_t n,
                                                              uint8_t *o)
{
    /* A char is valid iff lut_lo[low nibble] & lut_hi[high nibble] == 0;
     * lut_roll[high nibble] (minus one for '/') maps it to its value. */
    const __m256i lut_lo =
        _mm256_setr_epi8(0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x13, 0x1A,
                         0x1B, 0x1B, 0x1B, 0x1A, 0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
                         0x11, 0x11, 0x13, 0x1A, 0x1B, 0x1B, 0x1B, 0x1A);
    const __m256i lut_hi =
        _mm256_setr_epi8(0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10, 0x10, 0x10,
                         0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08,
                         0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10);
    const __m256i lut_roll =
        _mm256_setr_epi8(0, 16, 19, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 19, 4,
                         -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m256i mask_2f = _mm256_set1_epi8(0x2F);
    const __m256i pack_shuf =
        _mm256_setr_epi8(2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1, 2, 1, 0, 6, 5, 4,
                         10, 9, 8, 14, 13, 12, -1, -1, -1, -1);
    const __m256i pack_perm = _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 7, 7);
    size_t i = 0;
    for (; n - i >= 32; i += 32, o += 24) {
        __m256i str = _mm256_loadu_si256((const __m256i *)(s + i));
        __m256i hi_nib = _mm256_and_si256(_mm256_srli_epi32(str, 4), mask_2f);
        __m256i lo_nib = _mm256_and_si256(str, mask_2f);
        __m256i lo = _mm256_shuffle_epi8(lut_lo, lo_nib);
        __m256i hi = _mm256_shuffle_epi8(lut_hi, hi_nib);
        if (!_mm256_testz_si256(lo, hi))
            break;
        __m256i eq_2f = _mm256_cmpeq_epi8(str, mask_2f);
        __m256i roll = _mm256_shuffle_epi8(lut_roll, _mm256_add_epi8(eq_2f, hi_nib));
        str = _mm256_add_epi8(str, roll);
        /* 4 x 6 bits -> 24 bits per 32-bit lane, then gather the 3 bytes. */
        __m256i ab_bc = _mm256_maddubs_epi16(str, _mm256_set1_epi32(0x01400140));
        __m256i w = _mm256_madd_epi16(ab_bc, _mm256_set1_epi32(0x00011000));
        w = _mm256_shuffle_epi8(w, pack_shuf);
        w = _mm256_permutevar8x32_epi32(w, pack_perm);
        _mm256_storeu_si256((__m256i *)o, w);
    }
    return i;
}
#else
static void b64_init(void)
{
    b64_init_tables();
}
#endif

static int b64_is_little_endian(void)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return 1;
#else
    return 0;
#endif
}

static inline void b64_store3(uint8_t *o, uint32_t x)
{
    if (b64_is_little_endian()) {
        memcpy(o, &x, 4); /* writes one slack byte; the buffer has room */
    } else {
        o[0] = (uint8_t)x;
        o[1] = (uint8_t)(x >> 8);
        o[2] = (uint8_t)(x >> 16);
    }
}

static int b64_ascii_ieq(const char *a, const char *lit, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = a[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != lit[i])
            return 0;
    }
    return 1;
}

/* Skips an optional "data:image/<subtype>;base64," (case-insensitive) after
 * leading whitespace. Returns the offset of the payload, or -1 when a "data:"
 * prefix is present but malformed. */
static long b64_skip_prefix(const char *in, size_t len)
{
    size_t i = 0;
    while (i < len && tab.cls[(uint8_t)in[i]] == B64_WS)
        i++;
    if (len - i < 5 || !b64_ascii_ieq(in + i, "data:", 5))
        return 0; /* no prefix: whitespace is fine to re-scan */
    i += 5;
    if (len - i < 6 || !b64_ascii_ieq(in + i, "image/", 6))
        return -1;
    i += 6;
    size_t sub = i;
    while (i < len && in[i] != '/' &&
           (tab.cls[(uint8_t)in[i]] < 64 || in[i] == '.' || in[i] == '-'))
        i++; /* subtype: letters, digits, '+', '.', '-' ("svg+xml", "x-ms-bmp") */
    if (i == sub)
        return -1;
    if (len - i < 8 || !b64_ascii_ieq(in + i, ";base64,", 8))
        return -1;
    return (long)(i + 8);
}

/* Exact decoded size of a payload, counting only alphabet characters up to
 * the first '='. Used only when the quick upper bound exceeds max_out. */
static size_t b64_exact_len(const uint8_t *p, size_t n)
{
    size_t sig = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t k = tab.cls[p[i]];
        if (k < 64)
            sig++;
        else if (k == B64_PAD)
            break;
    }
    return sig / 4 * 3 + (sig % 4 ? sig % 4 - 1 : 0);
}

/* The tail after the first '=': at most as many '=' as the group needs and
 * whitespace, nothing else. `q` is how many chars the open group holds. */
static int b64_check_padding(const uint8_t *p, size_t n, int q)
{
    int pads = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t k = tab.cls[p[i]];
        if (k == B64_PAD)
            pads++;
        else if (k != B64_WS)
            return -1;
    }
    /* "xx==" or "xxx=": padding, when present, completes the group exactly. */
    if ((q == 2 && pads == 2) || (q == 3 && pads == 1))
        return 0;
    return -1;
}

enum b64_status base64_decode(const char *in, size_t len, size_t max_out, uint8_t **out,
                              size_t *out_len)
{
    uint8_t *buf = NULL;
    *out = NULL;
    *out_len = 0;
    pthread_once(&b64_once, b64_init);
    if (!in)
        len = 0;

    long start = len ? b64_skip_prefix(in, len) : 0;
    if (start < 0)
        return B64_INVALID;
    const uint8_t *p = (const uint8_t *)in + start;
    size_t n = len - (size_t)start;

    /* Upper bound first; only if it is over the limit count exactly, so a
     * too-large payload never causes an allocation. */
    size_t need = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0); /* exact if all alphabet */
    if (need > max_out) {
        need = b64_exact_len(p, n);
        if (need > max_out)
            return B64_TOO_LARGE;
    }
    size_t cap = need + 8; /* slack for 4-byte (and 32-byte) stores */
    buf = malloc(cap);
    if (!buf)
        return B64_NOMEM;

    uint8_t *o = buf;
    size_t i = 0;
    uint32_t acc = 0;
    int q = 0; /* chars in the open group (slow path) */
    while (i < n) {
#ifdef B64_HAVE_AVX2
        if (q == 0 && b64_use_avx2 && n - i >= 32) {
            size_t used = b64_avx2_blocks(p + i, n - i, o);
            i += used;
            o += used / 4 * 3;
        }
#endif
        /* Fast path: whole 16-char blocks of pure alphabet. */
        while (q == 0 && n - i >= 16) {
            const uint8_t *s = p + i;
            uint32_t x0 = tab.d0[s[0]] | tab.d1[s[1]] | tab.d2[s[2]] | tab.d3[s[3]];
            uint32_t x1 = tab.d0[s[4]] | tab.d1[s[5]] | tab.d2[s[6]] | tab.d3[s[7]];
            uint32_t x2 = tab.d0[s[8]] | tab.d1[s[9]] | tab.d2[s[10]] | tab.d3[s[11]];
            uint32_t x3 = tab.d0[s[12]] | tab.d1[s[13]] | tab.d2[s[14]] | tab.d3[s[15]];
            if ((x0 | x1 | x2 | x3) & B64_BAD)
                break;
            b64_store3(o, x0);
            b64_store3(o + 3, x1);
            b64_store3(o + 6, x2);
            b64_store3(o + 9, x3);
            o += 12;
            i += 16;
        }
        /* 4-char groups (e.g. the tail of a line). */
        while (q == 0 && n - i >= 4) {
            const uint8_t *s = p + i;
            uint32_t x = tab.d0[s[0]] | tab.d1[s[1]] | tab.d2[s[2]] | tab.d3[s[3]];
            if (x & B64_BAD)
                break;
            b64_store3(o, x);
            o += 3;
            i += 4;
        }
        if (i >= n)
            break;
        /* Slow path: one char, skipping whitespace, until a group closes. */
        uint8_t k = tab.cls[p[i]];
        if (k < 64) {
            acc = acc << 6 | k;
            if (++q == 4) {
                o[0] = (uint8_t)(acc >> 16);
                o[1] = (uint8_t)(acc >> 8);
                o[2] = (uint8_t)acc;
                o += 3;
                q = 0;
                acc = 0;
            }
        } else if (k == B64_PAD) {
            if (b64_check_padding(p + i, n - i, q) < 0)
                goto invalid;
            break;
        } else if (k == B64_WS) {
            /* Line breaks come in runs ("\r\n"): skip them in one go. */
            do
                i++;
            while (i < n && tab.cls[p[i]] == B64_WS);
            continue;
        } else {
            goto invalid;
        }
        i++;
    }
    /* An open group of 2 or 3 chars (padded or not) yields 1 or 2 bytes;
     * a lone char carries fewer than 8 bits and is malformed. */
    if (q == 1)
        goto invalid;
    if (q == 2) {
        *o++ = (uint8_t)(acc >> 4);
    } else if (q == 3) {
        *o++ = (uint8_t)(acc >> 10);
        *o++ = (uint8_t)(acc >> 2);
    }
    *out_len = (size_t)(o - buf);
    if (*out_len > max_out) { /* unreachable given the check above; belt and braces */
        free(buf);
        *out_len = 0;
        return B64_TOO_LARGE;
    }
    *out = buf;
    return B64_OK;

invalid:
    free(buf);
    return B64_INVALID;
}

char *base64_encode(const uint8_t *in, size_t len)
{
    if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
        return NULL;
    size_t olen = (len + 2) / 3 * 4;
    char *s = malloc(olen + 1);
    if (!s)
        return NULL;
    char *o = s;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *o++ = b64_alphabet[v >> 18];
        *o++ = b64_alphabet[(v >> 12) & 63];
        *o++ = b64_alphabet[(v >> 6) & 63];
        *o++ = b64_alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *o++ = b64_alphabet[v >> 18];
        *o++ = b64_alphabet[(v >> 12) & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *o++ = b64_alphabet[v >> 18];
        *o++ = b64_alphabet[(v >> 12) & 63];
        *o++ = b64_alphabet[(v >> 6) & 63];
        *o++ = '=';
    }
    *o = '\0';
    return s;
}
