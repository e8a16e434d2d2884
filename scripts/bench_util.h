/* bench_util.h: the helpers the C benchmarks share (a fast seeded RNG with an
 * approximate normal draw, a monotonic clock, the process's RSS). Header-only:
 * each benchmark is one .c file built by its script. */
#ifndef IMGSEARCH_BENCH_UTIL_H
#define IMGSEARCH_BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <time.h>

static inline uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* Approximate N(0,1): four 16-bit uniforms summed (Irwin-Hall), rescaled. */
static inline float gauss(uint64_t *s)
{
    uint64_t r = rng_next(s);
    double u = (double)(r & 0xffff) + (double)((r >> 16) & 0xffff) + (double)((r >> 32) & 0xffff) +
               (double)(r >> 48);
    return (float)((u / 65536.0 - 2.0) * 1.7320508);
}

static inline double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static inline long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

#endif
