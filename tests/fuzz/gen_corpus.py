#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz target (tests/fuzz/corpus/).

Each seed is one input in the format documented at the top of
tests/fuzz/fuzz_rmsprop.c, chosen to start the fuzzer at the interesting
places: every kernel variant at sizes around the vector widths, special and
arbitrary float data, every error status, overlapping and aliased arrays,
wild pointers and huge sizes, and tensor lists (shared gradients, overlaps
across tensors, NULL and empty lists).

    gen_corpus.py [DIR]            write the seeds into DIR (default: corpus/ here)
    gen_corpus.py --check [DIR]    exit 1 if DIR differs from what would be written
"""
import os
import struct
import sys

# Indices into hyper_table in fuzz_rmsprop.c.
H = {
    0.0: 0, 1.0: 1, 0.5: 2, 0.9: 3, 0.99: 4, 0.999999: 5, 1e-8: 6, 1e-7: 7, 1e-10: 8, 1e-3: 9, 0.01: 10,
    0.1: 11, "-0": 12, "-tiny": 13, -1.0: 14, 3e38: 15, "FLT_MAX": 16, "FLT_MAX+half_ulp": 17,
    "below_tie": 18, 1e39: 19, "FLT_TRUE_MIN": 20, 1e-46: 21, "DBL_TRUE_MIN": 22, "DBL_MAX": 23,
    "inf": 24, "-inf": 25, "nan": 26, "below_1": 27, "above_1": 28, 2.0: 29, 100.0: 30, 1e30: 31,
}

CENTERED, EPS_IN_SQRT, LR_IN_MOMENTUM, MAXIMIZE = 1, 2, 4, 8
SINGLE, LIST, BOTH = 0, 1, 2
RAW, SPECIAL, SMALL, MIXED = 0, 1, 2, 3


def hyper(x):
    if isinstance(x, tuple) and x[0] == "raw":
        return bytes([0x80]) + struct.pack("<d", x[1])
    return bytes([H[x]])


def config(lr=0.01, alpha=0.99, eps=1e-8, wd=0.0, mom=0.0, flags=0):
    return b"".join(hyper(x) for x in (lr, alpha, eps, wd, mom)) + bytes([flags])


def own(mis=0):
    """An array in its own block, `mis` bytes past a malloc'd address (0..31)."""
    assert 0 <= mis < 32  # the target: (x & 3) bytes + 4 * (x >> 2), x = mis
    return bytes([mis << 3])


NULL = bytes([3])


def arena(offset):
    return bytes([4]) + struct.pack("<H", offset)


def alias(k):
    """The k-th array decoded before this one (mod the count so far)."""
    return bytes([6 | (k << 3)])


def wild(x=0):
    return bytes([7 | (x << 3)])


def n_small(n):
    return struct.pack("<H", n)


def n_huge(i):
    return struct.pack("<H", 0xC000 | i)


def tensor(n, arrays):
    assert len(arrays) == 5
    return n + b"".join(arrays)


def default_arrays(mis=(0, 0, 0, 0, 0)):
    return [own(m) for m in mis]


def data(length, seed):
    """Deterministic data bytes (xorshift)."""
    out, s = bytearray(), seed | 1
    for _ in range(length):
        s ^= (s << 13) & 0xFFFFFFFFFFFFFFFF
        s ^= s >> 7
        s ^= (s << 17) & 0xFFFFFFFFFFFFFFFF
        out.append(s >> 56)
    return bytes(out)


def make(op, cfg, body, seed, data_len=64):
    """op byte + config + body, then data: the target reads its data from the
    second half of the input, so the data is at least as long as the rest."""
    head = bytes([op]) + cfg + body
    return head + data(max(data_len, len(head)), seed)


def op_byte(what, mode, null_cfg=False, null_list=False):
    return what | (mode << 2) | (0x70 if null_list else 0) | (0x80 if null_cfg else 0)


def seeds():
    out = {}
    k = 0

    def add(name, op, cfg, body, data_len=64):
        nonlocal k
        k += 1
        out["%02d-%s" % (k, name)] = make(op, cfg, body, 1000 + k, data_len)

    # Every flag combination, with and without weight decay and momentum,
    # at sizes around the vector widths (1, 4, 8, 16 floats), at assorted
    # alignments, with small positive, special and arbitrary data.
    sizes = [1, 3, 15, 16, 17, 31, 33, 64, 100, 257, 1000, 1024]
    for flags in range(16):
        wd = 0.01 if flags % 2 == 0 else 0.0
        mom = 0.9 if flags % 4 < 2 else 0.0
        n = sizes[flags % len(sizes)]
        mis = (flags % 4, 0, 4 * (flags % 3), 1, 2)
        mode = (SMALL, SPECIAL, RAW, MIXED)[flags % 4]
        add("single-flags%d-n%d" % (flags, n), op_byte(SINGLE, mode),
            config(lr=0.01, alpha=0.9, eps=1e-7, wd=wd, mom=mom, flags=flags),
            tensor(n_small(n), default_arrays(mis)), data_len=4 * n if mode == RAW else n)

    # Presets and edge hyperparameters.
    add("pytorch-alpha1-eps0", op_byte(SINGLE, SMALL), config(lr=1e-3, alpha=1.0, eps=0.0),
        tensor(n_small(40), default_arrays()))
    add("huge-lr-subnormal-eps", op_byte(SINGLE, MIXED),
        config(lr="FLT_MAX", alpha=0.5, eps="FLT_TRUE_MIN", wd=1e30, mom=0.999999, flags=CENTERED | MAXIMIZE),
        tensor(n_small(70), default_arrays((1, 2, 3, 0, 0))))
    add("lr-just-below-float-overflow", op_byte(SINGLE, SMALL), config(lr="below_tie"),
        tensor(n_small(20), default_arrays()))
    add("raw-double-hyper", op_byte(SINGLE, SMALL),
        config(lr=("raw", 0.0123), alpha=("raw", 0.875), eps=("raw", 1e-6), wd=0.0, mom=0.0),
        tensor(n_small(33), default_arrays()))

    # Every configuration error.
    for name, cfg in [
        ("err-nan-lr", config(lr="nan")), ("err-inf-eps", config(eps="inf")),
        ("err-lr-overflows-float", config(lr="FLT_MAX+half_ulp")), ("err-negative-lr", config(lr=-1.0)),
        ("err-alpha-above-1", config(alpha="above_1")), ("err-negative-eps", config(eps="-tiny")),
        ("err-negative-wd", config(wd=-1.0)), ("err-momentum-1", config(mom=1.0)),
        ("err-unknown-flag", config(flags=0x10 | 0x20)), ("err-flag-bit31", config(flags=0xF0)),
    ]:
        add(name, op_byte(SINGLE, SMALL), cfg, tensor(n_small(17), default_arrays()))
    add("err-null-config", op_byte(BOTH, SMALL, null_cfg=True), config(),
        tensor(n_small(5), default_arrays()) + bytes([1]) + tensor(n_small(5), default_arrays()))

    # Array errors: NULLs, overlaps, aliases, wild pointers, huge n.
    add("err-null-param", op_byte(SINGLE, SMALL), config(), tensor(n_small(9), [NULL] + default_arrays()[1:]))
    add("err-null-momentum-buf", op_byte(SINGLE, SMALL), config(mom=0.9),
        tensor(n_small(9), [own(), own(), own(), NULL, own()]))
    add("err-null-grad-avg", op_byte(SINGLE, SMALL), config(flags=CENTERED),
        tensor(n_small(9), [own(), own(), own(), own(), NULL]))
    add("n0-all-null", op_byte(SINGLE, SMALL), config(mom=0.9, flags=CENTERED), tensor(n_small(0), [NULL] * 5))
    add("unused-arrays-null-or-wild", op_byte(SINGLE, MIXED), config(),
        tensor(n_small(50), [own(), own(), own(), wild(3), NULL]))
    add("err-overlap-arena", op_byte(SINGLE, SMALL), config(mom=0.5),
        tensor(n_small(64), [arena(0), arena(512), arena(1000), arena(100), NULL]))
    add("disjoint-arena", op_byte(SINGLE, SPECIAL), config(mom=0.5, flags=CENTERED),
        tensor(n_small(64), [arena(1), arena(300), arena(600), arena(900), arena(1200)]))
    add("err-alias-param-grad", op_byte(SINGLE, SMALL), config(), tensor(n_small(8), [own(), alias(0), own(), NULL, NULL]))
    add("err-wild-param-wraps", op_byte(SINGLE, SMALL), config(), tensor(n_small(8), [wild(5), own(), own(), NULL, NULL]))
    add("err-huge-n", op_byte(SINGLE, SMALL), config(), tensor(n_huge(0), default_arrays()))
    add("err-huge-n-wraps", op_byte(SINGLE, SMALL), config(), tensor(n_huge(7), default_arrays()))

    # Tensor lists.
    add("list-four-disjoint", op_byte(LIST, SMALL), config(mom=0.9, wd=0.01, flags=CENTERED | EPS_IN_SQRT),
        bytes([4]) + b"".join(tensor(n_small(n), default_arrays((i, 0, 1, 2, 3)))
                              for i, n in enumerate([1, 17, 100, 256])))
    add("list-shared-grad", op_byte(LIST, MIXED), config(flags=LR_IN_MOMENTUM, mom=0.5),
        bytes([3]) + tensor(n_small(40), default_arrays())
        + tensor(n_small(40), [own(), alias(1), own(), own(), NULL])
        + tensor(n_small(40), [own(), alias(1), own(), own(), NULL]))
    add("err-list-cross-overlap", op_byte(LIST, SMALL), config(),
        bytes([2]) + tensor(n_small(32), [arena(0), own(), own(), NULL, NULL])
        + tensor(n_small(32), [own(), own(), arena(64), NULL, NULL]))
    add("list-empty-tensors", op_byte(LIST, SMALL), config(mom=0.9),
        bytes([3]) + tensor(n_small(0), [NULL] * 5) + tensor(n_small(20), default_arrays())
        + tensor(n_small(0), [wild(1)] * 5))
    add("err-list-null", op_byte(LIST, SMALL, null_list=True), config(), bytes([2]) + tensor(n_small(3), default_arrays()))
    add("list-count-0", op_byte(LIST, SMALL), config(), bytes([0]))
    add("err-list-huge-n", op_byte(LIST, SMALL), config(),
        bytes([2]) + tensor(n_small(10), default_arrays()) + tensor(n_huge(3), default_arrays()))
    add("both-single-and-list", op_byte(BOTH, RAW), config(flags=MAXIMIZE | EPS_IN_SQRT, wd=0.1),
        tensor(n_small(129), default_arrays((3, 2, 1, 0, 0)))
        + bytes([2]) + tensor(n_small(65), default_arrays()) + tensor(n_small(7), default_arrays()), data_len=256)
    return out


def main(argv):
    check = "--check" in argv
    args = [a for a in argv if a != "--check"]
    d = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    want = seeds()
    if check:
        have = sorted(os.listdir(d)) if os.path.isdir(d) else []
        if have != sorted(want):
            print("corpus files differ: run tests/fuzz/gen_corpus.py")
            return 1
        for name, body in want.items():
            with open(os.path.join(d, name), "rb") as f:
                if f.read() != body:
                    print("%s differs: run tests/fuzz/gen_corpus.py" % name)
                    return 1
        print("%d seeds up to date" % len(want))
        return 0
    os.makedirs(d, exist_ok=True)
    for name in os.listdir(d):
        os.remove(os.path.join(d, name))
    for name, body in want.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(body)
    print("wrote %d seeds to %s" % (len(want), d))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
