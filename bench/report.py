#!/usr/bin/python3
"""Turn the JSON of bench/rmsfuse_bench into report.md and PNG plots.

usage: report.py BENCH.JSON [OUTDIR] [--command "how the run was made"] [--stat best|median]

Each figure summarises the repetitions of one benchmark.  --stat best (the
default) takes the best repetition (the "max" aggregate of the rates):
interference from other work only ever slows a run down, so on a shared or
virtual machine the best of N is the steadiest estimate of what the code can
do, and it is applied alike to every implementation.  --stat median takes the
median.  The targets tables show both.  Without repetitions the single runs
are used.  The plots need matplotlib (Debian: python3-matplotlib); run this
with /usr/bin/python3.

Everything the report lists comes from the JSON: the ISA names from the
library (context rmsfuse_isa_names), the flag sets and their descriptions
from the benchmark (context flag_sets, flagset:<rule>/<name>), the bytes per
element from each result's counters, the mode of each flag set (context
flush_subnormal_flag_sets: the library paths run the presets, which set
RMSFUSE_FLUSH_SUBNORMAL; dispatched_exact clears it).  JSON of the
RMSProp-only benchmark (before the rules were added) and of runs before the
flag are read too.

Sparse gradients (sparse/<rule>/<flags>/<impl>/zero:<pct>/ws:<bytes>): a table
of ns per element and slowdown against the same implementation's dense step
per rule, implementation and size, the issue's target (50% zero gradients
within SPARSE_TARGET x the dense step, presets), and sparse_gradients.png.
Rows measured by another program can join that table: --python FILE (default:
python_bench.json beside BENCH.JSON, when it exists) reads the list under the
key "sparse" of that JSON, each record
    {"rule": "rmsprop" | "adagrad" | "sgd" | "adam"   (or "optimizer": the
                                                        torch class name),
     "impl": "torch loop", "zero_pct": 50, "elements": 8192,
     "ns_per_elem": 1.23  (or "best" / "median": seconds per step)}
and lists it as implementation "<impl>" ("torch: <impl>" when that does not
start with "torch") beside the C benchmark's rows of that rule, at their size
when the element counts match (else in a row of its own).

Storage types (storage/<rule>/<flags>/<combo>/<impl>/ws:<bytes>): per flag
set, each storage combination (param / gradient / state types) next to the
float32 step ("plain"): bytes per element, memory per parameter, its rate
against the roofline of exactly its traffic and against float32 (with the
ratio of bytes, what memory alone would give), against one core's bound (the
slower of the roofline, or sqrt + div floor, and its own time at the L2
size, where memory does not limit it) and against the roofline with as
much arithmetic as the step's at the L2 size (impl roofline_work), per
size class and ISA, and
at the largest size on every core (impl pool_t<k> against roofline_t<k>);
and storage_types.png.
"""
import argparse
import json
import math
import os
import re
import sys
from collections import defaultdict

# Implementations the benchmark adds to the library's ISAs.
OTHERS = ["dispatched", "dispatched_exact", "roofline", "peer_O2", "peer_native"]
CLASSES = ["L1", "L2", "L3", "DRAM"]
NAME_RE = re.compile(r"^([a-z0-9]+)/([a-z0-9_]+)/([A-Za-z0-9_]+)/ws:(\d+)$")
FLOOR_RE = re.compile(r"^floor/(sqrt_div|sqrt_div_grouped|newton_eps_in|newton_eps_out)/([a-z0-9_]+)$")
# threads/<rule>/<flags>/... (threads/<flags>/... before the rules: RMSProp)
THREADS_RE = re.compile(r"^threads/(?:([a-z0-9]+)/)?([a-z0-9_]+)/(pool|roofline)/t:(\d+)/ws:(\d+)$")
MULTI_RE = re.compile(r"^multi/([a-z0-9]+)/([a-z0-9_]+)/([a-z_]+)/tensors:(\d+)/n:(\d+)$")
MULTI_OLD_RE = re.compile(r"^multi/([a-z_]+)/tensors:(\d+)/n:(\d+)$")  # RMSProp momentum only
MULTI_IMPLS = ["step_multi", "step_loop", "plan", "pool", "flat"]
TRAIN_RE = re.compile(r"^train/([a-z0-9]+)/([a-z0-9_]+)/([a-z_]+)/tensors:(\d+)/n:(\d+)$")
TRAIN_IMPLS = ["step_multi", "step_ex_scale", "step_ex_norm"]
SPARSE_RE = re.compile(r"^sparse/([a-z0-9]+)/([a-z0-9_]+)/([A-Za-z0-9_]+)/zero:(\d+)/ws:(\d+)$")
SPARSE_IMPLS = ["dispatched", "dispatched_exact", "peer_native"]
STORAGE_RE = re.compile(r"^storage/([a-z0-9]+)/([a-z0-9_]+)/([a-z0-9_]+)/([A-Za-z0-9_]+)/ws:(\d+)$")
STORAGE_PLAIN = "plain"  # the float32 step of the plain API: the reference of every combination
SPARSE_IMPL_TITLES = {"dispatched": "preset (flush on)", "dispatched_exact": "exact IEEE (flag cleared)",
                      "peer_native": "-O3 -march=native loop (exact)"}
SPARSE_TARGET = 1.2  # issue 14: 50% zero gradients within 1.2 x the dense step, presets
SPARSE_TARGET_PCT = 50
THREADS_TARGET = 0.9
ROOFLINE_TARGET = 0.95
FLOOR_TARGET = 1.10
STAT_AGG = {"best": "max", "median": "median"}
# How each rule is written in titles (a rule missing here keeps its id).
RULE_TITLES = {"rmsprop": "RMSProp", "adagrad": "AdaGrad", "sgd": "SGD", "adam": "Adam / AdamW"}


def run_name(b):
    name = b.get("run_name", b["name"])
    return name[: -len("/real_time")] if name.endswith("/real_time") else name


def rule_of(fs):
    return fs.split("/")[0]


def rule_title(rule):
    return RULE_TITLES.get(rule, rule)


class Data:
    """One statistic of one run: results[fs][impl][target_ws], floors[isa], ...
    fs is a flag set's id, "<rule>/<name>"."""

    def __init__(self, entries, cv, stat, worst=None, best=None, median=None):
        self.stat = stat
        self.results = defaultdict(lambda: defaultdict(dict))
        self.floors = {}  # isa -> Gelem/s, the faster order
        self.newton = {}  # isa -> {"newton_eps_in"|"newton_eps_out": Gelem/s}: divider-free denominators
        self.floor_orders = {}  # isa -> order -> Gelem/s
        self.threads = defaultdict(lambda: defaultdict(dict))  # [fs][impl][threads] -> GB/s
        self.multi = defaultdict(lambda: defaultdict(dict))  # [fs][(count, n)][impl] -> Gelem/s
        self.train = defaultdict(lambda: defaultdict(dict))  # [fs][(count, n)][impl] -> Gelem/s
        # [fs][ws][impl][pct] -> {"ns", "n", "subnormal", "zero", "warmup", "fixed", "cv", "reps"}
        self.sparse = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
        # [fs][combo][impl][class ws] -> {"gelem", "gbs", "bytes", "mem", "ws_bytes", "cv", "reps"}
        self.storage = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
        self.storage_combos = []  # combinations in the order met
        self.bytes = {}  # fs -> STREAM bytes per element
        self.divider = {}  # fs -> 1 if the rule has a sqrt and a division per element
        self.threads_ws = 0
        self.order = []  # flag sets in the order met
        for name, b in entries.items():
            m = THREADS_RE.match(name)
            if m:
                fs = f"{m.group(1) or 'rmsprop'}/{m.group(2)}"
                self.threads[fs][m.group(3)][int(m.group(4))] = b["bytes_per_second"] / 1e9
                self.threads_ws = int(m.group(5))
                continue
            m = TRAIN_RE.match(name)
            if m:
                fs = f"{m.group(1)}/{m.group(2)}"
                self.train[fs][(int(m.group(4)), int(m.group(5)))][m.group(3)] = b["items_per_second"] / 1e9
                continue
            m = MULTI_RE.match(name)
            if m:
                fs = f"{m.group(1)}/{m.group(2)}"
                self.multi[fs][(int(m.group(4)), int(m.group(5)))][m.group(3)] = b["items_per_second"] / 1e9
                continue
            m = MULTI_OLD_RE.match(name)
            if m:
                self.multi["rmsprop/momentum"][(int(m.group(2)), int(m.group(3)))][m.group(1)] = \
                    b["items_per_second"] / 1e9
                continue
            m = STORAGE_RE.match(name)
            if m:
                fs, combo, impl, ws = f"{m.group(1)}/{m.group(2)}", m.group(3), m.group(4), int(m.group(5))
                if combo not in self.storage_combos:
                    self.storage_combos.append(combo)
                self.storage[fs][combo][impl][ws] = {
                    "gelem": b["items_per_second"] / 1e9, "gbs": b["bytes_per_second"] / 1e9,
                    "bytes": b.get("stream_bytes_per_elem"), "ws_bytes": b.get("ws_bytes"),
                    "divider": int(b.get("sqrt_div_per_elem", 1)),
                    "mem": {k: b.get(f"mem_{k}_bytes") for k in ("param", "extra", "grad", "state")},
                    "cv": cv.get(name, {}).get("items_per_second"), "reps": b.get("repetitions", 1),
                    # roofline_work: its time and the roofline's over the step's, the step and the roofline
                    # timed just before it in each repetition (the median over the repetitions, whatever the
                    # statistic: ratios of paired times); storage_paired reads them
                    "pair": ((median or {}).get(name) or b).get("pair_of_same_work"),
                    "pair_roof": ((median or {}).get(name) or b).get("pair_of_roofline")}
                continue
            m = SPARSE_RE.match(name)
            if m:
                fs, impl, pct, ws = f"{m.group(1)}/{m.group(2)}", m.group(3), int(m.group(4)), int(m.group(5))
                self.sparse[fs][ws][impl][pct] = {
                    "ns": 1e9 / b["items_per_second"], "n": int(b.get("n", 0)),
                    "subnormal": b.get("subnormal_share"), "zero": b.get("zero_share"),
                    "warmup": b.get("warmup_steps"), "fixed": b.get("warmup_fixed_point"),
                    "cv": cv.get(name, {}).get("items_per_second"), "reps": b.get("repetitions", 1)}
                continue
            m = FLOOR_RE.match(name)
            if m and m.group(1).startswith("newton"):
                self.newton.setdefault(m.group(2), {})[m.group(1)] = b["items_per_second"] / 1e9
                continue
            if m:
                # The floor is the faster order (see bench/floor.c).
                rate = b["items_per_second"] / 1e9
                self.floor_orders.setdefault(m.group(2), {})[m.group(1)] = rate
                self.floors[m.group(2)] = max(rate, self.floors.get(m.group(2), 0.0))
                continue
            m = NAME_RE.match(name)
            if m:
                fs, impl, target = f"{m.group(1)}/{m.group(2)}", m.group(3), int(m.group(4))
                if fs not in self.order:
                    self.order.append(fs)
                if "stream_bytes_per_elem" in b:
                    self.bytes[fs] = int(b["stream_bytes_per_elem"])
                self.divider[fs] = int(b.get("sqrt_div_per_elem", 1))
                self.results[fs][impl][target] = {
                    "gbs": b["bytes_per_second"] / 1e9,
                    "gelem": b["items_per_second"] / 1e9,
                    "ws": b.get("ws_bytes", target),
                    "n": b.get("n", 0),
                    "cv": cv.get(name, {}).get("items_per_second"),
                    # the slowest repetition's rate (GB/s), when the run has the "min" aggregate
                    "worst_gbs": (worst or {}).get(name, {}).get("bytes_per_second", 0.0) / 1e9 or None,
                    "best_gbs": (best or {}).get(name, {}).get("bytes_per_second", 0.0) / 1e9 or None,
                    "reps": b.get("repetitions", 1),
                }

    def r(self, fs, impl, t):
        return self.results.get(fs, {}).get(impl, {}).get(t)

    def get(self, fs, impl, t, key="gbs"):
        r = self.r(fs, impl, t)
        return r[key] if r else None

    def best_isa(self, fs, t, isas):
        """The fastest library path (any forced ISA or the dispatched one)."""
        best = (None, None)
        for impl in isas + ["dispatched"]:
            v = self.get(fs, impl, t)
            if v is not None and (best[1] is None or v > best[1]):
                best = (impl, v)
        return best

    def floor(self, fs, isa, t):
        """The in-cache floor of flag set fs on path `isa` at working set t, in
        ns per element, and what sets it: the sqrt+div floor at that path's
        width (rules with a divider) or the same-traffic roofline measured at
        t (the load/store limit), whichever is slower.  (None, None) when the
        run lacks one of them."""
        cands = []
        if self.divider.get(fs, 1):
            if not self.floors.get(isa):
                return None, None
            cands.append((1.0 / self.floors[isa], "sqrt+div"))
        roof = self.get(fs, "roofline", t, "gelem")
        if roof:
            cands.append((1.0 / roof, "roofline"))
        return max(cands) if cands else (None, None)


def load(path):
    with open(path) as f:
        data = json.load(f)
    ctx = data.get("context", {})
    if "cpu_model" in ctx:  # hwloc keeps the padding some CPUs put in the brand string
        ctx["cpu_model"] = " ".join(ctx["cpu_model"].split())
    agg = defaultdict(dict)  # aggregate name -> run name -> entry
    single, errors = defaultdict(list), {}
    for b in data["benchmarks"]:
        name = run_name(b)
        if b.get("error_occurred"):
            errors[name] = b.get("error_message", "skipped")
        elif b.get("run_type") == "aggregate":
            agg[b.get("aggregate_name")][name] = b
        else:
            single[name].append(b)
    stats = {}
    for stat, aggname in STAT_AGG.items():
        entries = dict(agg.get(aggname, {}))
        for name, runs in single.items():  # no aggregates: from the single runs
            if name not in entries:
                runs = sorted(runs, key=lambda r: r.get("items_per_second", 0.0))
                entries[name] = runs[-1] if stat == "best" else runs[len(runs) // 2]
        stats[stat] = Data(entries, agg.get("cv", {}), stat, agg.get("min"), agg.get("max"), agg.get("median"))
    classes = {}
    for part in ctx.get("size_classes_ws", "").split(","):
        if "=" in part:
            k, v = part.split("=")
            classes[k] = int(v)
    return ctx, stats, errors, classes


def isa_names(ctx, d, errors):
    """The library's ISA names, best last: from the context (the library's
    rmsfuse_isa_names()), else (older JSON) the implementations met that are
    not the benchmark's own."""
    if ctx.get("rmsfuse_isa_names"):
        return ctx["rmsfuse_isa_names"].split(",")
    names = [i for i in ctx.get("rmsfuse_isas_supported", "").split(",") if i]
    for by in d.results.values():
        for impl in by:
            if impl not in OTHERS and impl not in names:
                names.append(impl)
    for name in errors:
        m = NAME_RE.match(name)
        if m and m.group(3) not in OTHERS and m.group(3) not in names:
            names.append(m.group(3))
    return names


def flag_sets(ctx, d):
    """The flag sets with results, in the benchmark's order."""
    listed = [f for f in ctx.get("flag_sets", "").split(",") if f]
    return [f for f in listed if f in d.results] + [f for f in d.order if f not in listed]


def fmt_size(n):
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            x = n / div
            return f"{x:.0f} {unit}" if abs(x - round(x)) < 0.05 else f"{x:.1f} {unit}"
    return f"{n} B"


def ratio(a, b):
    return a / b if a is not None and b else None


def fr(x, digits=2):
    return "–" if x is None else f"{x:.{digits}f}"


def yes(ok):
    return "yes" if ok else "**no**"


# ---- targets ------------------------------------------------------------------
# Each target: (short column title, description, function(d, fs, ctx) ->
# (text, met) or None when the run has no data for it).
def t_dram_roofline(d, fs, classes, ctx, isas):
    dram = classes.get("DRAM")
    bi, bv = d.best_isa(fs, dram, isas)
    b = ratio(bv, d.get(fs, "roofline", dram))
    return None if b is None else (f"{fr(b)} ({bi})", b >= ROOFLINE_TARGET)


def t_native_noise(d, fs, classes, ctx, isas, impl="dispatched"):
    # Slower beyond noise: even the best repetition of the dispatched path is
    # slower than the worst of the peer's (with 5 repetitions each, a tie
    # separates like that by chance with probability 1/252).  The strict
    # comparison (best against best) is counted alongside.
    sep, n_sizes, below, both = [], 0, 0, 0
    for t in sorted(d.results[fs].get(impl, {})):
        rd, rp = d.r(fs, impl, t), d.r(fs, "peer_native", t)
        if not rd or not rp:
            continue
        both += 1
        below += rd["gbs"] < rp["gbs"]
        if not rd.get("best_gbs") or not rp.get("worst_gbs") or rd["reps"] < 3:
            continue
        n_sizes += 1
        if rd["best_gbs"] < rp["worst_gbs"]:
            sep.append(f"{fmt_size(t)} ({fr(rd['best_gbs'] / rp['worst_gbs'], 3)})")
    if not n_sizes:
        return None if not both else (f"< in {below} of {both} (1 run: noise untested)", below == 0)
    text = (f"none of {n_sizes}" if not sep else "slower at " + ", ".join(sep)) + f"; < in {below} of {n_sizes}"
    return text, not sep


def t_l1_floor(d, fs, classes, ctx, isas, impl="dispatched"):
    l1, active = classes.get("L1"), ctx.get("rmsfuse_active_isa", "")
    fl, what = d.floor(fs, active, l1)
    v = d.get(fs, impl, l1, "gelem")
    if fl is None or not v:
        return None
    tf = (1.0 / v) / fl
    return f"{fr(tf, 3)} ({what})", tf <= FLOOR_TARGET


def t_avx2_scalar(d, fs, classes, ctx, isas):
    l1 = classes.get("L1")
    s = ratio(d.get(fs, "avx2", l1), d.get(fs, "scalar", l1))
    if s is None:
        return None
    hw = ratio(d.floors.get("avx2"), d.floors.get("scalar")) if d.divider.get(fs, 1) else None
    return fr(s) + (f" (floors {fr(hw)})" if hw else ""), s >= 6.0


def t_o2(d, fs, classes, ctx, isas):
    dram = classes.get("DRAM")
    r = ratio(d.get(fs, "dispatched", dram), d.get(fs, "peer_O2", dram))
    bound = ratio(d.get(fs, "roofline", dram), d.get(fs, "peer_O2", dram))
    return None if r is None else (fr(r) + (f" (roofline {fr(bound)})" if bound else ""), r >= 2.0)


def t_pool(d, fs, classes, ctx, isas):
    by = d.threads.get(fs, {})
    pts = [(ratio(by.get("pool", {}).get(t), g), t) for t, g in sorted(by.get("roofline", {}).items())]
    pts = [(r, t) for r, t in pts if r is not None]
    if not pts:
        return None
    worst = min(pts)
    return f"min {fr(worst[0])} at {worst[1]} t", worst[0] >= THREADS_TARGET


TARGETS = [
    ("DRAM: best / roofline ≥ 0.95", "at the DRAM size, the fastest library path (a forced ISA or the dispatched "
     "one) against the same-traffic roofline", t_dram_roofline),
    ("dispatched vs -O3 native loop", "at every size, the dispatched path is not slower than the `-O3 -march=native` "
     "loop beyond noise: its best repetition is not below the loop's worst (the strict count of sizes where its "
     "figure is lower follows)", t_native_noise),
    ("L1: time/elem ≤ 1.10 × floor", "in L1, the dispatched path's time per element against the in-cache floor: "
     "the sqrt+div floor at the dispatched ISA's width for rules with a divider, or the same-traffic roofline "
     "in L1 (the load/store limit), whichever is slower (SGD: the roofline)", t_l1_floor),
    ("L1: avx2 ≥ 6 × scalar", "the first RMSProp issue's target, with the ratio of the two sqrt+div floors (the "
     "most any kernel can reach where both paths run at the divider's limit)", t_avx2_scalar),
    ("DRAM: ≥ 2 × -O2 loop", "at the DRAM size, the dispatched path against the `-O2` baseline loop (with the "
     "roofline's own ratio: the most memory allows)", t_o2),
    (f"pool ≥ {THREADS_TARGET} × roofline", "on 1..all cores, the step on rmsfuse_pool against the roofline run by "
     "the same workers", t_pool),
]


def t_dram_exact(d, fs, classes, ctx, isas):
    dram = classes.get("DRAM")
    b = ratio(d.get(fs, "dispatched_exact", dram), d.get(fs, "roofline", dram))
    return None if b is None else (fr(b), b >= ROOFLINE_TARGET)


def t_flush_cost(d, fs, classes, ctx, isas):
    # dispatched (flush) / dispatched_exact in L1, where the extra operations
    # would show: information, no target.
    l1 = classes.get("L1")
    r = ratio(d.get(fs, "dispatched", l1), d.get(fs, "dispatched_exact", l1))
    return None if r is None else (fr(r, 3), True)


# The same targets for the exact IEEE configuration (the flag cleared), which
# the benchmark measures at the class sizes only.
TARGETS_EXACT = [
    ("DRAM: exact / roofline ≥ 0.95", "at the DRAM size, `dispatched_exact` against the same-traffic roofline",
     t_dram_exact),
    ("exact vs -O3 native loop", "at the class sizes, `dispatched_exact` is not slower than the "
     "`-O3 -march=native` loop beyond noise: the same arithmetic on both sides",
     lambda d, fs, c, x, i: t_native_noise(d, fs, c, x, i, "dispatched_exact")),
    ("L1: exact time/elem ≤ 1.10 × floor", "in L1, `dispatched_exact`'s time per element against the in-cache "
     "floor", lambda d, fs, c, x, i: t_l1_floor(d, fs, c, x, i, "dispatched_exact")),
]


def target_rows(d, classes, ctx, present, isas, targets=None):
    """[fs] -> list of (text, met) or None, one per TARGETS entry."""
    return {fs: [t[2](d, fs, classes, ctx, isas) for t in (targets or TARGETS)] for fs in present}


def mode_line(ctx, present):
    """Which arithmetic the library paths of the main tables use."""
    listed = ctx.get("flush_subnormal_flag_sets")
    if listed is None:
        return ("Mode: exact IEEE everywhere (a run from before `RMSFUSE_FLUSH_SUBNORMAL`, or that does not "
                "say).")
    flush = [f for f in listed.split(",") if f in present]
    exact = [f for f in present if f not in flush]
    if not flush:
        return "Mode: every flag set in exact IEEE arithmetic (`RMSFUSE_FLUSH_SUBNORMAL` off)."
    text = ("Mode: the library paths (every ISA, `dispatched`, the pool, many tensors) run the flag sets as users "
            "get them: from the PyTorch preset, which sets `RMSFUSE_FLUSH_SUBNORMAL` (state below FLT_MIN becomes "
            "0; docs/math.md)" + ("" if not exact else f", except {', '.join(exact)} (exact IEEE)") + ". "
            "`dispatched_exact` is the dispatched path with the flag cleared (exact IEEE arithmetic, measured at "
            "the class sizes). The `-O3 -march=native` and `-O2` loops and the roofline are exact IEEE loops "
            "(no flush). With dense gradients no state is subnormal, so both modes compute the same bits here; "
            "the flush's cost is its extra operations.")
    return text


def fixed_cost_fits(d, ctx, present):
    """Fit time/call = t0 + n * c (relative errors) over the working sets up to
    half of L2, where the kernels are compute-bound and time is linear in n."""
    l2 = int(ctx.get("cache_l2_bytes", 0)) or (1 << 20)
    fits = []
    for fs in present:
        for impl in ("dispatched", "peer_native"):
            pts = [(r["n"], r["n"] / r["gelem"]) for t, r in d.results[fs].get(impl, {}).items()
                   if t <= l2 // 2 and r["n"]]
            if len(pts) < 3:
                continue
            wts = [1.0 / (p[1] * p[1]) for p in pts]
            sw = sum(wts)
            mx = sum(w * p[0] for w, p in zip(wts, pts)) / sw
            my = sum(w * p[1] for w, p in zip(wts, pts)) / sw
            sxx = sum(w * (p[0] - mx) ** 2 for w, p in zip(wts, pts))
            c = sum(w * (p[0] - mx) * (p[1] - my) for w, p in zip(wts, pts)) / sxx if sxx else 0.0
            fits.append((fs, impl, my - c * mx, c))
    return fits


# ---- sparse gradients ------------------------------------------------------------
def sparse_size_label(ws, by_impl, classes):
    """'in cache, 8192 elements (128 KiB)' / 'DRAM, ...' / '8192 elements (torch)'."""
    if ws < 0:
        return f"{-ws} elements"
    n = next((r["n"] for bp in by_impl.values() for r in bp.values() if r.get("n")), 0)
    return f"{sparse_where(ws, classes)}: {n} elements ({fmt_size(ws)})"


def sparse_ratio(by_pct, pct, key="ns"):
    """Time per element at pct% zero gradients over the dense one (the same implementation)."""
    a, b = by_pct.get(pct), by_pct.get(0)
    return ratio(a.get(key) if a else None, b.get(key) if b else None)


SPARSE_RULE_ORDER = ["rmsprop", "adam", "sgd", "adagrad"]


def sparse_order(d):
    """The sparse flag sets, RMSProp, Adam, SGD, AdaGrad first."""
    rank = lambda fs: (SPARSE_RULE_ORDER.index(rule_of(fs)) if rule_of(fs) in SPARSE_RULE_ORDER
                       else len(SPARSE_RULE_ORDER), fs)
    return sorted(d.sparse, key=rank)


def sparse_where(ws, classes):
    return "DRAM" if ws == classes.get("DRAM") else "in cache" if ws <= classes.get("L2", 1 << 20) else "L3"


def sparse_targets(stats, primary, classes):
    """Per sparse flag set and size: the preset's 50% / 0% ratio under each statistic, the exact
    configuration's and the loop's.  [(fs, ws, label-less dict)]"""
    d = stats[primary]
    out = []
    for fs in sparse_order(d):
        by_ws = d.sparse[fs]
        for ws in sorted(w for w in by_ws if w >= 0):
            row = {"fs": fs, "ws": ws, "by": by_ws[ws], "where": sparse_where(ws, classes)}
            for stat, dd in stats.items():
                bp = dd.sparse.get(fs, {}).get(ws, {}).get("dispatched", {})
                row[stat] = sparse_ratio(bp, SPARSE_TARGET_PCT)
            row["exact"] = sparse_ratio(by_ws[ws].get("dispatched_exact", {}), SPARSE_TARGET_PCT)
            row["peer"] = sparse_ratio(by_ws[ws].get("peer_native", {}), SPARSE_TARGET_PCT)
            row["dense_ns"] = (by_ws[ws].get("dispatched", {}).get(0) or {}).get("ns")
            row["half_ns"] = (by_ws[ws].get("dispatched", {}).get(SPARSE_TARGET_PCT) or {}).get("ns")
            if row[primary] is not None:
                out.append(row)
    return out


def sparse_target_text(sp, reps, primary="best"):
    """The issue's target, per rule: a table, then one line per rule."""
    lines = [f"| flag set | size | preset dense ns/elem | preset {SPARSE_TARGET_PCT}% zero ns/elem | "
             f"{SPARSE_TARGET_PCT}% / dense (best) | met | median | met | exact IEEE: {SPARSE_TARGET_PCT}% / dense | "
             f"-O3 loop: {SPARSE_TARGET_PCT}% / dense |",
             "|---|---|---:|---:|---:|:---:|---:|:---:|---:|---:|"]
    for r in sp:
        b, m = r.get("best"), r.get("median")
        lines.append(f"| {r['fs']} | {r['where']} ({fmt_size(r['ws'])}) | {fr(r['dense_ns'], 3)} | "
                     f"{fr(r['half_ns'], 3)} | {fr(b)} | {'–' if b is None else yes(b <= SPARSE_TARGET)} | "
                     f"{fr(m) if reps > 1 else '–'} | {'–' if m is None or reps == 1 else yes(m <= SPARSE_TARGET)} | "
                     f"{fr(r['exact'])} | {fr(r['peer'])} |")
    lines.append("")
    by_fs = {}
    for r in sp:
        by_fs.setdefault(r["fs"], []).append(r)
    for fs, rs in by_fs.items():
        ok = all(r[primary] is not None and r[primary] <= SPARSE_TARGET for r in rs)
        lines.append(f"- **{fs}**: " + ", ".join(f"{fr(r[primary])} × ({r['where']})" for r in rs)
                     + f": {'met' if ok else '**not met**'}")
    return "\n".join(lines)


def sparse_markdown(ctx, stats, primary, classes, pngs, reps):
    d = stats[primary]
    out = []
    w = out.append
    w("## Sparse gradients\n")
    w("The steady-state step when a share of the gradient entries is exactly 0 (a fixed pseudo-random mask), "
      "after a warm-up that drives those elements' decaying state into the subnormal range, where most CPUs "
      "compute many times slower: " + ctx.get("sparse_warmup", "see bench/rmsfuse_bench.c") + ". "
      "Implementations: `dispatched` = the preset as users get it (`RMSFUSE_FLUSH_SUBNORMAL`: the state "
      "becomes 0 instead), `dispatched_exact` = the same with the flag cleared (exact IEEE), `peer_native` = "
      "the `-O3 -march=native` loop (exact IEEE, no flush: the compiler's best exact loop). Each cell: ns per "
      "element and, in brackets, the time over the same implementation's dense (0%) step"
      + (" (best of the repetitions)." if primary == "best" else " (medians).") + "\n")
    for png in pngs:
        if png.startswith("sparse"):
            w(f"![{png}]({png})\n")
    for fs in sparse_order(d):
        by_ws = d.sparse[fs]
        pcts = sorted({p for bi in by_ws.values() for bp in bi.values() for p in bp})
        w(f"### {fs}\n")
        if ctx.get(f"flagset:{fs}"):
            w(f"{ctx[f'flagset:{fs}']}.\n")
        w("| size | implementation | " + " | ".join(f"{p}% zero" for p in pcts)
          + " | elements with subnormal state (highest share) |")
        w("|---|---|" + "---:|" * len(pcts) + "---:|")
        notes = {}
        for ws in sorted(by_ws, key=lambda x: (x < 0, abs(x))):
            bi = by_ws[ws]
            label = sparse_size_label(ws, bi, classes)
            impls = [i for i in SPARSE_IMPLS if i in bi] + sorted(i for i in bi if i not in SPARSE_IMPLS)
            for impl in impls:
                bp = bi[impl]
                cells = []
                for p in pcts:
                    r = bp.get(p)
                    cells.append("–" if not r else f"{r['ns']:.3f} ({fr(sparse_ratio(bp, p))}×)")
                top = bp.get(max(pcts)) or {}
                sub = top.get("subnormal")
                w(f"| {label} | {SPARSE_IMPL_TITLES.get(impl, impl)} | " + " | ".join(cells)
                  + f" | {'–' if sub is None else f'{sub:.0%}'} |")
            for impl in ("dispatched", "dispatched_exact"):
                for p, r in sorted(bi.get(impl, {}).items()):
                    if r.get("warmup") and p > 0:
                        notes.setdefault(impl, []).append(
                            f"{r['warmup']:.0f}" + ("" if r.get("fixed") else " (**stopped before the fixed point**)"))
        w("")
        if notes:
            w(f"Warm-up steps (dense and masked; at {', '.join(f'{p}%' for p in pcts if p > 0)} zero, each size): "
              + "; ".join(f"{SPARSE_IMPL_TITLES[i].split(' (')[0]} {', '.join(dict.fromkeys(v))}"
                          for i, v in notes.items()) + ".\n")
    return "\n".join(out)


def load_python_sparse(path, d):
    """Rows of another program's sparse benchmark (python_bench.json's "sparse" list, the format in this
    file's docstring) into d.sparse as implementation "torch: <impl>"; returns how many."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return 0
    recs = data.get("sparse") if isinstance(data, dict) else None
    if not isinstance(recs, list):
        return 0
    names = {"rmsprop": "rmsprop", "adagrad": "adagrad", "sgd": "sgd", "adam": "adam", "adamw": "adam"}
    k = 0
    for r in recs:
        try:
            rule = names.get(str(r.get("rule") or r.get("optimizer", "")).lower())
            n, pct = int(r["elements"]), int(r["zero_pct"])
            ns = r.get("ns_per_elem")
            if ns is None:
                sec = r.get("best" if d.stat == "best" else "median")
                ns = float(sec) / n * 1e9 if sec is not None else None
        except (KeyError, TypeError, ValueError):
            continue
        if not rule or ns is None:
            continue
        fs = next((f for f in d.sparse if rule_of(f) == rule), f"{rule}/torch")
        ws = next((x for x, bi in d.sparse.get(fs, {}).items()
                   if any(rr.get("n") == n for bp in bi.values() for rr in bp.values())), -n)
        impl = str(r.get("impl", "?"))
        d.sparse[fs][ws][impl if impl.startswith("torch") else f"torch: {impl}"][pct] = {"ns": float(ns), "n": n}
        k += 1
    return k


# ---- storage types ----------------------------------------------------------------
def storage_order(d, ctx):
    """The flag sets and combinations with storage results: the benchmark's order, "plain" first."""
    listed = [f for f in ctx.get("storage_flag_sets", "").split(",") if f]
    fss = [f for f in listed if f in d.storage] + [f for f in d.storage if f not in listed]
    order = [c for c in ctx.get("storage_combos", "").split(",") if c]
    combos = [STORAGE_PLAIN] + [c for c in order + d.storage_combos if c != STORAGE_PLAIN]
    combos = list(dict.fromkeys(combos))
    return fss, [c for c in combos if any(c in d.storage[f] for f in fss)]


def storage_title(ctx, combo):
    """How a combination is written: the benchmark's description (context storage:<combo>), else its id."""
    return ctx.get(f"storage:{combo}", combo)


def storage_largest(d, fs, classes):
    """The largest class size with storage results for flag set fs (the DRAM one in a full run)."""
    sizes = {ws for by in d.storage[fs].values() for bi in by.values() for ws in bi}
    cls = [classes[c] for c in CLASSES if c in classes and classes[c] in sizes]
    return max(cls) if cls else (max(sizes) if sizes else None)


STORAGE_CORES_RE = re.compile(r"^(pool|roofline)_t(\d+)$")


def storage_cores(bi, ws):
    """A combination's results on the pool of every core at size ws: (threads, pool, roofline), or None."""
    ts = {int(m.group(2)) for m in (STORAGE_CORES_RE.match(i) for i in bi) if m and ws in bi[m.group(0)]}
    if not ts:
        return None
    t = max(ts)
    return t, bi.get(f"pool_t{t}", {}).get(ws), bi.get(f"roofline_t{t}", {}).get(ws)


def storage_paired(bi, ws):
    """A combination's paired fractions at size ws (roofline_work: the step, the roofline and the roofline
    with the step's own arithmetic timed one after the other): (roofline's time / the step's, same-work
    roofline's time / the step's), each None where not measured."""
    rw = bi.get("roofline_work", {}).get(ws, {})
    return rw.get("pair_roof"), rw.get("pair")


def storage_markdown(ctx, stats, primary, classes, pngs, isas):
    d = stats[primary]
    fss, combos = storage_order(d, ctx)
    out = []
    w = out.append
    active = ctx.get("rmsfuse_active_isa", "")
    w("## Storage types\n")
    w("A step over arrays stored in narrower types (`rmsfuse_<rule>_step_typed`; docs/math.md, \"Storage "
      "types\"), each combination of param / gradient / state types over the same n elements as the float32 "
      "step (`plain`: `rmsfuse_<rule>_step` over float32 arrays). Bytes per element in the STREAM convention: "
      "the gradient read, param and state read and written; a param with master weights written only (2) and "
      "its float32 master read and written (8); a split bf16 param both halves read and written; an 8-bit "
      "state array 1 + 1 bytes and its block scale 8 bytes per 256 elements. `roofline`: a loop moving exactly "
      "those bytes, each array in its own width (bench/roofline.c, `-O3 -march=native`), in the same run; "
      "`roofline_work` (at the largest size): that loop with as much float arithmetic interleaved as the "
      "step's own at the L2 size, the step and the roofline timed beside it in each repetition (its ratios: "
      "the median of the repetitions'). "
      "Memory: bytes per parameter the arrays take (param as the model holds it; extra = the optimizer's "
      "master copy or split trail; 8-bit state 1 + 4/256 per array). The size classes are the float32 "
      "working set of those n elements; a narrower combination's own is smaller. "
      + ("Best of the repetitions." if primary == "best" else "Medians of the repetitions.") + "\n")
    for png in pngs:
        if png.startswith("storage"):
            w(f"![{png}]({png})\n")
    # Memory per parameter, every flag set.
    w("### Memory per parameter (bytes)\n")
    w("| storage | param | extra | grad | " + " | ".join(f"{fs}: state (all arrays)" for fs in fss) + " |")
    w("|---|---:|---:|---:|" + "---:|" * len(fss))
    for combo in combos:
        mem = None
        cells = []
        for fs in fss:
            r = next((x for bi in d.storage[fs].get(combo, {}).values() for x in bi.values()), None)
            if r and r["mem"].get("param") is not None:
                mem = mem or r["mem"]
                m = r["mem"]
                tot = sum(m[k] for k in ("param", "extra", "grad", "state"))
                cells.append(f"{m['state']:.3g} ({tot:.3g})")
            else:
                cells.append("–")
        if mem:
            w(f"| `{combo}`: {storage_title(ctx, combo)} | {mem['param']:.3g} | {mem['extra']:.3g} | "
              f"{mem['grad']:.3g} | " + " | ".join(cells) + " |")
    w("")
    met_all, n_all, met_cores, n_cores, met_bound, n_bound, met_work, n_work = 0, 0, 0, 0, 0, 0, 0, 0
    for fs in fss:
        by = d.storage[fs]
        big = storage_largest(d, fs, classes)
        where = next((c for c in CLASSES if classes.get(c) == big), fmt_size(big) if big else "?")
        w(f"### {fs}: at the {where} size ({fmt_size(big) if big else '?'} of float32)\n")
        if ctx.get(f"flagset:{fs}"):
            w(f"{ctx[f'flagset:{fs}']}.\n")
        ref = by.get(STORAGE_PLAIN, {})
        ref_d = ref.get("dispatched", {}).get(big)
        ref_r = ref.get("roofline", {}).get(big)
        isa_cols = [i for i in isas if any(big in by[c].get(i, {}) for c in by)]
        flo = d.floors.get(active)
        div = next((r["divider"] for bi in by.values() for x in bi.values() for r in x.values()), 1)
        # every core: the typed plans on the pool, against the roofline on the same workers and the
        # float32 typed combination (the first) on the pool
        cores = {c: storage_cores(bi, big) for c, bi in by.items()}
        tcores = max((x[0] for x in cores.values() if x), default=0)
        ref_cn = next((c for c in combos if c != STORAGE_PLAIN and cores.get(c)), None)
        ref_c = cores[ref_cn][1] if ref_cn else None
        ccols = [f"{tcores} cores: ns/elem", "/ roofline", "/ float32"] if tcores else []
        # the unfused step (convert to float32 copies, the float32 step, convert back) at this size
        ucols = ["unfused ns/elem", "typed speed-up over unfused"] \
            if any(big in bi.get("unfused", {}) for bi in by.values()) else []
        # the step's traffic rate where memory does not limit it (the L2 size): the most bandwidth one core can use
        l2 = classes.get("L2") if classes.get("L2") != big else None
        gcols = ["roofline GB/s", "GB/s at L2", "one-core bound ns/elem", "/ bound"] \
            if l2 and any(l2 in bi.get("dispatched", {}) for bi in by.values()) else []
        # the roofline with the step's own arithmetic (roofline_work): what one core gives for its traffic
        # and as much arithmetic as the step does at the L2 size
        wcols = ["same-work roofline ns/elem", "/ same-work"] \
            if any(big in bi.get("roofline_work", {}) for bi in by.values()) else []
        w("| storage | B/elem | ns/elem | roofline ns/elem | / roofline | limit ns/elem | / limit | / float32 | "
          "f32 bytes / bytes | roofline / f32 roofline | "
          + " | ".join(ucols + gcols + wcols + ccols + [f"{i} / roofline" for i in isa_cols]) + " |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
          + "---:|" * (len(ucols) + len(gcols) + len(wcols) + len(ccols) + len(isa_cols)))
        for combo in combos:
            bi = by.get(combo)
            if not bi:
                continue
            rd, rr = bi.get("dispatched", {}).get(big), bi.get("roofline", {}).get(big)
            b = (rd or rr or {}).get("bytes")
            bref = (ref_d or ref_r or {}).get("bytes")
            # paired where measured (roofline_work: the step and the roofline timed one after the other in
            # each repetition, the median of the ratios), else the two benchmarks' rates
            pair_roof, pair_work = storage_paired(bi, big)
            fr_roof = pair_roof or ratio(rd and rd["gelem"], rr and rr["gelem"])
            # the limit: the slower of the roofline and the sqrt + div floor (rules with a divider)
            lim = []
            if rr:
                lim.append((1 / rr["gelem"], "roofline"))
            if flo and div:
                lim.append((1 / flo, "sqrt+div"))
            lim = max(lim) if lim else (None, None)
            of_lim = fr_roof if pair_roof and lim[1] == "roofline" else ratio(lim[0], rd and 1 / rd["gelem"])
            if of_lim is not None and combo != STORAGE_PLAIN:
                n_all += 1
                met_all += of_lim >= ROOFLINE_TARGET
            cells = [f"{b:.4g}" if b else "–", fr(rd and 1 / rd["gelem"], 3), fr(rr and 1 / rr["gelem"], 3),
                     fr(fr_roof), f"{lim[0]:.3f} ({lim[1]})" if lim[0] else "–", fr(of_lim),
                     fr(ratio(rd and rd["gelem"], ref_d and ref_d["gelem"])), fr(ratio(bref, b)),
                     fr(ratio(rr and rr["gelem"], ref_r and ref_r["gelem"]))]
            if ucols:
                ru = bi.get("unfused", {}).get(big)
                cells += [fr(ru and 1 / ru["gelem"], 3), fr(ratio(rd and rd["gelem"], ru and ru["gelem"]))]
            if gcols:
                # one core's bound: the slower of the limit and the step's own time at the L2 size, where
                # memory does not limit it (its arithmetic on one core)
                r2 = bi.get("dispatched", {}).get(l2)
                bound = max(lim[0] or 0, r2 and 1 / r2["gelem"] or 0) or None
                of_bound = of_lim if bound and bound == lim[0] else ratio(bound, rd and 1 / rd["gelem"])
                if of_bound is not None and combo != STORAGE_PLAIN:
                    n_bound += 1
                    met_bound += of_bound >= ROOFLINE_TARGET
                cells += [fr(rr and rr["gbs"], 1), fr(r2 and r2["gbs"], 1),
                          f"{bound:.3f} ({'in L2' if r2 and bound > (lim[0] or 0) else lim[1]})" if bound else "–",
                          fr(of_bound)]
            if wcols:
                rw = bi.get("roofline_work", {}).get(big)
                # paired: the step timed just before the roofline in each repetition (else the two benchmarks)
                of_work = pair_work or ratio(rd and rd["gelem"], rw and rw["gelem"])
                if of_work is not None:
                    n_work += 1
                    met_work += of_work >= ROOFLINE_TARGET
                cells += [fr(rw and 1 / rw["gelem"], 3), fr(of_work)]
            if tcores:
                x = cores.get(combo)
                pc, rc = (x[1], x[2]) if x else (None, None)
                of_c = ratio(pc and pc["gelem"], rc and rc["gelem"])
                if of_c is not None:
                    n_cores += 1
                    met_cores += of_c >= ROOFLINE_TARGET
                cells += [fr(pc and 1 / pc["gelem"], 3), fr(of_c), fr(ratio(pc and pc["gelem"], ref_c and ref_c["gelem"]))]
            for i in isa_cols:
                ri = bi.get(i, {}).get(big)
                cells.append(fr(ratio(ri and ri["gelem"], rr and rr["gelem"])))
            w(f"| `{combo}` | " + " | ".join(cells) + " |")
        w("")
        w(f"(/ roofline: the roofline's time over the step's"
          + (", the two timed one after the other in each repetition (in `roofline_work`), the median of "
             "those ratios over the repetitions, so that the machine's changes of memory speed cancel"
             if any(storage_paired(bi, big)[0] for bi in by.values()) else "")
          + f"; limit: the slower of the roofline and the sqrt + div floor at {active} width"
          + (f", {1 / flo:.3f} ns/elem" if flo and div else ", none for this rule" if not div else ", not measured")
          + "; / limit: the limit's time over the step's; / float32: the rate over the float32 step's, against "
          "f32 bytes / bytes, what the traffic alone would give"
          + ("; unfused: each array not in float32 converted into a float32 copy of the tensor "
             "(rmsfuse_convert_to_f32), the float32 step over the copies, and what it wrote converted back "
             "(rmsfuse_convert_from_f32), the same bits in three passes over memory, as a framework without "
             "typed steps does it (bitsandbytes' CPU path for 8-bit state; same bits as the typed step: "
             + (lambda b: b if b.startswith(("yes", "?")) else f"**{b}**")(
                 ctx.get("storage_unfused_bitexact_with_typed", "?"))
             + "); typed speed-up: its time over the typed step's" if ucols else "")
          + ("; GB/s at L2: the step's traffic rate at the L2 size, where memory does not limit it: the most "
             "memory bandwidth one core can use for it, so at this size it can reach its roofline only where that is "
             "above the roofline's GB/s; one-core bound: the slower of the limit and the step's own time at the L2 "
             "size (in L2: its arithmetic on one core, slower than memory, so that one core cannot reach the "
             "roofline with this code), / bound: the bound's time over the step's" if gcols else "")
          + ("; same-work roofline: the roofline's streams with float arithmetic interleaved, as much as makes "
             "it take the step's own time at the L2 size (found by timing in this run): what one core and this "
             "memory give for the step's traffic and as much arithmetic, where the one-core bound assumes they "
             "overlap fully; / same-work: its time over the step's, the step timed just before it in each "
             "repetition, the median over the repetitions" if wcols else "")
          + (f"; {tcores} cores: the typed plan run by rmsfuse_pool_run_plan on {tcores} workers, against the "
             f"roofline run by the same workers over the same split, and against `{ref_cn}` "
             "on the pool" if tcores else "") + ".)\n")
        # Every class size: ns per element and the fraction of the roofline.
        cols = [c for c in CLASSES if c in classes and any(classes[c] in bi.get("dispatched", {})
                                                         for bi in by.values())]
        if cols:
            w("ns per element of `dispatched` at each size class (in brackets: its fraction of the same-traffic "
              "roofline, and its time over the float32 step's)"
              + (f"; the sqrt + div floor at {active} width is {1 / flo:.3f} ns/elem" if flo and div else "")
              + ":\n")
            w("| storage | " + " | ".join(f"{c} ({fmt_size(classes[c])})" for c in cols) + " |")
            w("|---|" + "---:|" * len(cols))
            for combo in combos:
                bi = by.get(combo)
                if not bi:
                    continue
                cells = []
                for c in cols:
                    t = classes[c]
                    rd, rr = bi.get("dispatched", {}).get(t), bi.get("roofline", {}).get(t)
                    rp = ref.get("dispatched", {}).get(t)
                    if not rd:
                        cells.append("–")
                        continue
                    cells.append(f"{1 / rd['gelem']:.3f} ({fr(ratio(rd['gelem'], rr and rr['gelem']))}, "
                                 f"{fr(ratio(rp and rp['gelem'], rd['gelem']))} ×)")
                w(f"| `{combo}` | " + " | ".join(cells) + " |")
            w("")
    if n_all:
        w(f"Target: a typed step at ≥ {ROOFLINE_TARGET} × its limit (the roofline of its own traffic, or the "
          f"sqrt + div floor where that is slower) at the largest size: met by {met_all} of {n_all} "
          "combinations (every flag set)"
          + (f"; on every core (the pool, against the roofline on the same workers), by {met_cores} of "
             f"{n_cores}" if n_cores else "")
          + (f"; on one core against its one-core bound (the slower of the limit and the step's own time at the "
             f"L2 size), by {met_bound} of {n_bound}" if n_bound else "")
          + (f"; on one core against the roofline with its own arithmetic (same-work), by {met_work} of {n_work}"
             if n_work else "") + ".\n")
    noisy = sorted(((r["cv"], f"{fs}/{c}/{i}/{fmt_size(t)}") for fs in fss for c, bi in d.storage[fs].items()
                    for i, bt in bi.items() for t, r in bt.items() if r.get("cv") is not None and r["cv"] > 0.05),
                   reverse=True)
    if noisy:
        tot = sum(1 for fs in fss for bi in d.storage[fs].values() for bt in bi.values() for r in bt.values()
                  if r.get("cv") is not None)
        w(f"Storage-type noise: {len(noisy)} of {tot} results vary by more than 5% (worst: "
          + ", ".join(f"{n} {c * 100:.0f}%" for c, n in noisy[:5]) + ").\n")
    return "\n".join(out)


# ---- the Markdown ---------------------------------------------------------------
def markdown(ctx, stats, primary, errors, classes, command, pngs):
    d = stats[primary]
    other = "median" if primary == "best" else "best"
    isas = isa_names(ctx, d, errors)
    present = flag_sets(ctx, d)
    rules = list(dict.fromkeys(rule_of(fs) for fs in present))
    out = []
    w = out.append
    caches = [int(ctx.get(f"cache_{k}_bytes", 0)) for k in ("l1d", "l2", "l3")]
    load_avg = ctx.get("load_avg", [])
    reps = max([r["reps"] for fs in d.results.values() for by in fs.values() for r in by.values()]
               + [r.get("reps", 1) for bw in d.sparse.values() for bi in bw.values() for bp in bi.values()
                  for r in bp.values()]
               + [r["reps"] for bc in d.storage.values() for bi in bc.values() for bt in bi.values()
                  for r in bt.values()], default=1)
    active = ctx.get("rmsfuse_active_isa", "")
    w("# rmsfuse benchmark report\n")
    w(f"- CPU: {ctx.get('cpu_model', '?')}, {ctx.get('num_cpus', '?')} CPUs, "
      f"caches L1d {fmt_size(caches[0])} / L2 {fmt_size(caches[1])} / L3 {fmt_size(caches[2])} "
      f"({ctx.get('cache_source', '?')}); thread bound to {ctx.get('bound_to', '?')}")
    w(f"- host {ctx.get('host_name', '?')}, {ctx.get('date', '?')}, load average at start "
      + ", ".join(f"{x:.2f}" for x in load_avg))
    w(f"- rmsfuse {ctx.get('rmsfuse_version', '?')}, dispatched ISA **{active or '?'}**, "
      f"usable: {ctx.get('rmsfuse_isas_supported', '?')} (the library's ISAs: {', '.join(isas)}); "
      f"{ctx.get('compiler', '?')}, {ctx.get('build_type', '?')} build")
    bitexact = ctx.get("peers_bitexact_with_library", "?")
    w(f"- peers: `peer_O2` = `{ctx.get('peer_O2_flags', '?')}`, `peer_native` = "
      f"`{ctx.get('peer_native_flags', '?')}`" + (f", {ctx['peer_source']}" if ctx.get("peer_source") else "")
      + f"; same bits as the library: " + (bitexact if bitexact.startswith(("yes", "?")) else f"**{bitexact}**")
      + f"; roofline `{ctx.get('roofline_flags', '?')}`")
    if ctx.get("config"):
        w(f"- update: {ctx['config']}")
    if present:
        w("- " + mode_line(ctx, present))
    if command:
        w(f"- command: `{command}`")
    w("")
    w("GB/s counts bytes the STREAM way: explicit reads + writes per element, the gradient read and every other "
      "array of the flag set read and written in place (bytes per element in each heading). The working set "
      "counts every array once. Size classes: working set = half of L1d / L2 / L3, and 8 × L3 for DRAM. "
      + ("One run per benchmark, no repetitions: no noise estimate." if reps == 1
         else f"Figures are the best of {reps} repetitions (the targets are given for the medians too)."
         if primary == "best" else f"Figures are medians of {reps} repetitions.") + "\n")
    if ctx.get("library_build_type") == "debug":
        w("Google Benchmark printed \"Library was built as DEBUG\": Debian builds libbenchmark without NDEBUG, so "
          "the harness's own loop keeps its assertions. Only the harness: rmsfuse and the benchmark's code are "
          f"compiled here ({ctx.get('build_type', '?')}). An empty timed iteration of that library costs about "
          "0.5 ns (measured on AMD Zen 4, docs/performance.md), under 1% of the shortest step timed here, and "
          "the same for every implementation compared.\n")

    # At a glance: the targets, one row per flag set (a run of only the
    # sparse or storage benchmarks has none of the main ones).
    sp = sparse_targets(stats, primary, classes)
    if present or sp:
        w("## Targets\n")
    if present:
        for stat in (primary, other) if reps > 1 else (primary,):
            rows = target_rows(stats[stat], classes, ctx, present, isas)
            cols = [i for i in range(len(TARGETS)) if any(rows[fs][i] for fs in present)]
            if not cols:
                continue
            if reps > 1:
                w(f"{'Best of the repetitions' if stat == 'best' else 'Medians'}:\n")
            w("| flag set | " + " | ".join(TARGETS[i][0] for i in cols) + " |")
            w("|---|" + "---|" * len(cols))
            for fs in present:
                cells = []
                for i in cols:
                    c = rows[fs][i]
                    cells.append("–" if c is None else f"{c[0]} {yes(c[1])}")
                w(f"| {fs} | " + " | ".join(cells) + " |")
            w("")
        for title, desc, _ in TARGETS:
            w(f"- **{title}**: {desc}.")
        w("")
        w("These targets measure the presets (`RMSFUSE_FLUSH_SUBNORMAL` on: every library path) against exact "
          "IEEE loops (the `-O3 -march=native` and `-O2` loops, the roofline, which have no flush).\n")
        ex_rows = target_rows(d, classes, ctx, present, isas, TARGETS_EXACT + [(None, None, t_flush_cost)])
        if any(any(r) for r in ex_rows.values()):
            w("### The same targets in exact IEEE mode (the flag cleared: `dispatched_exact`, class sizes)\n")
            w("| flag set | " + " | ".join(t[0] for t in TARGETS_EXACT) + " | L1: preset / exact (the flush's cost) |")
            w("|---|" + "---|" * (len(TARGETS_EXACT) + 1))
            for fs in present:
                cells = []
                for i, c in enumerate(ex_rows[fs]):
                    info = i == len(TARGETS_EXACT)
                    cells.append("–" if c is None else c[0] if info else f"{c[0]} {yes(c[1])}")
                w(f"| {fs} | " + " | ".join(cells) + " |")
            w("")
            for title, desc, _ in TARGETS_EXACT:
                w(f"- **{title}**: {desc}.")
            w("- **L1: preset / exact**: the preset's rate over the exact configuration's in L1, with dense gradients "
              "(no state is subnormal): below 1, the flush's extra operations cost that much; information, no "
              "target.\n")
    if sp:
        w(f"### Sparse gradients (issue 14): {SPARSE_TARGET_PCT}% zero gradients within {SPARSE_TARGET} × the "
          "dense step, presets\n")
        w(sparse_target_text(sp, reps, primary))
        w("")
    for png in pngs:
        if png.startswith("summary"):
            w(f"![{png}]({png})\n")

    if d.floors or any(k.startswith("floor/") for k in errors):
        w("## sqrt + div throughput floor (registers only)\n")
        w("One sqrt and one div per element, on registers, in two orders (alternating, and all sqrts "
          "then all divs); the floor is the faster. RMSProp, AdaGrad and Adam need one of each per element; "
          "SGD needs neither.\n")
        w("| width | alternating Gelem/s | grouped Gelem/s | floor ns/elem |")
        w("|---|---:|---:|---:|")
        for isa in isas:
            if isa in d.floors:
                o = d.floor_orders.get(isa, {})
                cell = lambda k: f"{o[k]:.3f}" if k in o else "–"
                w(f"| {isa} | {cell('sqrt_div')} | {cell('sqrt_div_grouped')} | {1 / d.floors[isa]:.3f} |")
            elif f"floor/sqrt_div/{isa}" in errors:
                w(f"| {isa} | skipped | skipped | – |")
        hw = ratio(d.floors.get("avx2"), d.floors.get("scalar"))
        if hw:
            w(f"\nThe avx2 floor is {hw:.2f} × the scalar one: in L1, where both paths run at their floor, "
              "no AVX2 kernel with a divider can be faster than that relative to a scalar one on this CPU.")
        w("")
        if d.newton:
            w("### Past the divider: what a fast mode could gain (issue 14)\n")
            w("The same denominators from IEEE multiplies and adds only, as a bit-reproducible fast mode would "
              "compute them (no FMA, no hardware estimates): a bit-trick guess and Newton steps, as few as "
              "reach float accuracy (bench/floor.c; docs/performance.md, \"Past the divider\"). Eps inside the "
              "sqrt: `x * rsqrt(v)`, 3 steps; eps outside (the PyTorch form of every rule): "
              "`x * rcp(v * rsqrt(v) + e)`, 3 + 3 steps. Speed-up = the sqrt+div floor's time over Newton's: "
              "the most such a fast mode could gain in cache, before the rule's other operations.\n")
            w("| width | sqrt+div floor ns/elem | Newton, eps inside ns/elem | speed-up | "
              "Newton, eps outside ns/elem | speed-up |")
            w("|---|---:|---:|---:|---:|---:|")
            for isa in isas:
                nw = d.newton.get(isa)
                if not nw or not d.floors.get(isa):
                    continue
                f = 1 / d.floors[isa]
                cells = []
                for k in ("newton_eps_in", "newton_eps_out"):
                    cells += [f"{1 / nw[k]:.3f}", f"{f * nw[k]:.2f} ×"] if nw.get(k) else ["–", "–"]
                w(f"| {isa} | {f:.3f} | " + " | ".join(cells) + " |")
            w("")

    impls_present = [i for i in isas + OTHERS if any(i in d.results[fs] for fs in present)]
    skipped_impls = [i for i in isas if i not in impls_present
                     and any(k.startswith(f"{fs}/{i}/") for k in errors for fs in present)]
    cols = [c for c in CLASSES if c in classes]
    for rule in rules:
        w(f"## {rule_title(rule)}\n")
        for png in pngs:
            if png.endswith(f"_{rule}.png"):
                w(f"![{png}]({png})\n")
        for fs in [f for f in present if rule_of(f) == rule]:
            w(f"### {fs} ({d.bytes.get(fs, '?')} B/elem)\n")
            if ctx.get(f"flagset:{fs}"):
                w(f"{ctx[f'flagset:{fs}']}.\n")
            w("| implementation | " + " | ".join(f"{c} ({fmt_size(classes[c])})" for c in cols) + " |")
            w("|---|" + "---:|" * len(cols))
            for impl in impls_present:
                cells = []
                for c in cols:
                    g, e = d.get(fs, impl, classes[c]), d.get(fs, impl, classes[c], "gelem")
                    cells.append("–" if g is None else f"{g:.1f} GB/s ({e:.2f} G/s)")
                w(f"| {impl} | " + " | ".join(cells) + " |")
            for impl in skipped_impls:
                w(f"| {impl} | " + " | ".join("skipped" for _ in cols) + " |")
            w("")
            G = lambda impl, t, key="gbs", fs=fs: d.get(fs, impl, t, key)
            rows = [
                ("best path", lambda t: d.best_isa(fs, t, isas)[0]),
                ("best / roofline", lambda t: fr(ratio(d.best_isa(fs, t, isas)[1], G("roofline", t)))),
                ("dispatched / roofline", lambda t: fr(ratio(G("dispatched", t), G("roofline", t)))),
                ("dispatched / peer_native", lambda t: fr(ratio(G("dispatched", t), G("peer_native", t)))),
                ("dispatched / peer_O2", lambda t: fr(ratio(G("dispatched", t), G("peer_O2", t)))),
            ]
            if "dispatched_exact" in d.results[fs]:
                rows += [
                    ("dispatched / dispatched_exact (flush's cost)",
                     lambda t: fr(ratio(G("dispatched", t), G("dispatched_exact", t)), 3)),
                    ("dispatched_exact / peer_native (both exact)",
                     lambda t: fr(ratio(G("dispatched_exact", t), G("peer_native", t)))),
                ]
            first = isas[0] if isas else None
            for isa in isas[1:]:
                if isa in d.results[fs]:
                    rows.append((f"{isa} / {first}", lambda t, isa=isa: fr(ratio(G(isa, t), G(first, t)))))
            if d.divider.get(fs, 1):
                for isa in isas:
                    if isa in d.results[fs] and isa in d.floors:
                        rows.append((f"{isa} / sqrt+div floor ({isa})",
                                     lambda t, isa=isa: fr(ratio(G(isa, t, "gelem"), d.floors.get(isa)))))
            fl = lambda t: d.floor(fs, active, t)
            rows.append((f"dispatched time/elem ÷ floor ({active})",
                         lambda t: fr(ratio(1.0 / G("dispatched", t, "gelem"), fl(t)[0]), 3)
                         + (f" ({fl(t)[1]})" if fl(t)[1] else "") if G("dispatched", t, "gelem") else "–"))
            w("| ratio | " + " | ".join(cols) + " |")
            w("|---|" + "---:|" * len(cols))
            for label, f in rows:
                w(f"| {label} | " + " | ".join(str(f(classes[c]) or "–") for c in cols) + " |")
            w("")

    if d.sparse:
        w(sparse_markdown(ctx, stats, primary, classes, pngs, reps))

    if d.storage:
        w(storage_markdown(ctx, stats, primary, classes, pngs, isas))

    if d.threads:
        dram = classes.get("DRAM")
        where = "the DRAM size" if d.threads_ws == dram else "a working set"
        w(f"## Many cores: rmsfuse_pool at {where} ({fmt_size(d.threads_ws)})\n")
        w("`pool`: each step a plan of the one tensor (`rmsfuse_<rule>_plan`, what `rmsfuse_pool_rmsprop_step` "
          "does inside) run by `rmsfuse_pool_run_plan` on t workers bound to t cores; `roofline`: the "
          "same-traffic kernel run by the same workers over the same split (`rmsfuse_pool_run`), measured in the "
          f"same run. Target: pool ≥ {THREADS_TARGET} × roofline at every thread count.\n")
        for png in pngs:
            if png.startswith("threads"):
                w(f"![{png}]({png})\n")
        w("| flag set | threads | pool GB/s | roofline GB/s | pool / roofline | met |")
        w("|---|---:|---:|---:|---:|:---:|")
        for fs in [f for f in present if f in d.threads] + [f for f in d.threads if f not in present]:
            by = d.threads[fs]
            for t in sorted(set(by.get("pool", {})) | set(by.get("roofline", {}))):
                pg, rg = by.get("pool", {}).get(t), by.get("roofline", {}).get(t)
                r = ratio(pg, rg)
                w(f"| {fs} | {t} | {fr(pg, 1)} | {fr(rg, 1)} | {fr(r)} | "
                  f"{'–' if r is None else yes(r >= THREADS_TARGET)} |")
        w("")
    if d.multi:
        w("## Many small tensors\n")
        w("`step_multi`: one `rmsfuse_<rule>_step_multi` call over the list; `step_loop`: one `rmsfuse_<rule>_step` "
          "per tensor; `plan`: a plan made once (`rmsfuse_<rule>_plan`) and run again with `rmsfuse_plan_run` on "
          "this thread (the elements' cost once validation is done); `pool`: a plan made each step and run by "
          "`rmsfuse_pool_run_plan` on every core; `flat`: one step over the same elements as a single array, "
          "the cost of the work alone. Elements per second.\n")
        for png in pngs:
            if png.startswith("multi"):
                w(f"![{png}]({png})\n")
        impls = [i for i in MULTI_IMPLS if any(i in by for fsd in d.multi.values() for by in fsd.values())]
        w("| flag set | tensors × elements | " + " | ".join(impls) + " | step_multi / step_loop | "
          "step_multi / flat |")
        w("|---|---|" + "---:|" * (len(impls) + 2))
        for fs, shapes in d.multi.items():
            for (count, n), by in sorted(shapes.items(), key=lambda kv: (kv[0][1], kv[0][0])):
                w(f"| {fs} | {count} × {n} | " + " | ".join(f"{fr(by.get(i), 3)} G/s" for i in impls) + " | "
                  f"{fr(ratio(by.get('step_multi'), by.get('step_loop')))} | "
                  f"{fr(ratio(by.get('step_multi'), by.get('flat')))} |")
        w("")

    if d.train:
        w("## A training step: unscale, skip on overflow and clip by norm, fused (issue 15)\n")
        w("One `rmsfuse_<rule>_step_multi` over a list of 64 tensors (`step_multi`) against "
          "`rmsfuse_<rule>_step_ex` with a gradient scale (`step_ex_scale`: the gradients are unscaled as the "
          "step reads them, no extra traffic) and with the global norm's read-only pass too (`step_ex_norm`: "
          "a max_norm and `RMSFUSE_SKIP_NONFINITE`; 4 more bytes per element). Elements per second; the bound "
          "is the plain step's bytes per element over those plus the norm's 4, the slowdown memory alone "
          "explains.\n")
        w("| flag set | tensors × elements | step_multi | step_ex_scale | step_ex_norm | scale / plain | "
          "norm / plain | bound |")
        w("|---|---|---:|---:|---:|---:|---:|---:|")
        for fs, shapes in d.train.items():
            b = d.bytes.get(fs)
            for (count, n), by in sorted(shapes.items(), key=lambda kv: kv[0][1]):
                bound = f"{b}/{b + 4} = {b / (b + 4):.2f}" if b else "–"
                w(f"| {fs} | {count} × {n} | " + " | ".join(f"{fr(by.get(i), 3)} G/s" for i in TRAIN_IMPLS) +
                  f" | {fr(ratio(by.get('step_ex_scale'), by.get('step_multi')))} | "
                  f"{fr(ratio(by.get('step_ex_norm'), by.get('step_multi')))} | {bound} |")
        w("")

    fits = fixed_cost_fits(d, ctx, present)
    if fits:
        w("## Fixed cost per call\n")
        w("Least-squares fit (relative errors) of time per call = t0 + n × c over the working sets up to half "
          "of L2, where time is linear in n. t0 is what a call costs beyond its elements: argument checks and "
          "dispatch in the library, the constants in both; c is the cost per element (compare with the floor's "
          "ns/elem).\n")
        w("| flag set | implementation | t0 (ns/call) | c (ns/elem) |")
        w("|---|---|---:|---:|")
        for fs, impl, t0, c in fits:
            w(f"| {fs} | {impl} | {t0:.1f} | {c:.4f} |")
        w("")

    noisy = sorted(((r["cv"], f"{fs}/{impl}/{fmt_size(t)}") for fs in present
                    for impl, by in d.results[fs].items() for t, r in by.items()
                    if r["cv"] is not None and r["cv"] > 0.05), reverse=True)
    total = sum(len(by) for fs in present for by in d.results[fs].values())
    if noisy:
        w(f"Noise: {len(noisy)} of {total} results vary by more than 5% (coefficient of variation) over the "
          f"repetitions (worst: " + ", ".join(f"{n} {c * 100:.0f}%" for c, n in noisy[:5]) + ").\n")
    snoisy = sorted(((r["cv"], f"{fs}/{impl}/zero:{p}/{fmt_size(ws)}") for fs, bw in d.sparse.items()
                     for ws, bi in bw.items() for impl, bp in bi.items() for p, r in bp.items()
                     if r.get("cv") is not None and r["cv"] > 0.05), reverse=True)
    if snoisy:
        nsp = sum(1 for bw in d.sparse.values() for bi in bw.values() for bp in bi.values() for r in bp.values()
                  if r.get("cv") is not None)
        w(f"Sparse-gradient noise: {len(snoisy)} of {nsp} results vary by more than 5% (worst: "
          + ", ".join(f"{n} {c * 100:.0f}%" for c, n in snoisy[:5]) + ").\n")
    reasons = sorted(set(errors.values()))
    if reasons:
        w("Skipped: " + "; ".join(reasons) + f" ({len(errors)} benchmarks).\n")
    return "\n".join(out)


# ---- plots ----------------------------------------------------------------------
# The benchmark's own implementations have fixed styles; the library's ISAs
# take colours and markers in the order of rmsfuse_isa_names().
FIXED_STYLE = {
    "dispatched": dict(color="#ff7f0e", marker="", linestyle=(0, (4, 2)), linewidth=2.2),
    # measured at the class sizes only: markers, no line
    "dispatched_exact": dict(color="#ff7f0e", marker="o", linestyle="", markerfacecolor="none", markeredgewidth=1.5),
    "roofline": dict(color="black", marker="", linewidth=2.5),
    "peer_O2": dict(color="#8c564b", marker="x", linestyle=":"),
    "peer_native": dict(color="#e377c2", marker="+", linestyle="--"),
}
ISA_COLORS = ["#7f7f7f", "#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#17becf", "#bcbd22"]
ISA_MARKERS = ["o", "s", "^", "D", "v", "P", "X"]


def styles(isas):
    st = {isa: dict(color=ISA_COLORS[i % len(ISA_COLORS)], marker=ISA_MARKERS[i % len(ISA_MARKERS)])
          for i, isa in enumerate(isas)}
    st.update(FIXED_STYLE)
    return st


def _axes_common(ax, caches, fmt):
    for name, size in caches:
        if size:
            ax.axvline(size, color="0.5", linestyle="-", linewidth=0.8, alpha=0.6)
            ax.text(size * 1.08, 0.985, name, transform=ax.get_xaxis_transform(), va="top", fontsize=9,
                    color="0.3")
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(fmt)
    ax.set_xlabel("working set (all arrays)")
    ax.grid(True, which="major", alpha=0.3)
    for label in ax.get_xticklabels():
        label.set_rotation(45)
        label.set_ha("right")


def plot(ctx, d, classes, outdir, errors):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.ticker import FuncFormatter

    isas = isa_names(ctx, d, errors)
    STYLE = styles(isas)
    present = flag_sets(ctx, d)
    rules = list(dict.fromkeys(rule_of(fs) for fs in present))
    caches = [("L1d", int(ctx.get("cache_l1d_bytes", 0))), ("L2", int(ctx.get("cache_l2_bytes", 0))),
              ("L3", int(ctx.get("cache_l3_bytes", 0)))]
    xfmt = FuncFormatter(lambda x, _: fmt_size(int(x)).replace(" ", ""))
    active = ctx.get("rmsfuse_active_isa", "")
    est = "best of the repetitions" if d.stat == "best" else "median of the repetitions"
    cpu = ctx.get("cpu_model", "?")
    names = []

    def save(fig, name):
        fig.savefig(os.path.join(outdir, name), dpi=110)
        plt.close(fig)
        names.append(name)

    # ---- at a glance: every flag set x size class ----
    cols = [c for c in CLASSES if c in classes]
    if present and cols:
        nr = len(present)
        fig, axes = plt.subplots(1, 3, figsize=(16, max(4.0, 2.0 + 0.42 * nr)),
                                 gridspec_kw=dict(width_ratios=[len(cols), len(cols), 3.2]))

        def heat(ax, val, title, norm, cmap, fmt, marks=None):
            import numpy as np
            M = np.array([[np.nan if v is None else v for v in row] for row in val], dtype=float)
            ax.imshow(M, aspect="auto", cmap=cmap, norm=norm)
            for i, row in enumerate(val):
                for j, v in enumerate(row):
                    mark = "*" if marks and marks[i][j] else ""
                    ax.text(j, i, "–" if v is None else fmt(v) + mark, ha="center", va="center", fontsize=8.5,
                            color="black", fontweight="bold" if mark else "normal")
            ax.set_xticks(range(len(cols)))
            ax.set_xticklabels([f"{c}\n{fmt_size(classes[c])}" for c in cols], fontsize=8.5)
            ax.set_yticks(range(nr))
            ax.set_yticklabels(present, fontsize=9)
            ax.set_title(title, fontsize=10)
            for i in range(1, nr):  # a line between rules
                if rule_of(present[i]) != rule_of(present[i - 1]):
                    ax.axhline(i - 0.5, color="white", linewidth=2.5)

        def eff(fs, t):
            v = d.get(fs, "dispatched", t, "gelem")
            b = d.floor(fs, active, t)[0]
            return ratio(b, 1.0 / v) if v else None

        heat(axes[0], [[eff(fs, classes[c]) for c in cols] for fs in present],
             "dispatched path: fraction of its limit at each size\n(limit: the slower of the same-traffic "
             "roofline and the sqrt+div floor)",
             TwoSlopeNorm(vmin=0.5, vcenter=ROOFLINE_TARGET, vmax=1.15), "RdYlGn", lambda v: f"{v:.2f}")
        nat, slow = [], []
        for fs in present:
            row, srow = [], []
            for c in cols:
                rd, rp = d.r(fs, "dispatched", classes[c]), d.r(fs, "peer_native", classes[c])
                row.append(ratio(rd["gbs"], rp["gbs"]) if rd and rp else None)
                # slower beyond noise: its best repetition below the loop's worst
                srow.append(bool(rd and rp and rd.get("best_gbs") and rp.get("worst_gbs") and rd["reps"] >= 3
                                 and rd["best_gbs"] < rp["worst_gbs"]))
            nat.append(row)
            slow.append(srow)
        heat(axes[1], nat, "dispatched / -O3 -march=native loop\n(green: faster; 1 = a tie; "
             "*: slower beyond noise)", TwoSlopeNorm(vmin=0.8, vcenter=1.0, vmax=1.25), "RdYlGn",
             lambda v: f"{v:.2f}", slow)
        axes[1].set_yticklabels([])
        # In L1: time per element of the dispatched path and the loops against the floor.
        ax = axes[2]
        l1 = classes.get("L1")
        ys = list(range(nr))
        for k, (impl, lab) in enumerate((("dispatched", f"dispatched ({active})"), ("peer_native", "-O3 native loop"),
                                         ("peer_O2", "-O2 loop"))):
            vals = [d.get(fs, impl, l1, "gelem") for fs in present]
            ax.barh([y + (k - 1) * 0.26 for y in ys], [1.0 / v if v else 0 for v in vals], height=0.25,
                    color=STYLE[impl]["color"], label=lab)
        fl = [d.floor(fs, active, l1) for fs in present]
        for y, (v, what) in zip(ys, fl):
            if v:
                ax.plot([v, v], [y - 0.45, y + 0.45], color="black", linewidth=2)
        ax.plot([], [], color="black", linewidth=2, label="floor (sqrt+div or roofline)")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda x, _: f"{x:g}" if f"{x:.0e}"[0] in "25" else ""))
        ax.tick_params(axis="x", which="minor", labelsize=7)
        ax.set_yticks(ys)
        ax.set_yticklabels([])
        ax.set_ylim(nr - 0.5, -0.5)
        ax.set_xlabel("ns per element (log)")
        ax.set_title(f"in L1 ({fmt_size(l1) if l1 else '?'}): time per element", fontsize=10)
        ax.grid(True, axis="x", which="both", alpha=0.3)
        h, lab = ax.get_legend_handles_labels()
        fig.legend(h, lab, fontsize=8, loc="lower right", ncol=2, frameon=False)
        fig.suptitle(f"rmsfuse at a glance: {cpu}, one core, dispatched = {active}; {est}", fontsize=12)
        height = fig.get_figheight()
        fig.tight_layout(rect=(0, 0.5 / height, 1, 1 - 0.45 / height))
        save(fig, "summary.png")

    # ---- per rule: GB/s against size, and the fraction of the roofline ----
    for rule in rules:
        fss = [fs for fs in present if rule_of(fs) == rule]
        ncol = min(len(fss), 2 if len(fss) == 4 else 3)
        nrow = math.ceil(len(fss) / ncol)
        fig, axes = plt.subplots(nrow, ncol, figsize=(7.0 * ncol, 5.0 * nrow), squeeze=False)
        handles = {}
        for ax, fs in zip(axes.flat, fss):
            for impl in isas + OTHERS:
                by = d.results[fs].get(impl)
                if not by:
                    continue
                pts = sorted((r["ws"], r["gbs"]) for r in by.values())
                st = dict(STYLE.get(impl, {}))
                st.setdefault("linewidth", 1.5)
                (h,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], label=impl, markersize=4, **st)
                handles[impl] = h
            fl = d.floors.get(active) if d.divider.get(fs, 1) else None
            if fl and d.bytes.get(fs):
                h = ax.axhline(fl * d.bytes[fs], color=STYLE.get(active, {}).get("color", "0.3"), linestyle="-.",
                               linewidth=1, alpha=0.8)
                handles[f"sqrt+div floor ({active} width)"] = h
            for c in CLASSES:
                if c in classes:
                    ax.axvspan(classes[c] / 1.15, classes[c] * 1.15, color="#ffe08a", alpha=0.35, lw=0)
            _axes_common(ax, caches, xfmt)
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
            # label the 2s and 5s between the decades too
            ax.yaxis.set_minor_formatter(FuncFormatter(lambda y, _: f"{y:g}" if f"{y:.0e}"[0] in "25" else ""))
            ax.tick_params(axis="y", which="minor", labelsize=8)
            ax.grid(True, which="minor", axis="y", alpha=0.12)
            ax.set_title(f"{fs} ({d.bytes.get(fs, '?')} B/elem)")
            ax.set_ylabel("GB/s (STREAM convention)")
        for ax in list(axes.flat)[len(fss):]:
            ax.axis("off")
        fig.suptitle(f"rmsfuse {rule_title(rule)} step: {cpu}, one core, dispatched = {active}; {est}; "
                     "shaded: size classes", fontsize=12)
        fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=min(len(handles), 6), fontsize=9,
                   frameon=False)
        fig.tight_layout(rect=(0, 0.07 if nrow == 1 else 0.05, 1, 0.95))
        save(fig, f"gbps_vs_size_{rule}.png")

        fig, axes = plt.subplots(nrow, ncol, figsize=(7.0 * ncol, 4.3 * nrow), squeeze=False)
        for ax, fs in zip(axes.flat, fss):
            roof = d.results[fs].get("roofline", {})
            top = 1.0
            for impl in isas + ["dispatched", "dispatched_exact", "peer_O2", "peer_native"]:
                by = d.results[fs].get(impl)
                if not by:
                    continue
                pts = sorted((r["ws"], r["gbs"] / roof[t]["gbs"]) for t, r in by.items() if t in roof)
                if not pts:
                    continue
                st = dict(STYLE.get(impl, {}))
                st.setdefault("linewidth", 1.5)
                ax.plot([p[0] for p in pts], [p[1] for p in pts], label=impl, markersize=4, **st)
                top = max(top, max(p[1] for p in pts))
            ax.axhline(1.0, color="black", linewidth=2, label="roofline")
            ax.axhline(ROOFLINE_TARGET, color="black", linewidth=0.8, linestyle=":",
                       label=f"{ROOFLINE_TARGET} × roofline")
            _axes_common(ax, caches, xfmt)
            ax.set_ylim(0, min(max(1.1, top * 1.05), 2.0))
            ax.set_title(f"{fs}: fraction of the same-traffic roofline")
            ax.set_ylabel("GB/s / roofline GB/s")
        for ax in list(axes.flat)[len(fss):]:
            ax.axis("off")
        h, lab = axes.flat[0].get_legend_handles_labels()
        fig.legend(h, lab, loc="lower center", ncol=min(len(h), 9), fontsize=9, frameon=False)
        fig.tight_layout(rect=(0, 0.08 if nrow == 1 else 0.05, 1, 1))
        save(fig, f"ratio_to_roofline_{rule}.png")

    # ---- sparse gradients: slowdown against the share of zero gradients ----
    if d.sparse:
        sfs = sparse_order(d)
        sizes = sorted({ws for fs in sfs for ws in d.sparse[fs]}, key=lambda x: (x < 0, abs(x)))
        # one row per size class (in cache, DRAM; another program's sizes last)
        rows = []
        for ws in sizes:
            key = sparse_where(ws, classes) if ws >= 0 else f"{-ws} elements"
            if key not in rows:
                rows.append(key)
        fig, axes = plt.subplots(len(rows), len(sfs), figsize=(4.6 * len(sfs), 4.0 * len(rows) + 1.2),
                                 squeeze=False)
        sstyle = {"dispatched": dict(color=STYLE["dispatched"]["color"], marker="o", linewidth=2.4),
                  "dispatched_exact": dict(color="#1f77b4", marker="s", linewidth=1.6),
                  "peer_native": dict(color=STYLE["peer_native"]["color"], marker="+", linestyle="--",
                                      linewidth=1.6)}
        extra = ["#2ca02c", "#9467bd", "#8c564b", "#17becf", "#bcbd22", "#7f7f7f"]
        others = sorted({i for fs in sfs for bi in d.sparse[fs].values() for i in bi if i not in SPARSE_IMPLS})
        for k, impl in enumerate(others):  # another program's rows: one colour each, in every panel
            sstyle[impl] = dict(color=extra[k % len(extra)], marker="^", linewidth=1.4)
        top, bottom = 1.5, 0.8
        for ci, fs in enumerate(sfs):
            for ws, bi in d.sparse[fs].items():
                ri = rows.index(sparse_where(ws, classes) if ws >= 0 else f"{-ws} elements")
                ax = axes[ri][ci]
                impls = [i for i in SPARSE_IMPLS if i in bi] + sorted(i for i in bi if i not in SPARSE_IMPLS)
                dense = []
                for k, impl in enumerate(impls):
                    bp = bi[impl]
                    pts = [(p, sparse_ratio(bp, p)) for p in sorted(bp)]
                    pts = [(p, r) for p, r in pts if r is not None]
                    if not pts:
                        continue
                    st = sstyle[impl]
                    ax.plot([p for p, _ in pts], [r for _, r in pts], label=SPARSE_IMPL_TITLES.get(impl, impl),
                            markersize=6, **st)
                    top = max(top, max(r for _, r in pts))
                    bottom = min(bottom, 0.9 * min(r for _, r in pts))
                    if bp.get(0):
                        short = {"dispatched": "preset", "dispatched_exact": "exact", "peer_native": "loop"}
                        name = short.get(impl, impl)
                        name = name[len("torch: "):] if name.startswith("torch: ") else name
                        dense.append(f"{name} {bp[0]['ns']:.2f}")
                ax.axhline(1.0, color="0.4", linewidth=0.8)
                ax.axhline(SPARSE_TARGET, color="black", linewidth=0.9, linestyle=":")
                ax.plot([SPARSE_TARGET_PCT], [SPARSE_TARGET], marker="v", color="black", markersize=7,
                        linestyle="", label=f"target: preset ≤ {SPARSE_TARGET} × dense at {SPARSE_TARGET_PCT}%")
                n = next((r["n"] for bp in bi.values() for r in bp.values() if r.get("n")), 0)
                # the dense rates, three to a line, so that titles stay within their panel
                rates = [", ".join(dense[j:j + 3]) for j in range(0, len(dense), 3)]
                ax.set_title(f"{fs}: {n} elements ({fmt_size(ws) if ws >= 0 else 'torch'})\n"
                             + ("dense ns/elem: " + "\n".join(rates) if rates else ""), fontsize=9)
                ax.grid(True, alpha=0.3)
                ax.set_xticks([0, 10, 25, 50, 75, 90])
                ax.set_xlim(-4, 94)
                ax.set_xlabel("gradient entries exactly zero (%)", fontsize=9)
                if ci == 0:
                    ax.set_ylabel(f"{rows[ri]}\ntime / the same path's dense step")
        for row in axes:
            for ax in row:
                if not ax.has_data():
                    ax.axis("off")
                elif top > 4:  # a wide range: log scale, labelled as factors
                    ax.set_yscale("log")
                    ax.set_ylim(bottom, top * 1.15)
                    ticks = [t for t in (0.5, 1, 1.5, 2, 3, 5, 10, 20, 50, 100) if bottom <= t <= top * 1.15]
                    ax.set_yticks(ticks)
                    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}×"))
                    ax.yaxis.set_minor_formatter(FuncFormatter(lambda y, _: ""))
                else:
                    ax.set_ylim(bottom, top * 1.08)
                    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}×"))
        handles = {}
        for ax in axes.flat:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(lab, h)
        fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=min(len(handles), 5), fontsize=9,
                   frameon=False)
        fig.suptitle(f"sparse gradients: the steady-state step against the share of zero gradients, {cpu}, "
                     f"one core; {est}", fontsize=11)
        fig.tight_layout(rect=(0, 0.9 / fig.get_figheight(), 1, 1 - 0.35 / fig.get_figheight()))
        save(fig, "sparse_gradients.png")

    # ---- scaling with threads at the DRAM size: pool against its roofline ----
    tfs = [fs for fs in present if fs in d.threads] + [fs for fs in d.threads if fs not in present]
    if tfs:
        ncol = min(len(tfs), 4)
        nrow = math.ceil(len(tfs) / ncol)
        fig, axes = plt.subplots(nrow, ncol, figsize=(3.9 * ncol, 3.5 * nrow + 0.6), squeeze=False)
        for ax, fs in zip(axes.flat, tfs):
            for impl, st in (("roofline", STYLE["roofline"]), ("pool", STYLE["dispatched"])):
                pts = sorted(d.threads[fs].get(impl, {}).items())
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], label=impl, marker="o", markersize=5,
                            **{k: v for k, v in st.items() if k != "marker"})
            roof = sorted(d.threads[fs].get("roofline", {}).items())
            if roof:
                ax.plot([p[0] for p in roof], [p[1] * THREADS_TARGET for p in roof], color="black",
                        linestyle=":", linewidth=0.9, label=f"{THREADS_TARGET} × roofline")
            ax.set_xticks(sorted({t for impl in d.threads[fs].values() for t in impl}))
            ax.set_ylim(bottom=0)
            ax.set_xlabel("threads (cores)")
            ax.set_ylabel("GB/s (STREAM convention)")
            ax.set_title(fs, fontsize=10)
            ax.grid(True, alpha=0.3)
        for ax in list(axes.flat)[len(tfs):]:
            ax.axis("off")
        h, lab = axes.flat[0].get_legend_handles_labels()
        fig.legend(h, lab, loc="lower center", ncol=len(h), fontsize=9, frameon=False)
        fig.suptitle(f"rmsfuse_pool, working set {fmt_size(d.threads_ws)} "
                     f"({'DRAM class' if d.threads_ws == classes.get('DRAM') else 'not the DRAM class'}): "
                     f"{cpu}, {est}", fontsize=11)
        fig.tight_layout(rect=(0, 0.05 if nrow > 1 else 0.08, 1, 0.95))
        save(fig, "threads_scaling.png")

    # ---- many small tensors: elements/s of each way to run them ----
    if d.multi:
        mfs = list(d.multi)
        fig, axes = plt.subplots(1, len(mfs), figsize=(4.4 * len(mfs), 4.2), squeeze=False)
        colors = {"step_multi": "#ff7f0e", "step_loop": "#1f77b4", "plan": "#2ca02c", "pool": "#9467bd",
                  "flat": "0.35"}
        for ax, fs in zip(axes.flat, mfs):
            shapes = sorted(d.multi[fs], key=lambda s: (s[1], s[0]))
            impls = [i for i in MULTI_IMPLS if any(i in d.multi[fs][s] for s in shapes)]
            wdt = 0.8 / max(len(impls), 1)
            for k, impl in enumerate(impls):
                ax.bar([x + (k - (len(impls) - 1) / 2) * wdt for x in range(len(shapes))],
                       [d.multi[fs][s].get(impl, 0) for s in shapes], width=wdt, label=impl,
                       color=colors.get(impl))
            ax.set_xticks(range(len(shapes)))
            ax.set_xticklabels([f"{c} × {n}" for c, n in shapes], fontsize=9)
            ax.set_xlabel("tensors × elements")
            ax.set_ylabel("G elements/s")
            ax.set_title(fs, fontsize=10)
            ax.grid(True, axis="y", alpha=0.3)
        h, lab = axes.flat[0].get_legend_handles_labels()
        fig.legend(h, lab, loc="lower center", ncol=len(h), fontsize=9, frameon=False)
        fig.suptitle(f"many small tensors: {cpu}, {est}", fontsize=11)
        fig.tight_layout(rect=(0, 0.07, 1, 0.93))
        save(fig, "multi_tensors.png")

    # ---- storage types: speed-up over float32 at the largest size, and the fraction of the roofline ----
    if d.storage:
        sfs, combos = storage_order(d, ctx)
        typed = [c for c in combos if c != STORAGE_PLAIN]
        cols = [c for c in CLASSES if c in classes]
        fig, axes = plt.subplots(2, len(sfs), figsize=(4.6 * len(sfs), 1.6 + 0.5 * len(typed) * 2), squeeze=False)
        ys = list(range(len(typed)))
        ccolors = {"L1": "#2ca02c", "L2": "#1f77b4", "L3": "#9467bd", "DRAM": "#d62728"}
        for k, fs in enumerate(sfs):
            by = d.storage[fs]
            big = storage_largest(d, fs, classes)
            ref = by.get(STORAGE_PLAIN, {})
            rd0, rr0 = ref.get("dispatched", {}).get(big), ref.get("roofline", {}).get(big)
            ax = axes[0][k]
            sp, bts, roofs, unf = [], [], [], []
            for c in typed:
                rd, rr = by.get(c, {}).get("dispatched", {}).get(big), by.get(c, {}).get("roofline", {}).get(big)
                ru = by.get(c, {}).get("unfused", {}).get(big)
                sp.append(ratio(rd and rd["gelem"], rd0 and rd0["gelem"]) or 0)
                unf.append(ratio(ru and ru["gelem"], rd0 and rd0["gelem"]))
                b, b0 = (rd or rr or {}).get("bytes"), (rd0 or rr0 or {}).get("bytes")
                bts.append(ratio(b0, b))
                roofs.append(ratio(rr and rr["gelem"], rr0 and rr0["gelem"]))
            ax.barh(ys, sp, height=0.6, color=STYLE["dispatched"]["color"], label="dispatched / float32 step")
            ax.plot([b for b in bts], ys, linestyle="", marker="|", markersize=14, markeredgewidth=2.5,
                    color="black", label="f32 bytes / bytes (memory alone)")
            ax.plot([r for r in roofs], ys, linestyle="", marker="o", markerfacecolor="none", color="0.35",
                    label="roofline / f32 roofline")
            if any(u is not None for u in unf):
                ax.plot([u if u is not None else float("nan") for u in unf], ys, linestyle="", marker="X",
                        markersize=9, markeredgewidth=0.8, color="#1f3a93", markeredgecolor="white",
                        label="unfused / float32 step (float32 copies, converted back)")
            ax.axvline(1.0, color="0.4", linewidth=0.8)
            ax.set_yticks(ys)
            ax.set_yticklabels(typed if k == 0 else [], fontsize=8.5)
            ax.set_ylim(len(typed) - 0.5, -0.5)
            where = next((c for c in CLASSES if classes.get(c) == big), fmt_size(big) if big else "?")
            ax.set_title(f"{fs}: speed-up over float32 at {where}", fontsize=10)
            ax.grid(True, axis="x", alpha=0.3)
            ax = axes[1][k]
            # the classes on one core, then the largest size on every core (the pool) where measured
            cores = {cb: storage_cores(by.get(cb, {}), big) for cb in typed}
            tcores = max((x[0] for x in cores.values() if x), default=0)
            bars = [(c, classes[c]) for c in cols] + ([("cores", big)] if tcores else [])
            wdt = 0.8 / max(len(bars), 1)
            for j, (c, t) in enumerate(bars):
                vals = []
                for cb in typed:
                    if c == "cores":
                        x = cores[cb]
                        rd, rr = (x[1], x[2]) if x else (None, None)
                    else:
                        rd, rr = by.get(cb, {}).get("dispatched", {}).get(t), by.get(cb, {}).get("roofline", {}).get(t)
                        # paired at the largest size where measured (as in the tables)
                        pr = storage_paired(by.get(cb, {}), t)[0]
                        if pr:
                            vals.append(pr)
                            continue
                    vals.append(ratio(rd and rd["gelem"], rr and rr["gelem"]) or 0)
                where = next((n for n in CLASSES if classes.get(n) == big), fmt_size(big))
                ax.barh([y + (j - (len(bars) - 1) / 2) * wdt for y in ys], vals, height=wdt,
                        color=ccolors.get(c, "#8c564b"),
                        label=f"{where}, {tcores} cores (pool)" if c == "cores" else f"{c} ({fmt_size(t)})")
            # one core's bound at the largest size: the roofline's time over the step's own time in L2
            # (memory not limiting), beside that size's bar; at the plot's edge where above it
            l2 = classes.get("L2")
            jb = next((j for j, (c, t) in enumerate(bars) if c != "cores" and t == big), None)
            if l2 and l2 != big and jb is not None:
                most = [ratio(by.get(cb, {}).get("dispatched", {}).get(l2, {}).get("gelem"),
                              by.get(cb, {}).get("roofline", {}).get(big, {}).get("gelem")) for cb in typed]
                if any(m is not None for m in most):
                    ax.plot([min(m, 1.22) if m is not None else float("nan") for m in most],
                            [y + (jb - (len(bars) - 1) / 2) * wdt for y in ys], linestyle="", marker="D",
                            markersize=5, color="black",
                            label="one core's bound at the largest size: roofline's time / its time in L2")
            # the roofline with the step's own arithmetic (roofline_work) at the largest size: what one core
            # reaches with that traffic and that much arithmetic, as a fraction of the roofline
            if jb is not None:
                def same_of(cb):
                    pr, pw = storage_paired(by.get(cb, {}), big)
                    if pr and pw:  # paired: the roofline's time over the same-work roofline's
                        return pr / pw
                    return ratio(by.get(cb, {}).get("roofline_work", {}).get(big, {}).get("gelem"),
                                 by.get(cb, {}).get("roofline", {}).get(big, {}).get("gelem"))
                same = [same_of(cb) for cb in typed]
                if any(m is not None for m in same):
                    ax.plot([min(m, 1.22) if m is not None else float("nan") for m in same],
                            [y + (jb - (len(bars) - 1) / 2) * wdt for y in ys], linestyle="", marker="D",
                            markersize=7, markerfacecolor="none", markeredgewidth=1.3, color="#d62728",
                            label="the roofline with as much arithmetic as the step's (same-work) / the roofline")
            ax.axvline(ROOFLINE_TARGET, color="black", linewidth=0.9, linestyle=":", label=f"{ROOFLINE_TARGET}")
            ax.axvline(1.0, color="0.4", linewidth=0.8)
            ax.set_yticks(ys)
            ax.set_yticklabels(typed if k == 0 else [], fontsize=8.5)
            ax.set_ylim(len(typed) - 0.5, -0.5)
            ax.set_xlim(0, 1.25)
            ax.set_title(f"{fs}: dispatched / its own roofline", fontsize=10)
            ax.grid(True, axis="x", alpha=0.3)
        handles = {}
        for ax in axes.flat:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(lab, h)
        ncol = max(1, min(len(handles), 5))
        rows = -(-len(handles) // ncol)
        fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=ncol, fontsize=9, frameon=False)
        fig.suptitle(f"storage types (p<param>_g<grad>_s<state>; m: master weights, sr: stochastic rounding)\n"
                     f"{cpu}, one core unless marked, dispatched = {active}; {est}", fontsize=11)
        fig.tight_layout(rect=(0, (0.25 + 0.3 * rows) / fig.get_figheight(), 1, 1 - 0.6 / fig.get_figheight()))
        save(fig, "storage_types.png")
    return names


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json")
    ap.add_argument("outdir", nargs="?")
    ap.add_argument("--command", default="")
    ap.add_argument("--stat", choices=sorted(STAT_AGG), default="best")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--python", default=None, help="another program's sparse rows (default: python_bench.json "
                    "beside the JSON, when it exists)")
    a = ap.parse_args()
    outdir = a.outdir or os.path.dirname(os.path.abspath(a.json))
    os.makedirs(outdir, exist_ok=True)
    ctx, stats, errors, classes = load(a.json)
    has = lambda d: d.results or d.sparse or d.storage
    if not has(stats[a.stat]):
        other = "median" if a.stat == "best" else "best"
        if not has(stats[other]):
            sys.exit("report.py: no step results in " + a.json)
        print(f"report.py: no '{STAT_AGG[a.stat]}' aggregates in {a.json}; using --stat {other}", file=sys.stderr)
        a.stat = other
    py = a.python or os.path.join(os.path.dirname(os.path.abspath(a.json)), "python_bench.json")
    if os.path.exists(py):
        for d in stats.values():
            if (d.results or d.sparse) and load_python_sparse(py, d) and d is stats[a.stat]:
                print(f"report.py: sparse rows from {py}", file=sys.stderr)
    pngs = [] if a.no_plots else plot(ctx, stats[a.stat], classes, outdir, errors)
    md = markdown(ctx, stats, a.stat, errors, classes, a.command, pngs)
    with open(os.path.join(outdir, "report.md"), "w") as f:
        f.write(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
