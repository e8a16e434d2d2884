/* shard.c: item -> shard and shard -> owner hashes (storage/shard.h). */
#include <stdlib.h>
#include <string.h>
#include "storage/shard.h"

uint64_t shard_fnv1a(const void *p, size_t n, uint64_t h)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

int shard_of_item(const char *item_id, int shards)
{
    if (shards <= 1 || !item_id)
        return 0;
    return (int)(shard_fnv1a(item_id, strlen(item_id), SHARD_FNV_BASIS) % (uint64_t)shards);
}

/* splitmix64's finaliser: FNV-1a alone spreads short, similar keys poorly
 * in its high bits, and rendezvous compares whole weights. */
static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

uint64_t shard_weight(const char *node_id, int64_t instance_id, int shard)
{
    /* Fixed-width little-endian fields after the id's bytes and a NUL, so
     * the weight does not depend on the host's byte order. */
    unsigned char tail[13];
    uint64_t inst = (uint64_t)instance_id;
    uint32_t sh = (uint32_t)shard;
    tail[0] = 0;
    for (int i = 0; i < 8; i++)
        tail[1 + i] = (unsigned char)(inst >> (8 * i));
    for (int i = 0; i < 4; i++)
        tail[9 + i] = (unsigned char)(sh >> (8 * i));
    uint64_t h = shard_fnv1a(node_id, strlen(node_id), SHARD_FNV_BASIS);
    return mix(shard_fnv1a(tail, sizeof tail, h));
}

/* Whether node a's weight w beats node b's weight bw (ties to the smaller id). */
static int heavier(uint64_t w, const char *a, uint64_t bw, const char *b)
{
    return w > bw || (w == bw && strcmp(a, b) < 0);
}

int shard_owner(const char *const *ids, size_t n, int64_t instance_id, int shard)
{
    int best = -1;
    uint64_t bw = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t w = shard_weight(ids[i], instance_id, shard);
        if (best < 0 || heavier(w, ids[i], bw, ids[best])) {
            best = (int)i;
            bw = w;
        }
    }
    return best;
}

int shard_owners(const char *const *ids, size_t n, int64_t instance_id, int shards, int *owner)
{
    for (int s = 0; s < shards; s++)
        owner[s] = -1;
    if (n == 0 || shards <= 0)
        return n == 0 ? -1 : 0;
    size_t S = (size_t)shards;
    uint64_t *w = malloc(S * n * sizeof *w);
    int *count = calloc(n, sizeof *count);
    if (!w || !count) {
        free(w);
        free(count);
        return -1;
    }
    for (size_t s = 0; s < S; s++) {
        for (size_t i = 0; i < n; i++)
            w[s * n + i] = shard_weight(ids[i], instance_id, (int)s);
        int best = 0;
        for (size_t i = 1; i < n; i++)
            if (heavier(w[s * n + i], ids[i], w[s * n + best], ids[best]))
                best = (int)i;
        owner[s] = best;
        count[best]++;
    }
    /* First fill the nodes under floor(S/n) from those above it, then empty
     * those over ceil(S/n) into those under it: every count ends in between.
     * Each move is the candidate (shard, receiver) of highest weight. */
    int lo = shards / (int)n, hi = (shards + (int)n - 1) / (int)n;
    for (;;) {
        int under = 0;
        for (size_t i = 0; i < n; i++)
            under |= count[i] < lo;
        int bs = -1, bm = -1;
        for (size_t s = 0; s < S; s++) {
            int d = owner[s];
            if (under ? count[d] <= lo : count[d] <= hi)
                continue;
            for (size_t m = 0; m < n; m++) {
                if (under ? count[m] >= lo : count[m] >= hi)
                    continue;
                if (bs < 0 ||
                    heavier(w[s * n + m], ids[m], w[(size_t)bs * n + (size_t)bm], ids[bm]))
                    bs = (int)s, bm = (int)m;
            }
        }
        if (bs < 0)
            break;
        count[owner[bs]]--;
        count[bm]++;
        owner[bs] = bm;
    }
    free(w);
    free(count);
    return 0;
}
