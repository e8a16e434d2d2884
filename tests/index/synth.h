/* synth.h: seeded random vectors for the index tests (included after DIM is
 * defined): uniform and Gaussian draws from a xorshift state each test file
 * seeds itself, L2 normalisation, and the pieces of a brute-force top k. */
#ifndef IMGSEARCH_TESTS_SYNTH_H
#define IMGSEARCH_TESTS_SYNTH_H

#include <math.h>
#include <stdint.h>

static double urand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / (double)(1ull << 53);
}

static float gauss(void)
{
    double u = urand(), v = urand();
    return (float)(sqrt(-2.0 * log(u + 1e-300)) * cos(2.0 * M_PI * v));
}

static void normalise(float *v)
{
    double s = 0;
    for (int j = 0; j < DIM; j++)
        s += (double)v[j] * v[j];
    s = sqrt(s);
    for (int j = 0; j < DIM; j++)
        v[j] = (float)(v[j] / s);
}

__attribute__((unused)) static float dot(const float *a, const float *b)
{
    float s = 0;
    for (int j = 0; j < DIM; j++)
        s += a[j] * b[j];
    return s;
}

/* Whether id is in allowed[0..n) (NULL: everything is). */
__attribute__((unused)) static int allowed_has(const int64_t *allowed, size_t n, int64_t id)
{
    if (!allowed)
        return 1;
    for (size_t a = 0; a < n; a++)
        if (allowed[a] == id)
            return 1;
    return 0;
}

/* Inserts (id, s) into the best-first top k held in out/outs (*found so
 * far). Equal scores keep the earlier candidate first: scanned in id order,
 * that is the smaller id, as the index orders ties. */
__attribute__((unused)) static void topk_insert(int64_t *out, float *outs, int *found, int k,
                                                int64_t id, float s)
{
    int pos = *found < k ? (*found)++ : k;
    if (pos == k && s <= outs[k - 1])
        return;
    if (pos == k)
        pos = k - 1;
    while (pos > 0 && outs[pos - 1] < s) {
        outs[pos] = outs[pos - 1];
        out[pos] = out[pos - 1];
        pos--;
    }
    outs[pos] = s;
    out[pos] = id;
}

#endif
