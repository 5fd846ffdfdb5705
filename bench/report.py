#!/usr/bin/python3
"""Turn the JSON of bench/rmsfuse_bench into report.md and PNG plots.

usage: report.py BENCH.JSON [OUTDIR] [--command "how the run was made"] [--stat best|median]

Each figure summarises the repetitions of one benchmark.  --stat best (the
default) takes the best repetition (the "max" aggregate of the rates):
interference from other work only ever slows a run down, so on a shared or
virtual machine the best of N is the steadiest estimate of what the code can
do, and it is applied alike to every implementation.  --stat median takes the
median.  The targets table shows both.  Without repetitions the single runs
are used.  The plots need matplotlib (Debian: python3-matplotlib); run this
with /usr/bin/python3.
"""
import argparse
import json
import math
import os
import re
import sys
from collections import defaultdict

FLAGSETS = ["plain", "momentum", "centered", "centered_momentum"]
STREAM_BYTES = {"plain": 20, "momentum": 28, "centered": 28, "centered_momentum": 36}
ISAS = ["scalar", "sse2", "avx2", "avx512", "neon"]
OTHERS = ["dispatched", "roofline", "peer_O2", "peer_native"]
CLASSES = ["L1", "L2", "L3", "DRAM"]
NAME_RE = re.compile(r"^rmsprop/([a-z_]+)/([A-Za-z0-9_]+)/ws:(\d+)$")
FLOOR_RE = re.compile(r"^floor/(sqrt_div|sqrt_div_grouped)/([a-z0-9]+)$")
THREADS_RE = re.compile(r"^threads/([a-z_]+)/(pool|roofline)/t:(\d+)/ws:(\d+)$")
MULTI_RE = re.compile(r"^multi/([a-z_]+)/tensors:(\d+)/n:(\d+)$")
MULTI_IMPLS = ["step_multi", "step_loop", "flat"]
THREADS_TARGET = 0.9
STAT_AGG = {"best": "max", "median": "median"}


def run_name(b):
    name = b.get("run_name", b["name"])
    return name[: -len("/real_time")] if name.endswith("/real_time") else name


class Data:
    """One statistic of one run: results[fs][impl][target_ws], floors[isa]."""

    def __init__(self, entries, cv, stat, worst=None, best=None):
        self.stat = stat
        self.results = defaultdict(lambda: defaultdict(dict))
        self.floors = {}  # isa -> Gelem/s, the faster order
        self.floor_orders = {}  # isa -> order -> Gelem/s
        self.threads = defaultdict(lambda: defaultdict(dict))  # [fs][impl][threads] -> GB/s
        self.multi = defaultdict(dict)  # [(count, n)][impl] -> Gelem/s
        self.threads_ws = 0
        for name, b in entries.items():
            m = THREADS_RE.match(name)
            if m:
                self.threads[m.group(1)][m.group(2)][int(m.group(3))] = b["bytes_per_second"] / 1e9
                self.threads_ws = int(m.group(4))
                continue
            m = MULTI_RE.match(name)
            if m:
                self.multi[(int(m.group(2)), int(m.group(3)))][m.group(1)] = b["items_per_second"] / 1e9
                continue
            m = NAME_RE.match(name)
            if m:
                fs, impl, target = m.group(1), m.group(2), int(m.group(3))
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
                continue
            m = FLOOR_RE.match(name)
            if m:
                # The floor is the faster order (see bench/floor.c).
                rate = b["items_per_second"] / 1e9
                self.floor_orders.setdefault(m.group(2), {})[m.group(1)] = rate
                self.floors[m.group(2)] = max(rate, self.floors.get(m.group(2), 0.0))

    def r(self, fs, impl, t):
        return self.results.get(fs, {}).get(impl, {}).get(t)

    def get(self, fs, impl, t, key="gbs"):
        r = self.r(fs, impl, t)
        return r[key] if r else None

    def best_isa(self, fs, t):
        """The fastest library path (any forced ISA or the dispatched one)."""
        best = (None, None)
        for impl in ISAS + ["dispatched"]:
            v = self.get(fs, impl, t)
            if v is not None and (best[1] is None or v > best[1]):
                best = (impl, v)
        return best


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
        stats[stat] = Data(entries, agg.get("cv", {}), stat, agg.get("min"), agg.get("max"))
    classes = {}
    for part in ctx.get("size_classes_ws", "").split(","):
        if "=" in part:
            k, v = part.split("=")
            classes[k] = int(v)
    return ctx, stats, errors, classes


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


def targets(d, classes, present):
    """The issue's targets: rows of (target, flag set, measured text, met)."""
    rows = []
    l1, dram = classes.get("L1"), classes.get("DRAM")
    for fs in present:
        bi, bv = d.best_isa(fs, dram)
        b = ratio(bv, d.get(fs, "roofline", dram))
        rows.append(("DRAM: best path ≥ 0.95 × roofline", fs, f"{fr(b)} ({bi})", b is not None and b >= 0.95))
    for fs in present:
        s = ratio(d.get(fs, "avx2", l1), d.get(fs, "scalar", l1))
        hw = ratio(d.floors.get("avx2"), d.floors.get("scalar"))
        text = fr(s) + (f" (floors: {fr(hw)})" if hw else "")
        rows.append(("L1: avx2 ≥ 6 × scalar", fs, text, s is not None and s >= 6.0))
    for fs in present:
        # within 10% of the floor: time per element <= 1.1 x the floor's
        tf = ratio(d.floors.get("avx2"), d.get(fs, "avx2", l1, "gelem"))
        rows.append(("L1: avx2 time/elem ≤ 1.10 × sqrt+div floor (avx2)", fs, fr(tf, 3),
                     tf is not None and tf <= 1.10))
    for fs in present:
        pts = []
        for t in sorted(d.results[fs].get("dispatched", {})):
            r = ratio(d.get(fs, "dispatched", t), d.get(fs, "peer_native", t))
            if r is not None:
                pts.append((r, t))
        if pts:
            worst = min(pts)
            lost = [fmt_size(t) for r, t in pts if r < 1.0]
            text = f"min {fr(worst[0], 3)} at {fmt_size(worst[1])}"
            if lost:
                text += "; < 1 at " + ", ".join(lost)
            rows.append(("every size: dispatched ≥ peer_native", fs, text, not lost))
    for fs in present:
        # Slower beyond noise: even the best repetition of the dispatched path
        # is slower than the worst of the peer's (with 5 repetitions each, a
        # tie separates like that by chance with probability 1/252).
        sep, n_sizes = [], 0
        for t in sorted(d.results[fs].get("dispatched", {})):
            rd, rp = d.r(fs, "dispatched", t), d.r(fs, "peer_native", t)
            if not rd or not rp or not rd.get("best_gbs") or not rp.get("worst_gbs") or rd["reps"] < 3:
                continue
            n_sizes += 1
            best_d = rd["best_gbs"]
            if best_d < rp["worst_gbs"]:
                sep.append(f"{fmt_size(t)} ({fr(best_d / rp['worst_gbs'], 3)})")
        if n_sizes:
            text = ("none of %d sizes" % n_sizes) if not sep else "slower at " + ", ".join(sep)
            rows.append(("every size: dispatched not slower than peer_native beyond noise "
                         "(its best repetition below the peer's worst)", fs, text, not sep))
    for fs in present:
        r = ratio(d.get(fs, "dispatched", dram), d.get(fs, "peer_O2", dram))
        bound = ratio(d.get(fs, "roofline", dram), d.get(fs, "peer_O2", dram))
        text = fr(r) + (f" (roofline: {fr(bound)})" if bound else "")
        rows.append(("DRAM: dispatched ≥ 2 × peer_O2", fs, text, r is not None and r >= 2.0))
    for fs in present:
        by = d.threads.get(fs, {})
        pts = [(ratio(by.get("pool", {}).get(t), g), t) for t, g in sorted(by.get("roofline", {}).items())]
        pts = [(r, t) for r, t in pts if r is not None]
        if pts:
            worst = min(pts)
            rows.append((f"DRAM: pool ≥ {THREADS_TARGET} × roofline, 1..{max(t for _, t in pts)} threads"
                         + ("" if d.threads_ws == dram else f" (at {fmt_size(d.threads_ws)}, not DRAM)"), fs,
                         f"min {fr(worst[0])} at {worst[1]} threads", worst[0] >= THREADS_TARGET))
    return rows


def fixed_cost_fits(d, ctx, present):
    """Fit time/call = t0 + n * c (relative errors) over the working sets up to
    half of L2, where the kernels are compute-bound and time is linear in n."""
    l2 = int(ctx.get("cache_l2_bytes", 0)) or (1 << 20)
    fits = []
    for fs in present:
        for impl in ("avx2", "dispatched", "peer_native"):
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


def markdown(ctx, stats, primary, errors, classes, command, png_names):
    d = stats[primary]
    other = "median" if primary == "best" else "best"
    out = []
    w = out.append
    caches = [int(ctx.get(f"cache_{k}_bytes", 0)) for k in ("l1d", "l2", "l3")]
    load = ctx.get("load_avg", [])
    reps = max((r["reps"] for fs in d.results.values() for by in fs.values() for r in by.values()), default=1)
    w("# rmsfuse benchmark report\n")
    w(f"- CPU: {ctx.get('cpu_model', '?')}, {ctx.get('num_cpus', '?')} CPUs, "
      f"caches L1d {fmt_size(caches[0])} / L2 {fmt_size(caches[1])} / L3 {fmt_size(caches[2])} "
      f"({ctx.get('cache_source', '?')}); thread bound to {ctx.get('bound_to', '?')}")
    w(f"- host {ctx.get('host_name', '?')}, {ctx.get('date', '?')}, load average at start "
      + ", ".join(f"{x:.2f}" for x in load))
    w(f"- rmsfuse {ctx.get('rmsfuse_version', '?')}, dispatched ISA **{ctx.get('rmsfuse_active_isa', '?')}**, "
      f"usable: {ctx.get('rmsfuse_isas_supported', '?')}; {ctx.get('compiler', '?')}, "
      f"{ctx.get('build_type', '?')} build")
    w(f"- peers: `peer_O2` = `{ctx.get('peer_O2_flags', '?')}`, `peer_native` = "
      f"`{ctx.get('peer_native_flags', '?')}` (same bits as the library: "
      f"{ctx.get('peers_bitexact_with_library', '?')}); roofline `{ctx.get('roofline_flags', '?')}`")
    w(f"- update: {ctx.get('config', '?')}")
    if command:
        w(f"- command: `{command}`")
    w("")
    w("GB/s counts bytes the STREAM way (explicit reads + writes per element: plain 20, momentum 28, "
      "centered 28, centered+momentum 36); the working set counts every array once. Size classes: working "
      "set = half of L1d / L2 / L3, and 8 × L3 for DRAM. "
      + (f"Figures are the best of {reps} repetitions (see the targets for the medians)."
         if primary == "best" else f"Figures are medians of {reps} repetitions.") + "\n")

    w("## sqrt + div throughput floor (registers only)\n")
    w("One sqrt and one div per element, on registers, in two orders (alternating, and all sqrts "
      "then all divs); the floor is the faster.\n")
    w("| width | alternating Gelem/s | grouped Gelem/s | floor ns/elem |")
    w("|---|---:|---:|---:|")
    for isa in ("scalar", "sse2", "avx2", "avx512", "neon"):
        if isa in d.floors:
            o = d.floor_orders.get(isa, {})
            cell = lambda k: f"{o[k]:.3f}" if k in o else "–"
            w(f"| {isa} | {cell('sqrt_div')} | {cell('sqrt_div_grouped')} | {1 / d.floors[isa]:.3f} |")
        elif f"floor/sqrt_div/{isa}" in errors:
            w(f"| {isa} | skipped | skipped | – |")
    hw = ratio(d.floors.get("avx2"), d.floors.get("scalar"))
    if hw:
        w(f"\nThe avx2 floor is {hw:.2f} × the scalar one: in L1, where both paths run at their floor, "
          "no AVX2 kernel can be faster than that relative to a scalar one on this CPU.")
    w("")

    present = [fs for fs in FLAGSETS if fs in d.results]
    impls_present = [i for i in ISAS + OTHERS if any(i in d.results[fs] for fs in present)]
    skipped_impls = [i for i in ISAS if i not in impls_present
                     and any(k.startswith(f"rmsprop/{fs}/{i}/") for k in errors for fs in present)]
    active = ctx.get("rmsfuse_active_isa", "")
    for fs in present:
        w(f"## {fs} ({STREAM_BYTES[fs]} B/elem)\n")
        cols = [c for c in CLASSES if c in classes]
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
        G = lambda impl, t, key="gbs": d.get(fs, impl, t, key)
        rows = [
            ("best path", lambda t: d.best_isa(fs, t)[0]),
            ("best / roofline", lambda t: fr(ratio(d.best_isa(fs, t)[1], G("roofline", t)))),
            ("dispatched / roofline", lambda t: fr(ratio(G("dispatched", t), G("roofline", t)))),
            ("dispatched / peer_native", lambda t: fr(ratio(G("dispatched", t), G("peer_native", t)))),
            ("dispatched / peer_O2", lambda t: fr(ratio(G("dispatched", t), G("peer_O2", t)))),
            ("avx2 / scalar", lambda t: fr(ratio(G("avx2", t), G("scalar", t)))),
            ("dispatched / scalar", lambda t: fr(ratio(G("dispatched", t), G("scalar", t)))),
            ("scalar / sqrt+div floor (scalar)",
             lambda t: fr(ratio(G("scalar", t, "gelem"), d.floors.get("scalar")))),
            ("avx2 / sqrt+div floor (avx2)", lambda t: fr(ratio(G("avx2", t, "gelem"), d.floors.get("avx2")))),
            (f"dispatched / sqrt+div floor ({active})",
             lambda t: fr(ratio(G("dispatched", t, "gelem"), d.floors.get(active)))),
        ]
        w("| ratio | " + " | ".join(cols) + " |")
        w("|---|" + "---:|" * len(cols))
        for label, f in rows:
            w(f"| {label} | " + " | ".join(str(f(classes[c]) or "–") for c in cols) + " |")
        w("")

    yes = lambda ok: "yes" if ok else "**no**"
    if d.threads:
        where = "the DRAM size" if d.threads_ws == classes.get("DRAM") else "a working set"
        w(f"## Many cores: rmsfuse_pool at {where} ({fmt_size(d.threads_ws)})\n")
        w("`pool` is `rmsfuse_pool_rmsprop_step` with t workers bound to t cores; `roofline` is the same-traffic "
          "kernel run by the same workers over the same split (`rmsfuse_pool_run`), measured in the same run. "
          f"Target: pool ≥ {THREADS_TARGET} × roofline at every thread count.\n")
        w("| flag set | threads | pool GB/s | roofline GB/s | pool / roofline | met |")
        w("|---|---:|---:|---:|---:|:---:|")
        for fs in FLAGSETS:
            by = d.threads.get(fs)
            if not by:
                continue
            for t in sorted(set(by.get("pool", {})) | set(by.get("roofline", {}))):
                pg, rg = by.get("pool", {}).get(t), by.get("roofline", {}).get(t)
                r = ratio(pg, rg)
                w(f"| {fs} | {t} | {fr(pg, 1)} | {fr(rg, 1)} | {fr(r)} | "
                  f"{'–' if r is None else yes(r >= THREADS_TARGET)} |")
        w("")
    if d.multi:
        w("## Many small tensors (momentum flag set)\n")
        w("`step_multi`: one `rmsfuse_rmsprop_step_multi` call over the list; `step_loop`: one "
          "`rmsfuse_rmsprop_step` per tensor; `flat`: one step over the same elements as a single array, the "
          "cost of the work alone. Elements per second.\n")
        w("| tensors × elements | step_multi | step_loop | flat | step_multi / step_loop | step_multi / flat |")
        w("|---|---:|---:|---:|---:|---:|")
        for (count, n), by in sorted(d.multi.items()):
            sm, sl, fl = (by.get(i) for i in MULTI_IMPLS)
            w(f"| {count} × {n} | {fr(sm, 3)} G/s | {fr(sl, 3)} G/s | {fr(fl, 3)} G/s | {fr(ratio(sm, sl))} | "
              f"{fr(ratio(sm, fl))} |")
        w("")

    w("## Targets\n")
    t1, t2 = targets(d, classes, present), targets(stats[other], classes, present)
    w(f"| target | flag set | {primary} | met | {other} | met |")
    w("|---|---|---:|:---:|---:|:---:|")
    for a, b in zip(t1, t2):
        w(f"| {a[0]} | {a[1]} | {a[2]} | {yes(a[3])} | {b[2]} | {yes(b[3])} |")
    w("")

    fits = fixed_cost_fits(d, ctx, present)
    if fits:
        w("### Fixed cost per call\n")
        w("Least-squares fit (relative errors) of time per call = t0 + n × c over the working sets up to half "
          "of L2, where time is linear in n. t0 is what a call costs beyond its elements: argument checks and "
          "dispatch in the library, next to nothing in the peer; c is the cost per element (compare with the "
          "floor's ns/elem).\n")
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
    reasons = sorted(set(errors.values()))
    if reasons:
        w("Skipped: " + "; ".join(reasons) + f" ({len(errors)} benchmarks).\n")
    for png in png_names:
        w(f"![{png}]({png})\n")
    return "\n".join(out)


STYLE = {
    "scalar": dict(color="#7f7f7f", marker="o"),
    "sse2": dict(color="#1f77b4", marker="s"),
    "avx2": dict(color="#2ca02c", marker="^"),
    "avx512": dict(color="#d62728", marker="D"),
    "neon": dict(color="#9467bd", marker="v"),
    "dispatched": dict(color="#ff7f0e", marker="", linestyle=(0, (4, 2)), linewidth=2.2),
    "roofline": dict(color="black", marker="", linewidth=2.5),
    "peer_O2": dict(color="#8c564b", marker="x", linestyle=":"),
    "peer_native": dict(color="#e377c2", marker="+", linestyle="--"),
}


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


def plot(ctx, d, classes, outdir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    present = [fs for fs in FLAGSETS if fs in d.results]
    caches = [("L1d", int(ctx.get("cache_l1d_bytes", 0))), ("L2", int(ctx.get("cache_l2_bytes", 0))),
              ("L3", int(ctx.get("cache_l3_bytes", 0)))]
    xfmt = FuncFormatter(lambda x, _: fmt_size(int(x)).replace(" ", ""))
    ncol = 2 if len(present) > 1 else 1
    nrow = math.ceil(len(present) / ncol)
    active = ctx.get("rmsfuse_active_isa", "")
    est = "best of the repetitions" if d.stat == "best" else "median of the repetitions"

    # GB/s against size, log-log.
    fig, axes = plt.subplots(nrow, ncol, figsize=(7.5 * ncol, 5.2 * nrow), squeeze=False)
    handles = {}
    for ax, fs in zip(axes.flat, present):
        for impl in ISAS + OTHERS:
            by = d.results[fs].get(impl)
            if not by:
                continue
            pts = sorted((r["ws"], r["gbs"]) for r in by.values())
            st = dict(STYLE.get(impl, {}))
            st.setdefault("linewidth", 1.5)
            (h,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], label=impl, markersize=4, **st)
            handles[impl] = h
        fisa = active if active in d.floors else "avx2"
        fl = d.floors.get(fisa)
        if fl:
            h = ax.axhline(fl * STREAM_BYTES[fs], color=STYLE.get(fisa, {}).get("color", "0.3"), linestyle="-.",
                           linewidth=1, alpha=0.8)
            handles[f"sqrt+div floor ({fisa} width)"] = h
        for c in CLASSES:
            if c in classes:
                ax.axvspan(classes[c] / 1.15, classes[c] * 1.15, color="#ffe08a", alpha=0.35, lw=0)
        _axes_common(ax, caches, xfmt)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
        # label the 2s and 5s between the decades too
        ax.yaxis.set_minor_formatter(FuncFormatter(
            lambda y, _: f"{y:g}" if f"{y:.0e}"[0] in "25" else ""))
        ax.tick_params(axis="y", which="minor", labelsize=8)
        ax.grid(True, which="minor", axis="y", alpha=0.12)
        ax.set_title(f"{fs} ({STREAM_BYTES[fs]} B/elem)")
        ax.set_ylabel("GB/s (STREAM convention)")
    for ax in list(axes.flat)[len(present):]:
        ax.axis("off")
    fig.suptitle(f"rmsfuse RMSProp step: {ctx.get('cpu_model', '?')}, one core, dispatched = {active}; "
                 f"{est}; shaded: size classes", fontsize=12)
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=min(len(handles), 6), fontsize=9,
               frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    name = "gbps_vs_size.png"
    fig.savefig(os.path.join(outdir, name), dpi=110)
    plt.close(fig)

    # The same as a fraction of the roofline, linear y.
    fig, axes = plt.subplots(nrow, ncol, figsize=(7.5 * ncol, 4.4 * nrow), squeeze=False)
    for ax, fs in zip(axes.flat, present):
        roof = d.results[fs].get("roofline", {})
        top = 1.0
        for impl in ISAS + ["dispatched", "peer_O2", "peer_native"]:
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
        ax.axhline(0.95, color="black", linewidth=0.8, linestyle=":", label="0.95 × roofline")
        _axes_common(ax, caches, xfmt)
        ax.set_ylim(0, min(max(1.1, top * 1.05), 2.0))
        ax.set_title(f"{fs}: fraction of the same-traffic roofline")
        ax.set_ylabel("GB/s / roofline GB/s")
    for ax in list(axes.flat)[len(present):]:
        ax.axis("off")
    h, lab = axes.flat[0].get_legend_handles_labels()
    fig.legend(h, lab, loc="lower center", ncol=min(len(h), 9), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    name2 = "ratio_to_roofline.png"
    fig.savefig(os.path.join(outdir, name2), dpi=110)
    plt.close(fig)
    names = [name, name2]

    # Scaling with threads at the DRAM size: pool against its roofline.
    tfs = [fs for fs in FLAGSETS if fs in d.threads]
    if tfs:
        fig, axes = plt.subplots(1, len(tfs), figsize=(4.2 * len(tfs), 4.2), squeeze=False)
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
            ax.set_title(f"{fs}")
            ax.grid(True, alpha=0.3)
        h, lab = axes.flat[0].get_legend_handles_labels()
        fig.legend(h, lab, loc="lower center", ncol=len(h), fontsize=9, frameon=False)
        fig.suptitle(f"rmsfuse_pool, working set {fmt_size(d.threads_ws)} "
                     f"({'DRAM class' if d.threads_ws == classes.get('DRAM') else 'not the DRAM class'}): "
                     f"{ctx.get('cpu_model', '?')}, {est}", fontsize=11)
        fig.tight_layout(rect=(0, 0.07, 1, 0.94))
        name3 = "threads_scaling.png"
        fig.savefig(os.path.join(outdir, name3), dpi=110)
        plt.close(fig)
        names.append(name3)
    return names


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json")
    ap.add_argument("outdir", nargs="?")
    ap.add_argument("--command", default="")
    ap.add_argument("--stat", choices=sorted(STAT_AGG), default="best")
    ap.add_argument("--no-plots", action="store_true")
    a = ap.parse_args()
    outdir = a.outdir or os.path.dirname(os.path.abspath(a.json))
    os.makedirs(outdir, exist_ok=True)
    ctx, stats, errors, classes = load(a.json)
    if not stats[a.stat].results:
        other = "median" if a.stat == "best" else "best"
        if not stats[other].results:
            sys.exit("report.py: no rmsprop results in " + a.json)
        print(f"report.py: no '{STAT_AGG[a.stat]}' aggregates in {a.json}; using --stat {other}", file=sys.stderr)
        a.stat = other
    pngs = [] if a.no_plots else plot(ctx, stats[a.stat], classes, outdir)
    md = markdown(ctx, stats, a.stat, errors, classes, a.command, pngs)
    with open(os.path.join(outdir, "report.md"), "w") as f:
        f.write(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
