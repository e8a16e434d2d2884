/* shard.c: item -> shard and shard -> owner hashes (storage/shard.h). */
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

int shard_owner(const char *const *ids, size_t n, int64_t instance_id, int shard)
{
    int best = -1;
    uint64_t bw = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t w = shard_weight(ids[i], instance_id, shard);
        if (best < 0 || w > bw || (w == bw && strcmp(ids[i], ids[best]) < 0)) {
            best = (int)i;
            bw = w;
        }
    }
    return best;
}
