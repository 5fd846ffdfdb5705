#!/usr/bin/env python3
"""The accuracy of the divider-free denominators that bench/floor.c times
(docs/performance.md, "Past the divider"): a bit-trick initial guess and
Newton steps, in float32 arithmetic without FMA, against float64.

Exhaustive over every significand: the guess subtracts the input's bits
(rcp) or half of them (rsqrt) from a constant, so the relative error of each
sequence repeats every binade (rcp) or every two binades (rsqrt), and one or
two binades cover every normal input whose steps neither overflow nor
underflow.  Prints the largest error, in ulps of the float32 result, after 1
to 4 steps, in a few seconds.

usage: bench/newton_accuracy.py
"""
import numpy as np

F = np.float32
SIGNIFICANDS = np.arange(0, 1 << 23, dtype=np.uint32)


def rsqrt(x, steps):
    y = (np.uint32(0x5F375A86) - (x.view(np.uint32) >> 1)).view(F)
    h = (x * F(0.5)).astype(F)
    for _ in range(steps):
        y = (y * (F(1.5) - ((h * y).astype(F) * y).astype(F))).astype(F)
    return y


def rcp(d, steps):
    y = (np.uint32(0x7EF311C3) - d.view(np.uint32)).view(F)
    for _ in range(steps):
        y = (y * (F(2.0) - (d * y).astype(F))).astype(F)
    return y


def ulps(approx, exact):
    """|approx - exact| in units of the float32 ulp at exact."""
    return np.abs(approx.astype(np.float64) - exact) / np.ldexp(1.0, np.frexp(exact)[1] - 24)


def main():
    for name, fn, exps, exact in (("rsqrt", rsqrt, (127, 128), lambda x: 1.0 / np.sqrt(x)),
                                  ("rcp", rcp, (127,), lambda x: 1.0 / x)):
        for steps in (1, 2, 3, 4):
            worst = 0.0
            for e in exps:
                x = (SIGNIFICANDS | np.uint32(e << 23)).view(F)
                worst = max(worst, float(ulps(fn(x, steps), exact(x.astype(np.float64))).max()))
            print(f"{name}, {steps} Newton step{'s' if steps > 1 else ''}: largest error {worst:.2f} ulp")


if __name__ == "__main__":
    main()
