/* bench_util.h: the helpers the C benchmarks share (a fast seeded RNG with an
 * approximate normal draw, L2 normalisation, a monotonic clock, the process's RSS and its
 * anonymous / file-backed parts, a file's pages in the page cache).
 * Header-only: each benchmark is one .c file built by its script. */
#ifndef IMGSEARCH_BENCH_UTIL_H
#define IMGSEARCH_BENCH_UTIL_H

#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

/* Scales v (d floats) to unit L2 norm. */
static inline void bench_normalise(float *v, int d)
{
    double s = 0;
    for (int j = 0; j < d; j++)
        s += (double)v[j] * v[j];
    float inv = (float)(1.0 / sqrt(s));
    for (int j = 0; j < d; j++)
        v[j] *= inv;
}

static inline double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A "Name: N kB" field of /proc/self/status (VmRSS, RssAnon, RssFile,
 * VmHWM), or -1. */
static inline long status_kb(const char *name)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t len = strlen(name);
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, name, len) && line[len] == ':' &&
            sscanf(line + len + 1, "%ld", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

static inline long rss_kb(void)
{
    return status_kb("VmRSS");
}

/* Bytes of the file now in the page cache (mincore over a mapping of it). */
static inline long long file_cached_bytes(const char *path)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    long long cached = -1;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size == 0) {
        if (fd >= 0)
            close(fd);
        return fd < 0 ? -1 : 0;
    }
    long page = sysconf(_SC_PAGESIZE);
    size_t pages = ((size_t)st.st_size + (size_t)page - 1) / (size_t)page;
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    unsigned char *vec = malloc(pages);
    if (m != MAP_FAILED && vec && mincore(m, (size_t)st.st_size, vec) == 0) {
        cached = 0;
        for (size_t i = 0; i < pages; i++)
            cached += vec[i] & 1;
        cached *= page;
    }
    free(vec);
    if (m != MAP_FAILED)
        munmap(m, (size_t)st.st_size);
    close(fd);
    return cached;
}

/* Reads the whole file once, so its pages are in the page cache as on a
 * server that has been up for a while; returns the seconds it took, or -1. */
static inline double file_warm(const char *path)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    static char buf[1 << 20];
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0)
        ;
    close(fd);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return r < 0 ? -1 : (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
}

#endif
