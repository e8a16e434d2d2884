#!/usr/bin/python3
"""make_inputs.py: writes the deterministic 224x224x3 float32 (HWC, [0,1])
inputs the golden vectors are computed from. Pure stdlib, no randomness from
the OS: a fixed LCG, so every machine writes identical bytes.

usage: make_inputs.py OUT_DIR   -> OUT_DIR/input_0.f32 ... input_3.f32
"""
import math
import os
import struct
import sys

SIDE = 224


class Lcg:
    def __init__(self, seed):
        self.s = seed

    def next(self):
        self.s = (self.s * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        return (self.s >> 40) / float(1 << 24)


def gradient(y, x, c, _):
    return (x / (SIDE - 1) * (c == 0) + y / (SIDE - 1) * (c == 1)
            + 0.5 * (1 + math.sin((x + y) / 17.0)) * (c == 2))


def shapes(y, x, c, _):
    v = 0.2 + 0.1 * c
    if (x - 80) ** 2 + (y - 90) ** 2 < 50 ** 2:
        v = (0.9, 0.3, 0.1)[c]
    if 120 < x < 200 and 30 < y < 180:
        v = (0.1, 0.4, 0.85)[c]
    if abs((x - y) - 40) < 6:
        v = 1.0
    return v


def waves(y, x, c, ctx):
    return min(1.0, max(0.0, 0.5 + sum(
        a * math.sin(fx * x + fy * y + ph + c) for a, fx, fy, ph in ctx)))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = Lcg(12345)
    wave_ctx = [(0.25 * rng.next(), 0.2 * rng.next(), 0.2 * rng.next(), 6.28 * rng.next())
                for _ in range(6)]
    noise = [rng.next() for _ in range(SIDE * SIDE * 3)]
    gens = [gradient, shapes, waves, None]
    for i, g in enumerate(gens):
        if g is None:
            vals = noise
        else:
            vals = [g(y, x, c, wave_ctx) for y in range(SIDE) for x in range(SIDE) for c in range(3)]
        tmp = os.path.join(out, "input_%d.f32.tmp" % i)
        with open(tmp, "wb") as f:
            f.write(struct.pack("<%df" % len(vals), *vals))
        os.replace(tmp, os.path.join(out, "input_%d.f32" % i))


main()
