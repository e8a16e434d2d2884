/* cidr.c: parsing and matching of IPv4/IPv6 networks for the URL-fetch
 * allow/deny lists. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are treated
 * as the IPv4 address they carry, both in networks and in addresses matched,
 * so "::ffff:127.0.0.1" can never slip past a "127.0.0.0/8" rule. */
#include "config/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static const uint8_t mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static int is_mapped(const uint8_t *a16)
{
    return memcmp(a16, mapped_prefix, sizeof mapped_prefix) == 0;
}

int cidr_parse(const char *s, struct cidr *out)
{
    char buf[INET6_ADDRSTRLEN + 8];
    const char *slash;
    size_t alen;
    long prefix = -1;

    if (!s || !out)
        return -1;
    memset(out, 0, sizeof *out);
    slash = strchr(s, '/');
    alen = slash ? (size_t)(slash - s) : strlen(s);
    if (alen == 0 || alen >= sizeof buf)
        return -1;
    memcpy(buf, s, alen);
    buf[alen] = '\0';

    if (slash) {
        const char *p = slash + 1;
        char *end;
        /* Digits only: strtol would accept " 8", "+8" or "0x8". */
        if (*p < '0' || *p > '9' || strlen(p) > 3)
            return -1;
        errno = 0;
        prefix = strtol(p, &end, 10);
        if (errno || *end != '\0')
            return -1;
    }

    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        if (prefix < 0)
            prefix = 32;
        if (prefix > 32)
            return -1;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        if (prefix < 0)
            prefix = 128;
        if (prefix > 128)
            return -1;
        if (is_mapped(out->addr) && prefix >= 96) {
            /* ::ffff:10.0.0.0/104 is the IPv4 network 10.0.0.0/8. */
            memmove(out->addr, out->addr + 12, 4);
            memset(out->addr + 4, 0, 12);
            out->family = AF_INET;
            prefix -= 96;
        }
    } else {
        return -1;
    }
    out->prefix = (int)prefix;
    return 0;
}

static int prefix_equal(const uint8_t *a, const uint8_t *b, int bits)
{
    int full = bits / 8, rest = bits % 8;

    if (memcmp(a, b, (size_t)full) != 0)
        return 0;
    if (rest) {
        uint8_t mask = (uint8_t)(0xff << (8 - rest));
        if ((a[full] & mask) != (b[full] & mask))
            return 0;
    }
    return 1;
}

/* 1 when `addr` (4 bytes for AF_INET, 16 for AF_INET6) lies in `c`. */
int cidr_match(const struct cidr *c, int family, const uint8_t *addr)
{
    if (!c || !addr)
        return 0;
    if (family == AF_INET6 && is_mapped(addr)) {
        family = AF_INET;
        addr += 12;
    }
    if (family != c->family)
        return 0;
    if (family == AF_INET)
        return c->prefix >= 0 && c->prefix <= 32 && prefix_equal(addr, c->addr, c->prefix);
    if (family == AF_INET6)
        return c->prefix >= 0 && c->prefix <= 128 && prefix_equal(addr, c->addr, c->prefix);
    return 0;
}
