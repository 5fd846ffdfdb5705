#!/usr/bin/python3
"""Seconds per optimizer step: rmsfuse.torch.RMSprop against torch.optim.RMSprop.

usage: python_bench.py [--out DIR] [--model resnet50|gpt2|both] [--rounds R] [--steps K] [--quick]

The parameters are the tensor shapes of a real model (hard-coded below, with
their source), float32 on the CPU, each with a gradient.  Each implementation
gets its own optimizer over the same tensors:

  rmsfuse          rmsfuse.torch.RMSprop: one rmsfuse_rmsprop_step_multi call
                   (all threads: threads=0, a pool with one worker per core)
  torch loop       torch.optim.RMSprop(foreach=False)
  torch foreach    torch.optim.RMSprop(foreach=True)

at one thread (torch.set_num_threads(1); rmsfuse on the calling thread) and at
all threads (torch.set_num_threads(cores); rmsfuse's pool), for the default
configuration and with momentum 0.9.  Every figure is the time of one
opt.step() after warm-up steps (state allocated).  Rounds run the
implementations in a shuffled order, K steps each, so that load from other
processes hits them alike; the speed-up is the median over rounds of the
per-round ratio, and the table also gives the median and best seconds per
step.  Writes DIR/python_bench.json and DIR/python.md and prints the Markdown.
"""
import argparse
import json
import os
import platform
import random
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))

import torch  # noqa: E402

import rmsfuse  # noqa: E402
from rmsfuse.torch import RMSprop as FusedRMSprop  # noqa: E402

TARGET = 4.0  # rmsfuse vs torch at one thread, beyond L3
L3_BYTES = 32 << 20  # the L3 one core of the reference machine sees (getconf/sysfs inside a VM may not say)


def resnet50_shapes():
    """Parameter shapes of torchvision.models.resnet50() (torchvision/models/resnet.py:
    Bottleneck blocks [3, 4, 6, 3], expansion 4, BatchNorm weight and bias, fc 2048 -> 1000),
    in model.parameters() order: 161 tensors, 25,557,032 parameters."""
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


def gpt2_shapes():
    """Parameter shapes of GPT-2 small (OpenAI's 124M model as in Hugging Face's GPT2Model:
    wte 50257 x 768, wpe 1024 x 768, 12 blocks of ln_1, attn.c_attn (768 x 2304), attn.c_proj,
    ln_2, mlp.c_fc (768 x 3072), mlp.c_proj, then ln_f; the LM head is tied to wte):
    148 tensors, 124,439,808 parameters."""
    d = 768
    shapes = [(50257, d), (1024, d)]
    for _ in range(12):
        shapes += [(d,), (d,), (d, 3 * d), (3 * d,), (d, d), (d,), (d,), (d,), (d, 4 * d), (4 * d,), (4 * d, d), (d,)]
    shapes += [(d,), (d,)]
    return shapes


MODELS = {
    "resnet50": ("ResNet-50 (torchvision)", resnet50_shapes, 161, 25_557_032),
    "gpt2": ("GPT-2 small (124M)", gpt2_shapes, 148, 124_439_808),
}
CONFIGS = {"default": {}, "momentum": {"momentum": 0.9}}
BYTES = {"default": 20, "momentum": 28}  # STREAM bytes per element: the fused update's traffic
# torch.optim.RMSprop's traffic, STREAM convention, both loop and foreach (torch/optim/rmsprop.py, 1.13):
# default  square_avg.mul_ 8, addcmul_ 12, avg = sqrt 8, avg.add_(eps) 8, param.addcdiv_ 16    = 52
# momentum the same up to avg (36), buf.mul_ 8, buf.addcdiv_ 16, param.add_(buf) 12            = 72
TORCH_BYTES = {"default": 52, "momentum": 72}
IMPLS = ["rmsfuse", "torch loop", "torch foreach"]


def numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def cpu_context():
    ctx = {"machine": platform.machine(), "cores": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    ctx["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return ctx


def make_optimizer(impl, params, kw, threads):
    if impl == "rmsfuse":
        return FusedRMSprop(params, lr=1e-4, threads=(0 if threads > 1 else None), **kw)
    return torch.optim.RMSprop(params, lr=1e-4, foreach=(impl == "torch foreach"), **kw)


def measure(params, kw, threads, rounds, steps):
    opts = {impl: make_optimizer(impl, params, kw, threads) for impl in IMPLS}
    torch.set_num_threads(threads)
    for opt in opts.values():  # warm-up: state allocated, pages touched
        for _ in range(2):
            opt.step()
    times = {impl: [] for impl in IMPLS}
    order = list(IMPLS)
    rng = random.Random(1)
    for _ in range(rounds):
        rng.shuffle(order)
        for impl in order:
            opt = opts[impl]
            t0 = time.perf_counter()
            for _ in range(steps):
                opt.step()
            times[impl].append((time.perf_counter() - t0) / steps)
    for opt in opts.values():
        if isinstance(opt, FusedRMSprop):
            opt.close()
    return times


def run(models, rounds, steps, quick):
    cores = os.cpu_count() or 1
    thread_counts = [1] if cores == 1 or not rmsfuse.pool_available() else [1, cores]
    results = []
    for key in models:
        title, fn, count, total = MODELS[key]
        shapes = fn()
        assert len(shapes) == count and sum(numel(s) for s in shapes) == total, (key, len(shapes))
        if quick:  # the smoke test: the same code on the model's first tensors
            shapes = shapes[:20]
        gen = torch.Generator().manual_seed(0)
        params = [torch.randn(s, generator=gen).requires_grad_() for s in shapes]
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen) * 1e-2
        n = sum(p.numel() for p in params)
        for cname, kw in CONFIGS.items():
            for threads in thread_counts:
                t = measure(params, kw, threads, rounds, steps)
                med = {i: statistics.median(v) for i, v in t.items()}
                best = {i: min(v) for i, v in t.items()}
                speedup = {i: statistics.median(a / b for a, b in zip(t[i], t["rmsfuse"]))
                           for i in IMPLS if i != "rmsfuse"}
                results.append({"model": key, "title": title, "tensors": len(shapes), "elements": n,
                                "config": cname, "kwargs": kw, "threads": threads, "seconds": t,
                                "median": med, "best": best, "speedup_vs": speedup,
                                "gbs_rmsfuse": BYTES[cname] * n / med["rmsfuse"] / 1e9,
                                "gbs_torch": {i: TORCH_BYTES[cname] * n / med[i] / 1e9
                                              for i in IMPLS if i != "rmsfuse"}})
                print(f"python_bench: {key} {cname} threads={threads}: "
                      + ", ".join(f"{i} {med[i] * 1e3:.2f} ms" for i in IMPLS), file=sys.stderr)
        del params
    return results


def markdown(ctx, results, command):
    lines = ["## PyTorch drop-in: seconds per optimizer step", "",
             f"`{command}`: {ctx.get('cpu', '?')}, {ctx['cores']} cores; "
             f"torch {ctx['torch']}, rmsfuse {ctx['rmsfuse']} ({ctx['isa']}); load average "
             f"{ctx['load_start']:.2f} at the start, {ctx['load_end']:.2f} at the end.", "",
             "One `opt.step()` over every parameter of the model (float32, CPU, gradients present), after "
             "warm-up. rmsfuse = `rmsfuse.torch.RMSprop` (one fused C call; at all threads its pool); torch = "
             "`torch.optim.RMSprop` with `foreach=False` (loop) and `foreach=True`, under "
             "`torch.set_num_threads`. Median and best of "
             f"{ctx['rounds']} rounds of {ctx['steps']} steps, implementations in shuffled order per round; "
             "speed-up = median over rounds of the per-round time ratio.", "",
             "| model | config | threads | rmsfuse ms (best) | torch loop ms (best) | torch foreach ms (best) "
             "| rmsfuse GB/s | speed-up vs loop | vs foreach |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        ms = lambda i: f"{r['median'][i] * 1e3:.2f} ({r['best'][i] * 1e3:.2f})"  # noqa: E731
        lines.append(f"| {r['title']}: {r['tensors']} tensors, {r['elements'] / 1e6:.1f} M | {r['config']} | "
                     f"{r['threads']} | {ms('rmsfuse')} | {ms('torch loop')} | {ms('torch foreach')} | "
                     f"{r['gbs_rmsfuse']:.1f} | {r['speedup_vs']['torch loop']:.2f}x | "
                     f"{r['speedup_vs']['torch foreach']:.2f}x |")
    one = [r for r in results if r["threads"] == 1 and r["elements"] * 4 > ctx["l3_bytes"]]
    if one:
        worst = min(min(r["speedup_vs"].values()) for r in one)
        lines += ["", f"Target: at one thread, on models whose parameters alone exceed the L3 cache "
                      f"({ctx['l3_bytes'] >> 20} MB), rmsfuse at least "
                      f"{TARGET:g}x faster than both torch variants: worst {worst:.2f}x: "
                      f"**{'met' if worst >= TARGET else 'not met'}**.",
                  "",
                  "Memory traffic bounds the speed-up: per element torch's step moves at least "
                  + " / ".join(f"{TORCH_BYTES[c]}" for c in CONFIGS) + " bytes (" + " / ".join(CONFIGS)
                  + "; five and eight passes, counted in bench/python_bench.py), rmsfuse "
                  + " / ".join(f"{BYTES[c]}" for c in CONFIGS) + ", so where both run at the memory's "
                  "bandwidth (beyond L3) rmsfuse can be at most "
                  + " / ".join(f"{TORCH_BYTES[c] / BYTES[c]:.2f}x" for c in CONFIGS) + " faster; torch's "
                  "effective bandwidth at that traffic is in the JSON (`gbs_torch`)."]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=".", help="folder for python_bench.json and python.md")
    ap.add_argument("--model", choices=["resnet50", "gpt2", "both"], default="resnet50")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="a smoke test: 20 tensors, 1 round of 1 step")
    ap.add_argument("--command", default=None, help="how the run was made, for the report")
    ap.add_argument("--l3-mb", type=int, default=L3_BYTES >> 20, help="L3 size for the target (default 32)")
    a = ap.parse_args()
    if a.quick:
        a.rounds, a.steps = 1, 1
    models = ["resnet50", "gpt2"] if a.model == "both" else [a.model]
    ctx = cpu_context()
    ctx.update(torch=torch.__version__, rmsfuse=rmsfuse.version(), isa=rmsfuse.active_isa(),
               library=rmsfuse.library_path, pool=rmsfuse.pool_available(), rounds=a.rounds, steps=a.steps,
               load_start=os.getloadavg()[0], quick=a.quick, l3_bytes=a.l3_mb << 20)
    if not rmsfuse.pool_available():
        print("python_bench.py: librmsfuse_pool not found: one thread only", file=sys.stderr)
    results = run(models, a.rounds, a.steps, a.quick)
    ctx["load_end"] = os.getloadavg()[0]
    command = a.command or "bench/python_bench.py " + " ".join(sys.argv[1:])
    md = markdown(ctx, results, command)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "python_bench.json"), "w") as f:
        json.dump({"context": ctx, "results": results}, f, indent=1)
    with open(os.path.join(a.out, "python.md"), "w") as f:
        f.write(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
