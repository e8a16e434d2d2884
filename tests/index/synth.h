/* synth.h: seeded random vectors for the index tests (included after DIM is
 * defined): uniform and Gaussian draws from a xorshift state each test file
 * seeds itself, and L2 normalisation. */
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

#endif
