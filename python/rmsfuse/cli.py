"""The rmsfuse command: ``python3 -m rmsfuse`` (or ``rmsfuse`` when installed).

    rmsfuse info [--json]          the library, the ISA in use and why, the CPU, cores and caches
    rmsfuse selftest [--quick]     every usable ISA against the scalar path, bit for bit
    rmsfuse bench [--quick]        the PyTorch drop-ins against torch.optim (needs torch)

Exit status: 0 success; 1 a selftest difference (or a failed check); 2 a usage
error, or a missing dependency (bench without PyTorch).

main(argv) is the entry point (``[project.scripts] rmsfuse = "rmsfuse.cli:main"``);
it returns the exit status.  bit_differences() is the comparison the selftest
makes, as the C tests make it (tests/test_isa.c): NaN-ness for NaNs, the bits
of everything else.
"""

import argparse
import ctypes
import glob
import importlib.util
import json
import os
import platform
import random
import statistics
import sys
import time

import numpy as np

import rmsfuse
from . import _lib

ENV_VARS = ("RMSFUSE_ISA", "RMSFUSE_LIBRARY", "RMSFUSE_POOL_LIBRARY")


def _prog():
    base = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return "python3 -m rmsfuse" if base in ("__main__.py", "-m", "") else base


# ---- progress --------------------------------------------------------------------------------------
class Progress:
    """Progress on stderr, shown once a task has run for a second: one updating line on a
    terminal, otherwise a line every few seconds; nothing with quiet=True."""

    def __init__(self, what, quiet=False, stream=None, delay=1.0, every=None):
        self.what, self.quiet, self.stream = what, quiet, stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = time.perf_counter()
        self.delay = delay
        self.every = every if every is not None else (0.1 if self.tty else 3.0)
        self.last = None
        self.shown = False

    def elapsed(self):
        return time.perf_counter() - self.t0

    def update(self, fraction, detail=""):
        if self.quiet:
            return
        now = self.elapsed()
        if now < self.delay or (self.last is not None and now - self.last < self.every):
            return
        self.last = now
        line = f"{self.what}: {100 * fraction:3.0f}% {detail} ({now:.1f} s)"
        if self.tty:
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.shown = True

    def done(self):
        if self.shown and self.tty and not self.quiet:
            self.stream.write("\r\033[K")
            self.stream.flush()


# ---- info --------------------------------------------------------------------------------------------
# AArch64 /proc/cpuinfo "CPU implementer" and "CPU part" of common server and desktop cores.
_ARM_IMPLEMENTERS = {0x41: "Arm", 0x42: "Broadcom", 0x43: "Cavium", 0x46: "Fujitsu", 0x48: "HiSilicon",
                     0x4e: "NVIDIA", 0x51: "Qualcomm", 0x61: "Apple", 0xc0: "Ampere"}
_ARM_PARTS = {(0x41, 0xd03): "Cortex-A53", (0x41, 0xd07): "Cortex-A57", (0x41, 0xd08): "Cortex-A72",
              (0x41, 0xd0b): "Cortex-A76", (0x41, 0xd0c): "Neoverse N1", (0x41, 0xd40): "Neoverse V1",
              (0x41, 0xd41): "Cortex-A78", (0x41, 0xd49): "Neoverse N2", (0x41, 0xd4f): "Neoverse V2",
              (0x41, 0xd8e): "Neoverse N3", (0x41, 0xd84): "Neoverse V3", (0x46, 0x001): "A64FX",
              (0x48, 0xd01): "Kunpeng 920", (0xc0, 0xac3): "AmpereOne", (0x4e, 0x004): "Carmel"}
# Flags of /proc/cpuinfo that the ISAs rmsfuse builds use (x86 "flags", AArch64 "Features").
_FEATURES = ("sse2", "avx", "avx2", "fma", "avx512f", "avx512vl", "asimd", "sve", "sve2")


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def cpu_info():
    """{"model", "vendor", "machine", "features"} from /proc/cpuinfo (None where it does not say)."""
    out = {"model": None, "vendor": None, "machine": platform.machine(), "features": []}
    text = _read("/proc/cpuinfo") or ""
    fields = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep and k.strip() not in fields:
            fields[k.strip()] = v.strip()
    if "model name" in fields:
        out["model"] = fields["model name"]
    out["vendor"] = fields.get("vendor_id")
    if "CPU implementer" in fields:
        try:
            imp, part = int(fields["CPU implementer"], 0), int(fields.get("CPU part", "0"), 0)
        except ValueError:
            imp, part = None, None
        if imp is not None:
            out["vendor"] = _ARM_IMPLEMENTERS.get(imp, f"implementer 0x{imp:02x}")
            name = _ARM_PARTS.get((imp, part))
            out["model"] = out["model"] or (f"{out['vendor']} {name}" if name else
                                            f"{out['vendor']} part 0x{part:03x}")
    if out["model"] is None:
        out["model"] = platform.processor() or None
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    out["features"] = [f for f in _FEATURES if f in flags]
    return out


def _fmt_bytes(n):
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            v = n / (1 << shift)
            return f"{v:.2f}".rstrip("0").rstrip(".") + " " + unit
    return f"{n} B"


# Values of rmsfuse_pool_topology's `what` (include/rmsfuse_pool.h, enum RMSFUSE_POOL_TOPO_*).
_TOPO_PACKAGES, _TOPO_CORES, _TOPO_PUS, _TOPO_NUMA, _TOPO_CACHE_BYTES, _TOPO_CACHE_COUNT = 0, 1, 2, 3, 16, 32


def _topology_hwloc():
    lib = _lib.pool_lib
    fn = getattr(lib, "rmsfuse_pool_topology", None) if lib is not None else None
    if fn is None:
        return None
    if fn(_TOPO_CORES) < 0:
        return None

    def val(what):
        v = fn(what)
        return None if v <= 0 else int(v)
    caches = []
    for level in range(1, 6):
        size = val(_TOPO_CACHE_BYTES + level)
        if size:
            caches.append({"level": level, "type": "data" if level == 1 else "unified", "size": size,
                           "count": val(_TOPO_CACHE_COUNT + level)})
    return {"source": "hwloc", "packages": val(_TOPO_PACKAGES), "cores": val(_TOPO_CORES), "pus": val(_TOPO_PUS),
            "numa_nodes": val(_TOPO_NUMA), "caches": caches}


def _parse_size(text):
    if not text:
        return None
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1].upper(), 1)
    try:
        return int(text.rstrip("KMGkmg")) * mult
    except ValueError:
        return None


def _topology_sysfs():
    cpus = sorted(glob.glob("/sys/devices/system/cpu/cpu[0-9]*"), key=lambda p: int(p.rsplit("cpu", 1)[1]))
    if not cpus:
        return None
    cores, packages = set(), set()
    for c in cpus:
        pkg, core = _read(c + "/topology/physical_package_id"), _read(c + "/topology/core_id")
        if pkg is not None and core is not None:
            packages.add(pkg)
            cores.add((pkg, core))
    caches = []
    for idx in sorted(glob.glob(cpus[0] + "/cache/index[0-9]*")):
        ctype, level = _read(idx + "/type"), _read(idx + "/level")
        if ctype not in ("Data", "Unified") or not (level or "").isdigit():
            continue
        name = os.path.basename(idx)
        shared = {_read(f"{c}/cache/{name}/shared_cpu_list") for c in cpus}
        shared.discard(None)
        caches.append({"level": int(level), "type": ctype.lower(), "size": _parse_size(_read(idx + "/size")),
                       "count": len(shared) or None})
    nodes = glob.glob("/sys/devices/system/node/node[0-9]*")
    return {"source": "sysfs", "packages": len(packages) or None, "cores": len(cores) or None, "pus": len(cpus),
            "numa_nodes": len(nodes) or None, "caches": sorted(caches, key=lambda c: c["level"])}


def topology():
    """Cores and caches: from hwloc through the pool library when it is loaded, else Linux's sysfs."""
    topo = None
    try:
        topo = _topology_hwloc()
    except (OSError, AttributeError):
        topo = None
    if topo is None:
        topo = _topology_sysfs() or {"source": None, "packages": None, "cores": None, "pus": None,
                                     "numa_nodes": None, "caches": []}
    topo["os_cpus"] = os.cpu_count()
    try:
        topo["usable_cpus"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        topo["usable_cpus"] = None
    topo["usable_cores"] = rmsfuse.machine_cores() if rmsfuse.pool_available() else None
    return topo


def _status(code):
    return {"code": code, "name": rmsfuse.status_name(code), "text": rmsfuse.strerror(code)}


def isa_report(cpu=None):
    """The active ISA, the compiled ones and whether each runs here, and why the active one was chosen."""
    active = rmsfuse.active_isa()  # the first use: RMSFUSE_ISA is applied (or ignored) now
    names = rmsfuse.isa_names()
    usable = [n for n in names if rmsfuse.isa_supported(n)]
    env = os.environ.get("RMSFUSE_ISA")
    env_status = rmsfuse.isa_env_status()
    vendor = (cpu or {}).get("vendor") or ""
    passed = [n for n in usable[usable.index(active) + 1:]] if active in usable else []
    why_not = {"avx512": f"AVX-512 is preferred only on AMD CPUs{' (this one: ' + vendor + ')' if vendor else ''}: "
                         "on Intel, 512-bit sqrt and division give no more elements per cycle (docs/dispatch.md)",
               "sve": "SVE is preferred only where its vectors are wider than NEON's 128 bits (docs/dispatch.md)"}
    detection = (f"detection: {active} is the best ISA that this CPU, the OS and this build can run "
                 f"and that is preferred here")
    if passed:
        detection += "; passed over: " + "; ".join(f"{n} ({why_not.get(n, 'not preferred on this CPU')})"
                                                 for n in passed)
    if env and env_status != 0:
        how = "env-ignored"
        reason = (f"RMSFUSE_ISA={env!r} was ignored ({rmsfuse.status_name(env_status)}: "
                  f"{rmsfuse.strerror(env_status)}), so {detection}")
    elif env and env != "auto":
        how = "forced"
        reason = (f"forced by RMSFUSE_ISA={env} (unset it, or set it to auto, for detection; usable here: "
                  f"{', '.join(usable)})")
    else:
        how = "detection"
        reason = ("RMSFUSE_ISA=auto: " if env == "auto" else "") + detection
    return {"active": active, "how": how, "reason": reason, "env_status": _status(env_status),
            "compiled": [{"name": n, "usable": n in usable, "active": n == active} for n in names]}


def _torch_version():
    if importlib.util.find_spec("torch") is None:
        return None
    try:
        import importlib.metadata as md
        return md.version("torch")
    except Exception:  # noqa: BLE001  (an installation without metadata)
        return "installed"


def _abspath(p):
    return os.path.abspath(p) if p and os.path.sep in p else p


def gather_info():
    cpu = cpu_info()
    return {
        "rmsfuse": {"version": rmsfuse.version(), "package": os.path.dirname(os.path.abspath(rmsfuse.__file__)),
                    "library": _abspath(rmsfuse.library_path), "pool_library": _abspath(_lib.pool_path),
                    "pool_available": rmsfuse.pool_available()},
        "isa": isa_report(cpu),
        "cpu": cpu,
        "topology": topology(),
        "environment": {k: os.environ.get(k) for k in ENV_VARS},
        "python": {"version": platform.python_version(), "executable": sys.executable, "numpy": np.__version__,
                   "torch": _torch_version()},
    }


def format_info(d):
    r, isa, cpu, t = d["rmsfuse"], d["isa"], d["cpu"], d["topology"]
    env_pool = d["environment"].get("RMSFUSE_POOL_LIBRARY")
    no_pool = (f"not loaded from RMSFUSE_POOL_LIBRARY={env_pool}" if env_pool else
               "not found (librmsfuse_pool is built when hwloc is found: Debian libhwloc-dev)")
    lines = [f"rmsfuse {r['version']}",
             f"  library       {r['library']}",
             f"  pool library  {r['pool_library'] or no_pool}",
             f"  package       {r['package']}",
             "",
             f"ISA in use: {isa['active']}",
             f"  why: {isa['reason']}",
             "  compiled in:  " + "  ".join(
                 f"{c['name']} ({'active' if c['active'] else 'usable' if c['usable'] else 'not usable here'})"
                 for c in isa["compiled"]),
             "",
             f"CPU: {cpu['model'] or 'unknown'} ({cpu['machine']}"
             + (f", {cpu['vendor']}" if cpu["vendor"] and cpu["vendor"] not in (cpu["model"] or "") else "") + ")"]
    if cpu["features"]:
        lines.append(f"  features:  {' '.join(cpu['features'])}")
    counts = ", ".join(f"{t[k]} {label}" for k, label in (("packages", "package(s)"), ("cores", "core(s)"),
                                                         ("pus", "hardware thread(s)"),
                                                         ("numa_nodes", "NUMA node(s)")) if t.get(k))
    lines.append(f"  topology:  {counts or 'unknown'}" + (f" (from {t['source']})" if t["source"] else ""))
    usable = [f"{t['usable_cpus']} of {t['os_cpus']} CPUs usable by this process" if t["usable_cpus"] else None,
              f"{t['usable_cores']} core(s) for the pool (threads=0)" if t["usable_cores"] else None]
    if any(usable):
        lines.append("  usable:    " + "; ".join(u for u in usable if u))
    if t["caches"]:
        lines.append("  caches:    " + ", ".join(
            f"L{c['level']}{'d' if c['type'] == 'data' else ''} {_fmt_bytes(c['size']) if c['size'] else '?'}"
            + (f" x {c['count']}" if c["count"] else "") for c in t["caches"]))
    env = d["environment"]
    lines += ["", "Environment:"]
    lines += [f"  {k}={v}" if v is not None else f"  {k} (not set)" for k, v in env.items()]
    p = d["python"]
    lines += ["", f"Python {p['version']} ({p['executable']}), NumPy {p['numpy']}, "
                  f"PyTorch {p['torch'] or 'not installed (rmsfuse bench and rmsfuse.torch need it)'}",
              f"Thread pool: {'available' if r['pool_available'] else 'not available'}"]
    return "\n".join(lines)


def cmd_info(args):
    d = gather_info()
    if args.json:
        print(json.dumps(d, indent=1))
    else:
        print(format_info(d))
    return 0


# ---- selftest ------------------------------------------------------------------------------------------
def bit_differences(ref, got):
    """Indices where float32 arrays `got` and `ref` differ: in their bits, except that any NaN
    equals any NaN (NaN-ness is compared for NaNs, the bits otherwise, as the C tests do: -0 is
    not +0, a NaN is not a number).  An empty array when they agree."""
    ref, got = np.asarray(ref, dtype=np.float32).ravel(), np.asarray(got, dtype=np.float32).ravel()
    if ref.shape != got.shape:
        raise ValueError(f"shapes differ: {ref.shape} and {got.shape}")
    rb, gb = ref.view(np.uint32), got.view(np.uint32)
    if np.array_equal(rb, gb):
        return np.zeros(0, dtype=np.intp)
    diff = rb != gb
    diff &= ~(np.isnan(ref) & np.isnan(got))
    return np.flatnonzero(diff)


# Special values (tests/test_isa.c's list, and the flush threshold's neighbours).
_SPECIAL_BITS = np.array([
    0x00000000, 0x80000000,              # +0, -0
    0x7f800000, 0xff800000,              # +Inf, -Inf
    0x7fc00000, 0xffc00000, 0x7f800001,  # NaNs (quiet of both signs, signalling)
    0x00000001, 0x80000001,              # smallest subnormals
    0x007fffff, 0x807fffff,              # largest subnormals
    0x00800000, 0x80800000, 0x00800001,  # FLT_MIN, -FLT_MIN, just above
    0x7f7fffff, 0xff7fffff,              # FLT_MAX, -FLT_MAX
    0x3f800000, 0xbf800000,              # 1, -1
    0x1e3ce508, 0x60ad78ec,              # 1e-20, 1e20
    0x00c00000, 0x3f000000,              # 1.5 FLT_MIN, 0.5
], dtype=np.uint32)
SPECIALS = _SPECIAL_BITS.view(np.float32)

# Which data an array holds: param, grad, non-negative state, momentum-like state, averages.
_KIND = {"param": "param", "grad": "grad", "square_avg": "sq", "sum": "sq", "exp_avg_sq": "sq",
         "max_exp_avg_sq": "sq2", "momentum_buf": "mom", "exp_avg": "mom", "grad_avg": "avg"}

# Hyperparameter sets of tests/test_rules.h (wd: coupled weight decay, wdd: decoupled; weight decay,
# momentum and dampening apply only where the combination turns them on).
HYPERS = {
    "rmsprop": [dict(lr=0.01, alpha=0.99, eps=1e-8, wd=1e-2, wdd=1e-2, momentum=0.9),
                dict(lr=1.0, alpha=0.0, eps=0.0, wd=0.5, wdd=1.0, momentum=0.5),
                dict(lr=1e-3, alpha=1.0, eps=1e-7, wd=1e-4, wdd=1e-4, momentum=0.99),
                dict(lr=3.0e38, alpha=0.9, eps=1e-30, wd=1e30, wdd=1e-30, momentum=0.999999),
                dict(lr=1e-40, alpha=0.1, eps=1e-45, wd=1e-38, wdd=1e-38, momentum=1e-7),
                dict(lr=0.1, alpha=0.5, eps=1e-3, wd=3.0, wdd=3.0, momentum=0.3),
                dict(lr=0.7, alpha=0.123456789, eps=0.0, wd=0.25, wdd=2.5, momentum=0.875)],
    "adagrad": [dict(lr=0.01, lr_decay=0.0, eps=1e-10, wd=1e-2, wdd=1e-2, step=1),
                dict(lr=1.0, lr_decay=0.5, eps=0.0, wd=0.5, wdd=1.0, step=3),
                dict(lr=3.0e38, lr_decay=0.0, eps=1e-30, wd=1e30, wdd=1e-30, step=1),
                dict(lr=1e-40, lr_decay=1e-3, eps=1e-45, wd=1e-38, wdd=1e-38, step=1000000),
                dict(lr=0.1, lr_decay=1e6, eps=1e-3, wd=3.0, wdd=3.0, step=2),
                dict(lr=0.7, lr_decay=0.123456789, eps=0.0, wd=0.25, wdd=2.5, step=17)],
    "sgd": [dict(lr=0.01, momentum=0.9, dampening=0.1, wd=1e-4, wdd=1e-4),
            dict(lr=1.0, momentum=1.5, dampening=0.5, wd=0.5, wdd=1.0),
            dict(lr=3.0e38, momentum=0.999999, dampening=1.0, wd=1e30, wdd=1e-30),
            dict(lr=1e-40, momentum=1e-7, dampening=1e-7, wd=1e-38, wdd=1e-38),
            dict(lr=0.1, momentum=10.0, dampening=0.25, wd=3.0, wdd=3.0),
            dict(lr=0.7, momentum=0.875, dampening=0.123456789, wd=0.25, wdd=2.5),
            dict(lr=2.0, momentum=1e30, dampening=0.75, wd=1.0, wdd=0.25)],
    "adam": [dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, wd=1e-2, wdd=1e-2, step=1),
             dict(lr=1.0, beta1=0.0, beta2=0.0, eps=0.0, wd=0.5, wdd=1.0, step=1),
             dict(lr=1e-3, beta1=0.99, beta2=0.9999, eps=1e-7, wd=1e-4, wdd=1e-4, step=1000),
             dict(lr=1e38, beta1=0.9, beta2=0.999, eps=1e-30, wd=1e30, wdd=1e-30, step=1),
             dict(lr=1e-40, beta1=0.5, beta2=0.75, eps=1e-45, wd=1e-38, wdd=1e-38, step=3),
             dict(lr=0.1, beta1=0.999999, beta2=0.999999, eps=1e-3, wd=3.0, wdd=3.0, step=2),
             dict(lr=0.7, beta1=0.123456789, beta2=0.987654321, eps=0.0, wd=0.25, wdd=2.5, step=17),
             dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, wd=1e-2, wdd=1e-2, step=1 << 62)],
}
_CONFIG_CLASS = {"rmsprop": "Config", "adagrad": "AdagradConfig", "sgd": "SGDConfig", "adam": "AdamConfig"}
# Hyperparameters that are zero or not per combination (each rule's toggles, as test_rules.h's).
_TOGGLES = {"rmsprop": ("weight_decay", "momentum"), "adagrad": ("weight_decay",),
            "sgd": ("weight_decay", "momentum", "dampening"), "adam": ("weight_decay",)}


def _make_config(rule, flags, on, hp):
    cls = getattr(rmsfuse, _CONFIG_CLASS[rule])
    fields = rmsfuse._RULES[rule].fields
    decoupled = bool(flags & rmsfuse.DECOUPLED_DECAY)
    kw = {}
    for f in fields:
        if f == "weight_decay":
            kw[f] = (hp["wdd"] if decoupled else hp["wd"]) if "weight_decay" in on else 0.0
        elif f in _TOGGLES[rule]:
            kw[f] = hp[f] if f in on else 0.0
        else:
            kw[f] = hp[f]
    cfg = cls(**kw)
    cfg.flags = flags
    return cfg


def rule_configurations(rule):
    """Every combination of the rule's flags (every subset) and of its optional terms (weight decay,
    momentum, dampening: zero or not) that the library accepts, each with one of the rule's
    hyperparameter sets (round robin, the next one that is valid where one is refused): a
    configuration for every kernel loop and flag of docs/dispatch.md, with the flush twins."""
    r = rmsfuse._RULES[rule]
    bits = [1 << i for i in range(32) if r.flag_mask >> i & 1]
    toggles = _TOGGLES[rule]
    hypers = HYPERS[rule]
    out = []
    for x in range(1 << (len(bits) + len(toggles))):
        flags = sum(b for i, b in enumerate(bits) if x >> i & 1)
        on = {t for i, t in enumerate(toggles) if x >> (len(bits) + i) & 1}
        for k in range(len(hypers)):
            cfg = _make_config(rule, flags, on, hypers[(len(out) + k) % len(hypers)])
            if r.check_config(ctypes.byref(cfg._c())) == 0:
                out.append(cfg)
                break
    return out


def _realistic(rng, n):
    g = (rng.standard_normal(n) * 2.0 ** rng.integers(-12, 3, n)).astype(np.float32)
    avg = (rng.standard_normal(n) * 0.1 * np.abs(g)).astype(np.float32)
    sq = (avg.astype(np.float64) ** 2 * 1.5 + np.abs(g.astype(np.float64)) ** 2 * (0.02 + rng.random(n)))
    return {"param": rng.standard_normal(n).astype(np.float32), "grad": g, "avg": avg,
            "mom": (rng.standard_normal(n) * 0.01).astype(np.float32), "sq": sq.astype(np.float32),
            "sq2": (sq * (1.0 + rng.random(n))).astype(np.float32)}


def _scaled(rng, n, kind):
    mag = 10.0 ** rng.uniform(-46.0, 38.6, n)
    if kind in ("sq", "sq2"):
        return mag.astype(np.float32)
    if rng.random() < 0.5:  # normal data at a scale, or uniform in [-scale, scale]
        return (rng.standard_normal(n) * mag).astype(np.float32)
    return (rng.uniform(-1.0, 1.0, n) * mag).astype(np.float32)


def _near_flush(rng, n, kind):
    """State at the flush threshold of RMSFUSE_FLUSH_SUBNORMAL (subnormals of both signs, -0, just
    above FLT_MIN), zero, tiny and subnormal gradients."""
    tiny = np.float32(np.finfo(np.float32).tiny)
    if kind == "param":
        return rng.standard_normal(n).astype(np.float32)
    if kind == "grad":
        choices = np.array([0.0, -0.0, 1e-30, -1e-30, 1e-40, -1e-40, 1e-20, 1e-3], dtype=np.float32)
        return choices[rng.integers(0, len(choices), n)]
    sub = (rng.integers(1, 0x00800000, n, dtype=np.uint32)).view(np.float32)
    above = (tiny * (1.0 + 3.0 * rng.random(n))).astype(np.float32)
    pick = rng.integers(0, 4, n)
    out = np.where(pick == 0, sub, np.where(pick == 1, above, np.where(pick == 2, -sub, np.float32(-0.0))))
    if kind in ("sq", "sq2"):
        out = np.where(pick == 2, sub, out)
    return out.astype(np.float32)


def make_inputs(rng, n, kinds):
    """{kind: float32 array of n}: realistic data, data at scales from 1e-46 to 1e38, the special
    values at every lane position, arbitrary bit patterns and state at the flush threshold, mixed
    element by element."""
    with np.errstate(over="ignore"):  # the largest scales round to Inf in float32, as meant
        return _make_inputs(rng, n, kinds)


def _make_inputs(rng, n, kinds):
    seg = rng.choice(5, size=n, p=[0.35, 0.2, 0.2, 0.1, 0.15])
    out = {k: np.empty(n, np.float32) for k in kinds}
    idx = [np.flatnonzero(seg == s) for s in range(5)]
    real = _realistic(rng, len(idx[0]))
    for k in kinds:
        out[k][idx[0]] = real[k]
        out[k][idx[1]] = _scaled(rng, len(idx[1]), k)
        m = len(idx[2])  # specials, each array drawing independently, half of them realistic
        base = _realistic(rng, m)[k]
        out[k][idx[2]] = np.where(rng.random(m) < 0.5, SPECIALS[rng.integers(0, len(SPECIALS), m)], base)
        out[k][idx[3]] = rng.integers(0, 1 << 32, len(idx[3]), dtype=np.uint64).astype(np.uint32).view(np.float32)
        out[k][idx[4]] = _near_flush(rng, len(idx[4]), k)
    return out


def tensor_sizes(elements, rng):
    """Tensor sizes adding up to `elements`: every n up to 64 (vector heads and tails), a spread up to
    300, a few thousands, then large ones (the prefetching loop from 65536)."""
    small = list(range(0, 65)) + list(range(65, 301, 7)) + [1000, 1023, 2049, 4099, 8191]
    sizes, left = [], elements
    for s in small:
        if s > left:
            break
        sizes.append(s)
        left -= s
    while left > 0:
        s = min(left, int(rng.choice([70001, 100003, 262147, 65536 + 13])))
        sizes.append(s)
        left -= s
    rng.shuffle(sizes)
    return np.array(sizes, dtype=np.int64)


class _RuleData:
    """One rule's inputs: a pool of `pool` elements per array (grad read in place), and the layout
    of a window: the tensors' sizes with gaps of 0..15 floats between them."""

    def __init__(self, rule, elements, pool, rng):
        self.rule = rule
        self.r = rmsfuse._RULES[rule]
        self.names = self.r.arrays
        self.sizes = tensor_sizes(elements, rng)
        gaps = rng.integers(0, 16, len(self.sizes))
        self.starts = np.concatenate([[0], np.cumsum(self.sizes + gaps)[:-1]]).astype(np.int64)
        self.span = int(self.starts[-1] + self.sizes[-1] + 16) if len(self.sizes) else 16
        self.pool = max(pool, 2 * self.span + 64)
        data = make_inputs(rng, self.pool, sorted({_KIND[a] for a in self.names}))
        self.inputs = [data[_KIND[a]] for a in self.names]
        self.grad_copy = self.inputs[1].copy()
        self.written = [i for i, a in enumerate(self.names) if self.r.written[a]]
        # work buffers: the scalar reference's and the ISA's, shifted by 0..15 floats per array
        self.work = {w: [np.empty(self.span + 16, np.float32) if i in self.written else None
                         for i in range(len(self.names))] for w in ("ref", "isa")}

    def used(self, cfg):
        return [i for i, a in enumerate(self.names)
                if a not in rmsfuse._OPTIONAL_STATE or rmsfuse._OPTIONAL_STATE[a](cfg)]

    def prepare(self, w, base, shifts, used):
        """Copies the window at `base` into work set `w` (each array shifted by shifts[i] floats);
        returns the tensor rows (the C tensor struct's layout: the arrays' addresses, then n)."""
        r = np.zeros((len(self.sizes), len(self.names) + 1), dtype=np.uintp)
        r[:, -1] = self.sizes
        for i in used:
            if i in self.written:
                buf = self.work[w][i]
                buf[shifts[i]:shifts[i] + self.span] = self.inputs[i][base:base + self.span]
                addr = buf.ctypes.data + 4 * shifts[i]
            else:  # grad: read where it is
                addr = self.inputs[i].ctypes.data + 4 * base
            r[:, i] = (addr + 4 * self.starts).astype(np.uintp)
        return r

    def window(self, w, i, shifts):
        return self.work[w][i][shifts[i]:shifts[i] + self.span]

    def locate(self, idx):
        """(tensor, element) of window index idx, element None in a gap between tensors."""
        t = int(np.searchsorted(self.starts, idx, side="right")) - 1
        k = idx - int(self.starts[t])
        return t, (k if k < self.sizes[t] else None)


def _hex(x):
    x = np.float32(x)
    return f"{x.view(np.uint32):#010x} ({x!r})".replace("np.float32(", "").replace(")", "") + ")"


def _describe_cfg(cfg):
    return repr(cfg).replace("rmsfuse.", "")


def selftest(elements, quick=False, quiet=False, seed=1, isas=None, steps=2, pool=None, out=None, err=None):
    """Runs the selftest; returns (exit status, summary dict)."""
    out = out or sys.stdout
    err = err or sys.stderr
    rng = np.random.default_rng(seed)
    names = rmsfuse.isa_names()
    simd = [n for n in names if n != "scalar" and rmsfuse.isa_supported(n)]
    if isas:
        unknown = [n for n in isas if n not in names]
        if unknown:
            print(f"selftest: unknown ISA {', '.join(unknown)}; this build has {', '.join(names)}", file=err)
            return 2, None
        unusable = [n for n in isas if n not in simd and n != "scalar"]
        if unusable:
            print(f"selftest: not usable here: {', '.join(unusable)}", file=err)
            return 2, None
        simd = [n for n in isas if n != "scalar"]
    before = rmsfuse.active_isa()
    configs = {rule: rule_configurations(rule) for rule in rmsfuse.RULES}
    total = sum(len(c) for c in configs.values())
    if not simd:
        print("selftest: no ISA but scalar selected: nothing to compare" if isas else
              f"selftest: only the scalar path is compiled in and usable here ({', '.join(names)} compiled): "
              "nothing to compare", file=out)
        return 0, {"rules": len(configs), "configurations": total, "isas": [], "elements": elements}
    pool = pool or max(8 * elements, 1 << 20 if not quick else 1 << 17)
    prog = Progress("selftest", quiet=quiet, stream=err)
    failures, shown, done, distinct = [], 0, 0, 0
    limit = 10
    try:
        for rule, cfgs in configs.items():
            data = _RuleData(rule, elements, pool, rng)
            distinct += min(data.pool, len(cfgs) * data.span)
            step_multi = data.r.step_multi
            for k, cfg in enumerate(cfgs):
                prog.update(done / total, f"{rule} configuration {k + 1}/{len(cfgs)}")
                done += 1
                used = data.used(cfg)
                base = int(k * data.span) % (data.pool - data.span)
                shifts = [int(s) for s in rng.integers(0, 16, len(data.names))]
                c = [cfg._c()]
                if steps > 1:
                    c += [(cfg.replace(step=cfg.step + s) if "step" in data.r.fields else cfg)._c()
                          for s in range(1, steps)]
                for isa in ["scalar"] + simd:
                    w = "ref" if isa == "scalar" else "isa"
                    rows = data.prepare(w, base, shifts, used)  # every ISA starts from the same window
                    rmsfuse.set_isa(isa)
                    for s, cc in enumerate(c):
                        status = step_multi(ctypes.byref(cc), rows.ctypes.data, len(rows))
                        if status != 0:
                            failures.append((rule, cfg, isa, "status", 0))
                            prog.done()
                            print(f"selftest: REFUSED {rule} {_describe_cfg(cfg)} on {isa}, step {s + 1}: "
                                  f"{rmsfuse.status_name(status)}", file=out)
                            break
                    if isa == "scalar":
                        continue
                    for i in used:
                        if i not in data.written:
                            continue
                        ref, got = data.window("ref", i, shifts), data.window("isa", i, shifts)
                        bad = bit_differences(ref, got)
                        if len(bad) == 0:
                            continue
                        failures.append((rule, cfg, isa, data.names[i], len(bad)))
                        if shown < limit:
                            shown += 1
                            idx = int(bad[0])
                            t, e = data.locate(idx)
                            where = (f"tensor {t} (n={data.sizes[t]}) element {e}" if e is not None
                                     else f"between tensors, after tensor {t}: a write out of bounds")
                            ins = ""
                            if e is not None:
                                ins = "; inputs: " + ", ".join(
                                    f"{a}={_hex(data.inputs[j][base + data.starts[t] + e])}"
                                    for j, a in enumerate(data.names) if j in used)
                            prog.done()
                            print(f"selftest: DIFFERENCE {rule} {_describe_cfg(cfg)}, {steps} step(s), ISA {isa}: "
                                  f"{data.names[i]}[{where}]: scalar {_hex(ref[idx])}, {isa} {_hex(got[idx])}"
                                  f"{ins} ({len(bad)} element(s) differ in this array)", file=out)
            if bit_differences(data.grad_copy, data.inputs[1]).size:
                failures.append((rule, None, None, "grad", 0))
                print(f"selftest: DIFFERENCE {rule}: the gradient, read only, was changed", file=out)
    finally:
        prog.done()
        rmsfuse.set_isa(before)
    seconds = prog.elapsed()
    summary = {"rules": len(configs), "configurations": total,
               "per_rule": {r: len(c) for r, c in configs.items()}, "isas": simd, "elements": elements,
               "steps": steps, "distinct_inputs": distinct, "seconds": seconds, "seed": seed,
               "differences": len(failures)}
    head = (f"selftest: {len(configs)} rules x {total} configurations x {len(simd)} ISA"
            f"{'s' if len(simd) != 1 else ''} ({', '.join(simd)}), {elements:,} elements each")
    if failures:
        print(f"{head} (seed {seed}): {len(failures)} DIFFERENCE(S) from scalar"
              + (f" (the first {shown} shown)" if shown < len(failures) else ""), file=out)
        return 1, summary
    print(f"{head}: all bit-identical to scalar", file=out)
    if not quiet:
        print(f"  ({steps} step{'s' if steps != 1 else ''} each, {distinct:,} distinct inputs, {seconds:.1f} s; "
              "configurations per rule: " + ", ".join(f"{r} {n}" for r, n in summary["per_rule"].items()) + ")",
              file=out)
    return 0, summary


def cmd_selftest(args):
    elements = args.elements if args.elements is not None else (16384 if args.quick else 131072)
    if elements < 1:
        print("selftest: --elements must be at least 1", file=sys.stderr)
        return 2
    isas = [n for n in args.isa.split(",") if n] if args.isa else None
    status, _ = selftest(elements, quick=args.quick, quiet=args.quiet, seed=args.seed, isas=isas,
                         steps=1 if args.quick else 2)
    return status


# ---- bench ---------------------------------------------------------------------------------------
def resnet50_shapes():
    """Parameter shapes of torchvision.models.resnet50() (torchvision/models/resnet.py:
    Bottleneck blocks [3, 4, 6, 3], expansion 4, BatchNorm weight and bias, fc 2048 -> 1000),
    in model.parameters() order: 161 tensors, 25,557,032 parameters.  (bench/python_bench.py uses it.)"""
    shapes = [(64, 3, 7, 7), (64,), (64,)]
    inplanes = 64
    for planes, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for b in range(blocks):
            shapes += [(planes, inplanes, 1, 1), (planes,), (planes,), (planes, planes, 3, 3), (planes,), (planes,),
                       (planes * 4, planes, 1, 1), (planes * 4,), (planes * 4,)]
            if b == 0:
                shapes += [(planes * 4, inplanes, 1, 1), (planes * 4,), (planes * 4,)]
            inplanes = planes * 4
    shapes += [(1000, 2048), (1000,)]
    return shapes


# torch 1.13's for-loop, pass by pass (operation, arrays read, arrays written; STREAM convention), for
# the traffic bound: bench/python_bench.py's CONFIGS too.
_RMSPROP = [("square_avg.mul_(alpha)", 1, 1), ("square_avg.addcmul_(g, g)", 2, 1), ("avg = square_avg.sqrt()", 1, 1),
            ("avg.add_(eps)", 1, 1)]
_ADAM = [("exp_avg.mul_(beta1)", 1, 1), ("exp_avg.add_(g)", 2, 1), ("exp_avg_sq.mul_(beta2)", 1, 1),
         ("exp_avg_sq.addcmul_(g, g)", 2, 1), ("denom = exp_avg_sq.sqrt()", 1, 1), ("denom / sqrt(bc2)", 1, 1),
         ("denom.add_(eps)", 1, 1), ("param.addcdiv_(exp_avg, denom)", 3, 1)]
BENCH_CONFIGS = {
    "rmsprop": ("RMSprop", {}, _RMSPROP + [("param.addcdiv_(g, avg)", 3, 1)]),
    "rmsprop momentum": ("RMSprop", {"momentum": 0.9}, _RMSPROP + [
        ("buf.mul_(momentum)", 1, 1), ("buf.addcdiv_(g, avg)", 3, 1), ("param.add_(buf)", 2, 1)]),
    "adagrad": ("Adagrad", {}, [("sum.addcmul_(g, g)", 2, 1), ("std = sum.sqrt()", 1, 1), ("std.add_(eps)", 1, 1),
                                ("param.addcdiv_(g, std)", 3, 1)]),
    "sgd momentum": ("SGD", {"momentum": 0.9}, [("buf.mul_(momentum)", 1, 1), ("buf.add_(g)", 2, 1),
                                                 ("param.add_(buf)", 2, 1)]),
    "adam": ("Adam", {}, _ADAM),
    "adamw wd": ("AdamW", {"weight_decay": 0.01}, [("param.mul_(1 - lr wd)", 1, 1)] + _ADAM),
}
BENCH_DEFAULT = "rmsprop,adam,sgd momentum"
IMPLS = ("rmsfuse", "torch loop", "torch foreach")
LR = 1e-4


def torch_bytes(cname):
    """Bytes per element of torch's for-loop step: 4 per array read or written, pass by pass."""
    return sum(4 * (r + w) for _, r, w in BENCH_CONFIGS[cname][2])


def fused_bytes(cname):
    """Bytes per element of the fused step: param and the used state read and written, grad read."""
    import torch
    import rmsfuse.torch as rt
    cls, kw, _ = BENCH_CONFIGS[cname]
    opt = getattr(rt, cls)([torch.zeros(1, requires_grad=True)], **dict({"lr": LR}, **kw))
    cfg = opt._config(opt.param_groups[0])
    rule = rmsfuse._RULES[cfg.rule]
    return sum(4 * (2 if rule.written[a] else 1) for a in rule.arrays if opt._uses(cfg, a))


def timed_rounds(opts, run, rounds, steps, seed=1, after_round=None):
    """Seconds per step of each implementation {name: optimizer}: `rounds` rounds, the
    implementations in a shuffled order in each (so that load from other processes hits them
    alike), `steps` calls of run(name, optimizer) each; after_round(r) after round r."""
    times = {i: [] for i in opts}
    order = list(opts)
    rng = random.Random(seed)
    for rnd in range(rounds):
        rng.shuffle(order)
        for impl in order:
            t0 = time.perf_counter()
            for _ in range(steps):
                run(impl, opts[impl])
            times[impl].append((time.perf_counter() - t0) / steps)
        if after_round is not None:
            after_round(rnd)
    return times


def _bench_measure(torch, cname, params, threads, pooled, rounds, steps, prog, frac, span):
    import rmsfuse.torch as rt
    cls, kw, _ = BENCH_CONFIGS[cname]
    opts = {"rmsfuse": getattr(rt, cls)(params, lr=LR, threads=(0 if pooled else None), **kw),
            "torch loop": getattr(torch.optim, cls)(params, lr=LR, foreach=False, **kw),
            "torch foreach": getattr(torch.optim, cls)(params, lr=LR, foreach=True, **kw)}
    torch.set_num_threads(threads)
    for opt in opts.values():  # warm-up: state allocated, pages touched
        for _ in range(2):
            opt.step()
    times = timed_rounds(opts, lambda impl, opt: opt.step(), rounds, steps, after_round=lambda rnd: prog.update(
        frac + span * (rnd + 1) / rounds, f"{cname}, {threads} thread(s), round {rnd + 1}/{rounds}"))
    if hasattr(opts["rmsfuse"], "close"):
        opts["rmsfuse"].close()
    return times


def cmd_bench(args):
    if importlib.util.find_spec("torch") is None:
        print("rmsfuse bench needs PyTorch, which is not installed (pip install torch; Debian: python3-torch)",
              file=sys.stderr)
        return 2
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in BENCH_CONFIGS]
    if unknown or not configs:
        print(f"bench: unknown configs {unknown}; choose from: {', '.join(BENCH_CONFIGS)}", file=sys.stderr)
        return 2
    prog = Progress("bench", quiet=args.quiet)
    prog.update(0.0, "importing torch")
    import torch
    import rmsfuse.torch  # noqa: F401
    rounds, steps = (1, 1) if args.quick else (args.rounds, args.steps)
    shapes = resnet50_shapes()
    title = f"ResNet-50 ({len(shapes)} tensors"
    if args.quick:
        shapes = shapes[:20]
        title = f"ResNet-50's first {len(shapes)} tensors ("
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=gen).requires_grad_() for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen) * 1e-2
    n = sum(p.numel() for p in params)
    title += f", {n / 1e6:.2f} M parameters)" if not args.quick else f"{n:,} parameters)"
    pooled = rmsfuse.pool_available()
    cores = (rmsfuse.machine_cores() if pooled else 0) or os.cpu_count() or 1
    thread_counts = [1] + ([cores] if pooled and cores > 1 else [])
    old_threads = torch.get_num_threads()
    results = []
    runs = len(configs) * len(thread_counts)
    try:
        for ci, cname in enumerate(configs):
            fb, tb = fused_bytes(cname), torch_bytes(cname)
            for ti, threads in enumerate(thread_counts):
                k = ci * len(thread_counts) + ti
                t = _bench_measure(torch, cname, params, threads, threads > 1, rounds, steps, prog, k / runs,
                                   1 / runs)
                med = {i: statistics.median(v) for i, v in t.items()}
                ratio = {i: statistics.median(a / b for a, b in zip(t[i], t["rmsfuse"])) for i in IMPLS[1:]}
                results.append({"config": cname, "optimizer": BENCH_CONFIGS[cname][0],
                                "kwargs": BENCH_CONFIGS[cname][1], "threads": threads, "ms": {
                                    i: med[i] * 1e3 for i in IMPLS}, "best_ms": {i: min(v) * 1e3 for i, v in t.items()},
                                "speedup": ratio, "bytes_torch": tb, "bytes_fused": fb, "bound": tb / fb})
    finally:
        torch.set_num_threads(old_threads)
        prog.done()
    ctx = {"model": title, "elements": n, "torch": torch.__version__, "rmsfuse": rmsfuse.version(),
           "isa": rmsfuse.active_isa(), "cores": cores, "pool": pooled, "rounds": rounds, "steps": steps,
           "cpu": cpu_info()["model"]}
    if args.json:
        print(json.dumps({"context": ctx, "results": results}, indent=1))
        return 0
    print(f"bench: {title}, float32 on the CPU; torch {ctx['torch']}, rmsfuse {ctx['rmsfuse']} ({ctx['isa']}), "
          f"{ctx['cpu'] or platform.machine()}")
    print(f"ms per opt.step(), median of {rounds} round(s) of {steps} step(s); x = torch time / rmsfuse time "
          "(median of the rounds' ratios); bound = bytes per element torch's loop moves / the fused step's")
    if not pooled:
        print("(the thread pool library is not available: one thread only)")
    head = ("config", "threads", "rmsfuse", "torch loop", "torch foreach", "vs loop", "vs foreach", "bound")
    rows = [head]
    for r in results:
        rows.append((r["config"], str(r["threads"]), f"{r['ms']['rmsfuse']:.2f}", f"{r['ms']['torch loop']:.2f}",
                     f"{r['ms']['torch foreach']:.2f}", f"{r['speedup']['torch loop']:.2f}x",
                     f"{r['speedup']['torch foreach']:.2f}x",
                     f"{r['bytes_torch']}/{r['bytes_fused']} = {r['bound']:.2f}x"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    for j, row in enumerate(rows):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if j == 0:
            print("  ".join("-" * w for w in widths))
    return 0


# ---- main ----------------------------------------------------------------------------------------------
def _parser():
    prog = _prog()
    p = argparse.ArgumentParser(prog=prog, description="rmsfuse: fused optimizer steps. Check the library, "
                                "the instruction set it uses and its results on this machine.",
                                epilog=f"'{prog} COMMAND --help' describes each command.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    i = sub.add_parser("info", help="the library, the ISA in use and why, the CPU, cores and caches",
                       description="The rmsfuse version and library paths, the instruction set (ISA) in use "
                       "and why, every ISA compiled in and whether it runs here, the CPU model, cores and "
                       "caches, the environment overrides in force and whether the thread pool is available.")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    s = sub.add_parser("selftest", help="every usable ISA against the scalar path, bit for bit",
                       description="Runs every rule in every flag and option combination on every ISA "
                       "compiled in and usable here, and the scalar path, on random and special inputs "
                       "(NaN, Inf, signed zeros, subnormals, huge and tiny values, data at many scales; "
                       "tensors of every small size, unaligned starts) and compares param and every state "
                       "array bit for bit (NaN-ness for NaNs). Exit status 1 on any difference.")
    s.add_argument("--quick", action="store_true", help="about a second: 16384 elements, one step")
    s.add_argument("--elements", type=int, metavar="N",
                   help="elements per configuration and ISA (default 131072, two steps; --quick 16384, one step)")
    s.add_argument("--isa", metavar="NAME[,NAME]", help="only these ISAs (default: every usable one)")
    s.add_argument("--seed", type=int, default=1, help="random seed (default 1: a failure reproduces)")
    s.add_argument("--quiet", action="store_true", help="no progress, only the result")
    b = sub.add_parser("bench", help="the PyTorch drop-ins against torch.optim (needs torch)",
                       description="Seconds per optimizer step of rmsfuse.torch.<Class> against "
                       "torch.optim.<Class> (foreach=False and True) over ResNet-50's parameter shapes, at "
                       "one thread and at all cores (rmsfuse's pool, torch.set_num_threads), with the "
                       "traffic bound: bytes per element of torch's loop over those of the fused step.")
    b.add_argument("--configs", default=BENCH_DEFAULT,
                   help=f"comma-separated, from: {', '.join(BENCH_CONFIGS)} (default: {BENCH_DEFAULT})")
    b.add_argument("--quick", action="store_true", help="20 tensors, one round of one step")
    b.add_argument("--rounds", type=int, default=5, help="rounds, implementations in shuffled order (default 5)")
    b.add_argument("--steps", type=int, default=2, help="steps per round (default 2)")
    b.add_argument("--json", action="store_true", help="machine-readable output")
    b.add_argument("--quiet", action="store_true", help="no progress")
    return p


def main(argv=None):
    """The command line; returns the exit status."""
    p = _parser()
    try:
        args = p.parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2)
        return e.code if isinstance(e.code, int) else 2
    if args.command is None:
        p.print_usage(sys.stderr)
        print(f"{p.prog}: a command is required: info, selftest or bench", file=sys.stderr)
        return 2
    if args.command == "bench" and (args.rounds < 1 or args.steps < 1):
        print("bench: --rounds and --steps must be at least 1", file=sys.stderr)
        return 2
    try:
        return {"info": cmd_info, "selftest": cmd_selftest, "bench": cmd_bench}[args.command](args)
    except BrokenPipeError:  # `rmsfuse info | head`: the reader left; no traceback
        sys.stdout = None
        return 0


if __name__ == "__main__":
    sys.exit(main())
