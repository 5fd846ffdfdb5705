#!/usr/bin/python3
"""Seconds per optimizer step: every rmsfuse.torch drop-in against its torch.optim class.

usage: python_bench.py [--out DIR] [--model resnet50|gpt2|both] [--rounds R] [--steps K] [--quick]
                       [--configs NAME,...] [--train] [--train-only] [--storage] [--storage-only]
                       [--storage-configs NAME,...] [--sparse] [--sparse-only]
                       [--sparse-configs NAME,...] [--sparse-zeros PCT,...] [--sparse-steps N]

The parameters are the tensor shapes of a real model (hard-coded below, with
their source), float32 on the CPU, each with a gradient.  For each
configuration (CONFIGS: RMSprop, RMSprop with momentum, Adagrad, SGD with
momentum, Adam, AdamW with weight decay) each implementation gets its own
optimizer over the same tensors:

  rmsfuse          rmsfuse.torch.<Class>: one rmsfuse_<rule>_step_multi call
                   (all threads: threads=0, a pool with one worker per core)
  torch loop       torch.optim.<Class>(foreach=False)
  torch foreach    torch.optim.<Class>(foreach=True)

at one thread (torch.set_num_threads(1); rmsfuse on the calling thread) and at
all threads (torch.set_num_threads(cores); rmsfuse's pool).  Every figure is
the time of one opt.step() after warm-up steps (state allocated).  Rounds run
the implementations in a shuffled order, K steps each, so that load from
other processes hits them alike; the speed-up is the median over rounds of
the per-round ratio, and the table also gives the median and best seconds per
step.  Beside each speed-up the table prints the traffic bound: the bytes per
element torch 1.13's for-loop moves (counted pass by pass in CONFIGS) over the
bytes of the fused step (derived from the rule's arrays), the most a fused
step can gain where both run at memory bandwidth.  Writes
DIR/python_bench.json and DIR/python.md and prints the Markdown.

--train adds the training-step benchmark: the step with loss scaling and
clipping by global norm, torch 1.13's sequence on the CPU (unscale by hand,
clip_grad_norm_, skip when the norm is not finite, opt.step()) against
opt.step(grad_scale=) with max_grad_norm= (the norm's pass, then the fused
step) and against the drop-in's plain step, with the traffic bounds
(train_markdown).

--storage adds the bf16-model benchmark (--storage-only runs it alone): the model's parameters and
gradients in bf16, the drop-in with bf16 state, with float32 master weights, and with float32 master
weights and 8-bit state, against torch 1.13's optimizers over the bf16 parameters (loop and foreach;
its state is bf16 too) and against its usual mixed-precision loop over float32 master copies
(TorchMaster), at one thread and all threads, with each optimizer's state bytes per parameter
(storage_markdown; --storage-configs, default rmsprop momentum and adamw wd).

--sparse adds the sparse-gradients benchmark (--sparse-only runs it alone):
the steady state of a step when a fixed share of the gradient entries is
exactly zero step after step (pruned or masked weights, dead units), where
decaying state sinks into the subnormal range (docs/math.md, "Subnormal-safe
state").  The configurations are the C benchmark's sparse flag sets with
torch's defaults (SPARSE_CONFIGS; --sparse-configs), the shares of zeros
--sparse-zeros (default 0,10,50,90 %).  As the C benchmark does
(docs/performance.md, "Sparse gradients"), the steady state is made once on
8192 elements: 100 dense steps, then masked steps (at least --sparse-steps)
until a step leaves every masked element's state unchanged, with
rmsfuse.torch.<Class>(flush_subnormal=False), whose state is torch's up to
rounding (test_torch; state_dicts move both ways).  State, parameters and
gradients are then tiled to each size (the issue's 1 x 8192; in cache 4 x 64
Ki, 1 MiB per array; beyond L3 4 x 3 Mi, 48 MiB per array, or 1.5 x --l3-mb per
array when that is more): each element's update depends on its own values
only.  Each implementation loads that state, takes 20 masked steps of its own
(the flushing ones flush the state), and is timed at one thread:

  drop-in          rmsfuse.torch.<Class>() (flush_subnormal=True, the default)
  drop-in exact    rmsfuse.torch.<Class>(flush_subnormal=False): exact IEEE state
  torch loop       torch.optim.<Class>(foreach=False)
  torch loop FTZ   the same under torch.set_flush_denormal(True) (FTZ and DAZ on the
                   thread while it steps, reset before anything else runs)

The table gives ns per element of one step (best of the rounds), the
slowdown against the same implementation's dense steady state (0 % zeros)
and the share of state elements that are subnormal when timed.  The JSON's
"sparse" list has one record per configuration, size, share and
implementation in the format bench/report.py reads (rule, impl, zero_pct,
elements, best and median seconds per step), so the report shows these rows
beside the C benchmark's.
"""
import argparse
import copy
import json
import math
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
import rmsfuse.torch  # noqa: E402
from rmsfuse.cli import BENCH_CONFIGS, LR, fused_bytes, resnet50_shapes, timed_rounds, torch_bytes  # noqa: E402

TARGET = 4.0  # RMSprop: rmsfuse vs torch at one thread, beyond L3 (the first issue's target)
L3_BYTES = 32 << 20  # the L3 one core of the reference machine sees (getconf/sysfs inside a VM may not say)


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
# torch 1.13's for-loop (_single_tensor_<rule> in torch/optim/<rule>.py), pass by pass: (operation,
# arrays read, arrays written), STREAM convention (each operand array read once, written once, no
# write-allocate; a tensor read twice by one op, as addcmul_(g, g), counted once); the foreach variant
# runs the same passes over lists.  The package's table (python/rmsfuse/cli.py: `python3 -m rmsfuse
# bench` uses it too), as ResNet-50's shapes.
CONFIGS = BENCH_CONFIGS
IMPLS = ["rmsfuse", "torch loop", "torch foreach"]


def numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def thread_counts():
    """The thread counts timed: 1, and every core where there are several and the pool is there."""
    cores = os.cpu_count() or 1
    return [1] if cores == 1 or not rmsfuse.pool_available() else [1, cores]


def model_shapes(key, quick):
    """A model's title and parameter shapes (checked against its published counts); --quick: the first 20."""
    title, fn, count, total = MODELS[key]
    shapes = fn()
    assert len(shapes) == count and sum(numel(s) for s in shapes) == total, (key, len(shapes))
    return title, shapes[:20] if quick else shapes


def med_best(t):
    """{impl: median seconds}, {impl: best seconds} of timed_rounds' lists."""
    return {i: statistics.median(v) for i, v in t.items()}, {i: min(v) for i, v in t.items()}


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


def make_optimizer(cname, impl, params, threads):
    cls, kw, _ = CONFIGS[cname]
    if impl == "rmsfuse":
        return getattr(rmsfuse.torch, cls)(params, lr=LR, threads=(0 if threads > 1 else None), **kw)
    return getattr(torch.optim, cls)(params, lr=LR, foreach=(impl == "torch foreach"), **kw)


def time_steps(opts, threads, rounds, steps):
    """Seconds per opt.step() of each optimizer {name: optimizer} at `threads` threads: two
    warm-up steps each (state allocated, pages touched), then timed_rounds."""
    torch.set_num_threads(threads)
    for opt in opts.values():
        for _ in range(2):
            opt.step()
    return timed_rounds(opts, lambda impl, opt: opt.step(), rounds, steps)


def close_all(opts):
    """Stops the drop-ins' thread pools (the optimizers that have one)."""
    for opt in opts.values():
        if hasattr(opt, "close"):
            opt.close()


def measure(cname, params, threads, rounds, steps):
    opts = {impl: make_optimizer(cname, impl, params, threads) for impl in IMPLS}
    times = time_steps(opts, threads, rounds, steps)
    close_all(opts)
    return times


def run(models, configs, rounds, steps, quick):
    results = []
    for key in models:
        title, shapes = model_shapes(key, quick)
        gen = torch.Generator().manual_seed(0)
        params = [torch.randn(s, generator=gen).requires_grad_() for s in shapes]
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen) * 1e-2
        n = sum(p.numel() for p in params)
        for cname in configs:
            fb, tb = fused_bytes(cname), torch_bytes(cname)
            for threads in thread_counts():
                t = measure(cname, params, threads, rounds, steps)
                med, best = med_best(t)
                speedup = {i: statistics.median(a / b for a, b in zip(t[i], t["rmsfuse"]))
                           for i in IMPLS if i != "rmsfuse"}
                results.append({"model": key, "title": title, "tensors": len(shapes), "elements": n,
                                "config": cname, "optimizer": CONFIGS[cname][0], "kwargs": CONFIGS[cname][1],
                                "threads": threads, "seconds": t, "median": med, "best": best,
                                "speedup_vs": speedup, "bytes_fused": fb, "bytes_torch": tb,
                                "bound": tb / fb, "gbs_rmsfuse": fb * n / med["rmsfuse"] / 1e9,
                                "gbs_torch": {i: tb * n / med[i] / 1e9 for i in IMPLS if i != "rmsfuse"}})
                print(f"python_bench: {key} {cname} threads={threads}: "
                      + ", ".join(f"{i} {med[i] * 1e3:.2f} ms" for i in IMPLS), file=sys.stderr)
        del params
    return results


# ---- the training step: unscale + found-inf + clip by global norm + update ------------------------
TRAIN_IMPLS = ["rmsfuse train", "rmsfuse step", "torch loop", "torch foreach"]
TRAIN_MAX_NORM = 1.0
# torch's sequence per element, beyond the optimizer's passes (STREAM convention): the unscale
# g.mul_(inv) 8, clip_grad_norm_'s norm (one read) 4 and its g.mul_(coef) 8.  rmsfuse's: the norm's
# read 4, the unscale and the clip folded into the step's read of g.
TORCH_TRAIN_EXTRA, FUSED_TRAIN_EXTRA = 20, 4


def train_step(impl, opt, params, scale):
    """One training step with loss scale `scale`: the gradients are divided by it, the step skipped if
    one is Inf or NaN, clipped to global norm TRAIN_MAX_NORM, then the update."""
    if impl == "rmsfuse train":
        opt.step(grad_scale=scale)
    elif impl == "rmsfuse step":
        opt.step()
    else:  # torch 1.13 on the CPU: no GradScaler, so its unscale by hand, then clip_grad_norm_
        grads = [p.grad for p in params]
        if impl == "torch foreach":
            torch._foreach_mul_(grads, 1.0 / scale)
        else:
            for g in grads:
                g.mul_(1.0 / scale)
        total = torch.nn.utils.clip_grad_norm_(params, TRAIN_MAX_NORM)
        if torch.isfinite(total):  # the found-inf check, from the norm (no extra pass)
            opt.step()


def measure_train(cname, params, threads, rounds, steps):
    cls, kw, _ = CONFIGS[cname]
    opts = {}
    for impl in TRAIN_IMPLS:
        if impl.startswith("rmsfuse"):
            extra = {"max_grad_norm": TRAIN_MAX_NORM} if impl == "rmsfuse train" else {}
            opts[impl] = getattr(rmsfuse.torch, cls)(params, lr=LR, threads=(0 if threads > 1 else None),
                                                     **kw, **extra)
        else:
            opts[impl] = getattr(torch.optim, cls)(params, lr=LR, foreach=(impl == "torch foreach"), **kw)
    torch.set_num_threads(threads)
    # The loss scale alternates 2 and 1/2, so torch's in-place unscale returns the gradients to their
    # values every two steps; after the first clip their norm stays at TRAIN_MAX_NORM (clip factor 1
    # - 1e-6 each step): the same work every step, and every rmsfuse step clips (its gradients keep
    # their norm, ~50 for these).
    k = 0
    for impl, opt in opts.items():  # warm-up: state allocated, pages touched, torch's grads clipped once
        for _ in range(2):
            train_step(impl, opt, params, 2.0 if k % 2 == 0 else 0.5)
            k += 1

    def one(impl, opt):
        nonlocal k
        train_step(impl, opt, params, 2.0 if k % 2 == 0 else 0.5)
        k += 1

    times = timed_rounds(opts, one, rounds, 2 * steps, seed=2)  # whole pairs of scales
    close_all(opts)
    return times


def run_train(models, configs, rounds, steps, quick):
    results = []
    for key in models:
        title, shapes = model_shapes(key, quick)
        gen = torch.Generator().manual_seed(0)
        params = [torch.randn(s, generator=gen).requires_grad_() for s in shapes]
        n = sum(p.numel() for p in params)
        for cname in configs:
            for p in params:  # every configuration starts from the same gradients
                p.grad = torch.randn(p.shape, generator=gen) * 1e-2
            fb, tb = fused_bytes(cname), torch_bytes(cname)
            for threads in thread_counts():
                t = measure_train(cname, params, threads, rounds, steps)
                med, best = med_best(t)
                ratio = {i: statistics.median(a / b for a, b in zip(t[i], t["rmsfuse train"]))
                         for i in TRAIN_IMPLS if i != "rmsfuse train"}
                results.append({"model": key, "title": title, "tensors": len(shapes), "elements": n,
                                "config": cname, "optimizer": CONFIGS[cname][0], "threads": threads,
                                "seconds": t, "median": med, "best": best, "ratio_vs": ratio,
                                "bytes_fused_train": fb + FUSED_TRAIN_EXTRA, "bytes_fused_step": fb,
                                "bytes_torch_train": tb + TORCH_TRAIN_EXTRA})
                print(f"python_bench: train {key} {cname} threads={threads}: "
                      + ", ".join(f"{i} {med[i] * 1e3:.2f} ms" for i in TRAIN_IMPLS), file=sys.stderr)
        del params
    return results


def train_markdown(ctx, results):
    if not results:
        return []
    lines = ["", "## PyTorch drop-ins: the training step (unscale, found-inf, clip by global norm, update)", "",
             "One training step over every parameter of the model with loss scaling and clipping, as torch 1.13 "
             "does it on the CPU (it has no CPU GradScaler): `g.mul_(1/scale)` per gradient (loop) or "
             "`torch._foreach_mul_` (foreach), `clip_grad_norm_(params, 1.0)`, the step only if the returned "
             "norm is finite, then `opt.step()`; rmsfuse: `opt.step(grad_scale=scale)` with "
             "`max_grad_norm=1.0` (the norm's read-only pass, then the step with the unscale, the found-inf "
             "skip and the clip factor folded in). `rmsfuse step` is the same drop-in's plain step, for what "
             "the training step adds. Scales alternate 2 and 1/2; every step clips. Median (best) of "
             f"{ctx['rounds']} rounds of {2 * ctx['steps']} steps, shuffled order; ratios are medians of "
             "per-round ratios. Bound = bytes per element moved by torch's sequence / by rmsfuse's (the "
             "optimizer's passes plus 20 for torch: unscale 8, norm 4, clip 8; plus 4 for rmsfuse: the norm's "
             "read); own bound = the plain step's bytes / the training step's.", "",
             "| model | config | threads | rmsfuse train ms | rmsfuse step ms | torch loop ms | torch foreach ms "
             "| vs loop | bound | vs foreach | train / step | own bound |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        ms = lambda i: f"{r['median'][i] * 1e3:.2f} ({r['best'][i] * 1e3:.2f})"  # noqa: E731
        bt, bf, bs = r["bytes_torch_train"], r["bytes_fused_train"], r["bytes_fused_step"]
        lines.append(f"| {r['title']}: {r['tensors']} tensors, {r['elements'] / 1e6:.1f} M | {r['config']} | "
                     f"{r['threads']} | {ms('rmsfuse train')} | {ms('rmsfuse step')} | {ms('torch loop')} | "
                     f"{ms('torch foreach')} | {r['ratio_vs']['torch loop']:.2f}x | {bt}/{bf} = {bt / bf:.2f}x | "
                     f"{r['ratio_vs']['torch foreach']:.2f}x | {1 / r['ratio_vs']['rmsfuse step']:.2f} | "
                     f"{bf}/{bs} = {bf / bs:.2f} |")
    return lines


# ---- bf16 parameters: the drop-ins' storage choices against torch ------------------------------
# A bf16 model (every parameter and gradient bf16), three storage choices of the drop-in against what
# torch 1.13 offers for the same model: its optimizers over the bf16 parameters (state in bf16, each
# operation rounded to bf16: not the same arithmetic as rmsfuse's, which rounds once per stored
# value), and the usual mixed-precision loop over float32 master copies (TorchMaster).  8-bit state has
# no torch counterpart; it is compared with the float32 master loop it replaces.
STORAGE_DEFAULT_CONFIGS = "rmsprop momentum,adamw wd"
STORAGE_DROPINS = {"rmsfuse bf16": (None, torch.bfloat16), "rmsfuse fp32 master": ("fp32", torch.float32),
                   "rmsfuse fp32 master + q8": ("fp32", "q8")}
STORAGE_IMPLS = ["rmsfuse bf16", "torch bf16 loop", "torch bf16 foreach", "rmsfuse fp32 master",
                 "torch fp32 master", "rmsfuse fp32 master + q8"]
# (drop-in, torch): the speed-ups the table gives
STORAGE_PAIRS = [("rmsfuse bf16", "torch bf16 loop"), ("rmsfuse bf16", "torch bf16 foreach"),
                 ("rmsfuse fp32 master", "torch fp32 master"), ("rmsfuse fp32 master + q8", "torch fp32 master")]


class TorchMaster:
    """torch.optim.<Class> over float32 master copies of bf16 parameters, as a training loop
    without fused types writes it: each step the bf16 gradients copied into the masters'
    gradients, the step over the masters, the masters copied (rounded to nearest even) into the
    bf16 parameters.  The for-loop step (foreach=False), torch 1.13's default (foreach=None
    means False in torch/optim/<rule>.py): this loop with foreach=True took 264 ms per step at one
    thread for RMSprop with momentum over ResNet-50's shapes on the Zen 5 VM (45 at two threads)."""

    def __init__(self, cls, params, kw):
        self.params = list(params)
        self.master = [p.detach().float() for p in self.params]
        for m in self.master:
            m.grad = torch.zeros_like(m)
        self.opt = getattr(torch.optim, cls)(self.master, lr=LR, foreach=False, **kw)

    @property
    def state(self):
        """Per parameter, what this loop keeps beside the model (as torch.optim's state): its master,
        the master's gradient and the inner optimizer's state of the master."""
        return {p: {"master": m, "master_grad": m.grad, **self.opt.state[m]} for p, m in zip(self.params, self.master)}

    def step(self):
        with torch.no_grad():
            for p, m in zip(self.params, self.master):
                m.grad.copy_(p.grad)
        self.opt.step()
        with torch.no_grad():
            for p, m in zip(self.params, self.master):
                p.copy_(m)


def make_storage_optimizer(cname, impl, params, threads):
    cls, kw, _ = CONFIGS[cname]
    if impl in STORAGE_DROPINS:
        mw, sd = STORAGE_DROPINS[impl]
        return getattr(rmsfuse.torch, cls)(params, lr=LR, threads=(0 if threads > 1 else None), master_weights=mw,
                                          state_dtype=sd, **kw)
    if impl == "torch fp32 master":
        return TorchMaster(cls, params, kw)
    return getattr(torch.optim, cls)(params, lr=LR, foreach=(impl == "torch bf16 foreach"), **kw)


def state_bytes(opt):
    """Bytes of the tensors an optimizer keeps beside the model: those of its state (not 0-dim step counts)."""
    return sum(v.numel() * v.element_size() for st in opt.state.values() for v in st.values()
               if torch.is_tensor(v) and v.dim() > 0)


def run_storage(models, configs, rounds, steps, quick):
    results = []
    for key in models:
        title, shapes = model_shapes(key, quick)
        gen = torch.Generator().manual_seed(0)
        params = [torch.randn(s, generator=gen).to(torch.bfloat16).requires_grad_() for s in shapes]
        for p in params:
            p.grad = (torch.randn(p.shape, generator=gen) * 1e-2).to(torch.bfloat16)
        n = sum(p.numel() for p in params)
        for cname in configs:
            for threads in thread_counts():
                opts = {i: make_storage_optimizer(cname, i, params, threads) for i in STORAGE_IMPLS}
                t = time_steps(opts, threads, rounds, steps)
                mem = {i: state_bytes(o) / n for i, o in opts.items()}
                close_all(opts)
                med, best = med_best(t)
                speedup = {f"{a} vs {b}": statistics.median(x / y for x, y in zip(t[b], t[a])) for a, b in STORAGE_PAIRS}
                results.append({"model": key, "title": title, "tensors": len(shapes), "elements": n,
                                "config": cname, "optimizer": CONFIGS[cname][0], "kwargs": CONFIGS[cname][1],
                                "threads": threads, "seconds": t, "median": med, "best": best,
                                "speedup": speedup, "state_bytes_per_param": mem})
                print(f"python_bench: storage {key} {cname} threads={threads}: "
                      + ", ".join(f"{i} {med[i] * 1e3:.2f} ms" for i in STORAGE_IMPLS), file=sys.stderr)
        del params
    return results


def storage_markdown(ctx, results):
    if not results:
        return []
    lines = ["", "## PyTorch drop-ins: a bf16 model", "",
             "One `opt.step()` over every parameter of the model, parameters and gradients bf16 (CPU). "
             "`rmsfuse bf16`: the drop-in with `master_weights=None, state_dtype=torch.bfloat16` (the "
             "parameters rounded each step, bf16 state), against `torch.optim.<Class>` over the bf16 "
             "parameters (`foreach=False` and `True`; its state is bf16 too, but every operation rounds to "
             "bf16: not the same arithmetic). `rmsfuse fp32 master`: `master_weights=\"fp32\"` (a float32 "
             "copy in the state; the default), against `torch fp32 master`: `torch.optim.<Class>` (the for-loop, "
             "torch's default on the CPU) over float32 master copies, the bf16 gradients copied into theirs before the step and the masters "
             "copied into the bf16 parameters after it, as a mixed-precision loop without fused types does it. "
             "`+ q8`: the same drop-in with `state_dtype=\"q8\"` (8-bit block-quantised state), against the same "
             "torch loop (torch has no 8-bit state). State: bytes per parameter the optimizer keeps beside the "
             f"model. Median (best) of {ctx['rounds']} rounds of {ctx['steps']} steps, shuffled order; "
             "speed-ups are medians of per-round ratios.", "",
             "| model | config | threads | " + " | ".join(f"{i} ms" for i in STORAGE_IMPLS) + " | "
             + " | ".join(f"{a} vs {b}" for a, b in STORAGE_PAIRS) + " |",
             "| --- | --- | --- |" + " --- |" * (len(STORAGE_IMPLS) + len(STORAGE_PAIRS))]
    for r in results:
        ms = lambda i: f"{r['median'][i] * 1e3:.2f} ({r['best'][i] * 1e3:.2f})"  # noqa: E731
        lines.append(f"| {r['title']}: {r['tensors']} tensors, {r['elements'] / 1e6:.1f} M | {r['config']} | "
                     f"{r['threads']} | " + " | ".join(ms(i) for i in STORAGE_IMPLS) + " | "
                     + " | ".join(f"{r['speedup'][f'{a} vs {b}']:.2f}x" for a, b in STORAGE_PAIRS) + " |")
    lines += ["", "Optimizer state, bytes per parameter (beside the bf16 model's 2 + 2 for its gradient):", "",
              "| config | " + " | ".join(STORAGE_IMPLS) + " |", "| --- |" + " --- |" * len(STORAGE_IMPLS)]
    for cname in dict.fromkeys(r["config"] for r in results):
        r = next(x for x in results if x["config"] == cname)
        lines.append(f"| {cname} | " + " | ".join(f"{r['state_bytes_per_param'][i]:.3g}" for i in STORAGE_IMPLS) + " |")
    return lines


# ---- sparse gradients: the steady state with a share of exactly-zero gradient entries ----------
# The configurations of the C benchmark's sparse flag sets (bench/rmsfuse_bench.c, docs/performance.md
# "Sparse gradients"): torch's defaults, RMSprop with momentum 0.9 as in the issue.  AdaGrad's sum never
# decays: it shows what the mask alone costs.
SPARSE_CONFIGS = {
    "rmsprop momentum": ("RMSprop", {"momentum": 0.9}),
    "rmsprop": ("RMSprop", {}),
    "adam": ("Adam", {}),
    "adamw": ("AdamW", {}),
    "sgd momentum": ("SGD", {"momentum": 0.9}),
    "adagrad": ("Adagrad", {}),
}
SPARSE_DEFAULT_CONFIGS = "rmsprop momentum,adam,sgd momentum,adagrad"
SPARSE_IMPLS = ["drop-in", "drop-in exact", "torch loop", "torch loop FTZ"]
PATTERN = 8192  # the warm-up's elements (the size); every size is a whole number of copies
DENSE_STEPS, SETTLE_STEPS, ROUND_SECONDS = 100, 20, 0.05
WARMUP_CHECK, WARMUP_MAX = 1000, 1_000_000
FLT_MIN = torch.finfo(torch.float32).tiny


def sparse_sizes(l3_bytes, quick):
    """label: tensor shapes, each a multiple of PATTERN.  The issue's 8192 elements (one tensor; the
    drop-in's Python-side cost per step, ~10 us, is most of its step there); in cache: 4 x 64 Ki elements,
    1 MiB per array (more of the kernel, less of the per-call cost); beyond L3: 4 tensors, together at
    least 1.5 x L3 per array and at least 4 x 3 Mi elements (48 MiB per array)."""
    if quick:
        return {"quick, small": [(PATTERN,)], "quick, larger": [(2 * PATTERN,)] * 2}
    each = max(3 << 20, -(-3 * l3_bytes // 32))  # 1.5 x L3 bytes / 4 bytes / 4 tensors
    each = -(-each // PATTERN) * PATTERN
    return {"issue size": [(PATTERN,)], "in cache": [(1 << 16,)] * 4, "beyond L3": [(each,)] * 4}


def make_sparse_optimizer(cname, impl, params):
    cls, kw = SPARSE_CONFIGS[cname]
    if impl.startswith("drop-in"):
        return getattr(rmsfuse.torch, cls)(params, lr=LR, flush_subnormal=(impl == "drop-in"), **kw)
    return getattr(torch.optim, cls)(params, lr=LR, foreach=False, **kw)


def load_state(opt, impl, state):
    """state (a state_dict) into opt.  load_state_dict also restores the saved param_groups (as for every
    hyperparameter): flush_subnormal and foreach are set back to this implementation's."""
    opt.load_state_dict(copy.deepcopy(state))
    for g in opt.param_groups:
        if impl.startswith("drop-in"):
            g["flush_subnormal"] = impl == "drop-in"
        else:
            g["foreach"] = False  # torch's for-loop


def run_steps(opt, impl, k):
    """k steps; torch loop FTZ with FTZ/DAZ on for exactly those steps (the flag is the thread's)."""
    if impl == "torch loop FTZ":
        torch.set_flush_denormal(True)
    try:
        for _ in range(k):
            opt.step()
    finally:
        if impl == "torch loop FTZ":
            torch.set_flush_denormal(False)


def subnormal_share(opt, params):
    """Share of the optimizer's state elements (tensors of the parameters' shapes) that are subnormal."""
    sub = total = 0
    for p in params:
        for v in opt.state[p].values():
            if torch.is_tensor(v) and v.shape == p.shape:
                sub += int(((v != 0) & (v.abs() < FLT_MIN)).sum())
                total += v.numel()
    return sub / total if total else 0.0


def sparse_warmup(cname, share, min_steps, max_steps, seed):
    """The steady state on PATTERN elements: 100 dense steps, then masked steps (at least min_steps) until
    a step leaves the state of every masked element unchanged (checked every WARMUP_CHECK steps; with a zero
    gradient and no coupled weight decay that is a fixed point), with the drop-in in exact mode.
    Returns (param, dense grad, masked grad, state_dict, masked steps, fixed point reached)."""
    gen = torch.Generator().manual_seed(seed)
    p = torch.randn(PATTERN, generator=gen).requires_grad_()
    dense = torch.randn(PATTERN, generator=gen) * 1e-2
    mask = torch.rand(PATTERN, generator=gen) < share
    sparse = dense.masked_fill(mask, 0.0)
    opt = make_sparse_optimizer(cname, "drop-in exact", [p])
    p.grad = dense
    for _ in range(DENSE_STEPS):
        opt.step()
    p.grad = sparse
    steps, fixed = 0, False

    def masked_state():
        return [v[mask].clone() for v in opt.state[p].values() if torch.is_tensor(v) and v.shape == p.shape]

    while steps < max_steps:
        k = min(max(min_steps - steps, 1) if steps < min_steps else WARMUP_CHECK, max_steps - steps)
        for _ in range(k):
            opt.step()
        steps += k
        if steps >= min_steps:
            before = masked_state()
            opt.step()
            steps += 1
            if all(torch.equal(a.view(torch.int32), b.view(torch.int32)) for a, b in zip(before, masked_state())):
                fixed = True
                break
    return p.detach(), dense, sparse, opt.state_dict(), steps, fixed, float(mask.float().mean())


def tiled_state(cname, state, shapes, params):
    """The warm-up's state_dict over `params` (each a whole number of PATTERN copies): every state tensor
    tiled.  Each element's update depends only on its own values, with the same bits at every position
    (the library's contract), so this is the state the warm-up would have left at that size."""
    ref = make_sparse_optimizer(cname, "drop-in exact", params)
    (s0,) = state["state"].values()
    for p in params:
        ref.state[p] = {k: (v.repeat(p.numel() // PATTERN) if torch.is_tensor(v) and v.dim() == 1 else copy.deepcopy(v))
                        for k, v in s0.items()}
    sd = ref.state_dict()
    del ref
    return sd


def sparse_measure(cname, shapes, warm, rounds, seed):
    """Seconds per step of each implementation from the tiled steady state; ({impl: [s]}, {impl: share})."""
    p0, dense, sparse, state, *_ = warm
    params = [p0.repeat(numel(s) // PATTERN).reshape(s).clone().requires_grad_() for s in shapes]
    for p in params:
        p.grad = sparse.repeat(p.numel() // PATTERN).reshape(p.shape)
    big = tiled_state(cname, state, shapes, params)
    opts, per_step = {}, {}
    for impl in SPARSE_IMPLS:
        opts[impl] = make_sparse_optimizer(cname, impl, params)
        load_state(opts[impl], impl, big)
        t0 = time.perf_counter()
        run_steps(opts[impl], impl, SETTLE_STEPS)  # each its own steady state (the flushing ones flush)
        per_step[impl] = (time.perf_counter() - t0) / SETTLE_STEPS
    del big
    sub = {impl: subnormal_share(o, params) for impl, o in opts.items()}
    assert sub["drop-in"] == 0.0 and sub["torch loop FTZ"] == 0.0, sub  # flushed by their own steps
    times = {impl: [] for impl in SPARSE_IMPLS}
    order = list(SPARSE_IMPLS)
    rng = random.Random(seed)
    for _ in range(rounds):
        rng.shuffle(order)
        for impl in order:
            k = max(1, min(5000, math.ceil(ROUND_SECONDS / per_step[impl])))
            t0 = time.perf_counter()
            run_steps(opts[impl], impl, k)
            times[impl].append((time.perf_counter() - t0) / k)
    return times, sub


def run_sparse(configs, zeros, min_steps, rounds, quick, l3_bytes):
    """The records of python_bench.json's "sparse" list: one per configuration, size, share and
    implementation, in the format bench/report.py reads (rule, impl, zero_pct, elements, best/median
    seconds per step) with more fields beside."""
    torch.set_num_threads(1)
    sizes = sparse_sizes(l3_bytes, quick)
    max_steps = 200 if quick else WARMUP_MAX
    records = []
    for cname in configs:
        cls, kw = SPARSE_CONFIGS[cname]
        rule = getattr(rmsfuse.torch, cls)([torch.zeros(1, requires_grad=True)], lr=LR, **kw)
        rule = rule._config(rule.param_groups[0]).rule
        for pct in zeros:
            t0 = time.perf_counter()
            warm = sparse_warmup(cname, pct / 100, min_steps, max_steps, seed=pct)
            steps, fixed, real_share = warm[4], warm[5], warm[6]
            print(f"python_bench: sparse {cname} {pct}% zeros: warm-up {steps} masked steps on {PATTERN} elements "
                  f"({'fixed point' if fixed else 'NO fixed point'}), {time.perf_counter() - t0:.1f} s",
                  file=sys.stderr)
            for label, shapes in sizes.items():
                n = sum(numel(s) for s in shapes)
                times, sub = sparse_measure(cname, shapes, warm, rounds, seed=len(records))
                for impl in SPARSE_IMPLS:
                    records.append({"rule": rule, "optimizer": cls, "config": cname, "kwargs": kw, "impl": impl,
                                    "zero_pct": pct, "zero_share": real_share, "size": label,
                                    "tensors": len(shapes), "elements": n, "seconds": times[impl],
                                    "best": min(times[impl]), "median": statistics.median(times[impl]),
                                    "subnormal_share": sub[impl], "warmup_steps": steps,
                                    "warmup_fixed_point": fixed})
                print(f"python_bench: sparse {label} {cname} {pct}% zeros: "
                      + ", ".join(f"{i} {min(times[i]) / n * 1e9:.2f} ns/element (median "
                                  f"{statistics.median(times[i]) / n * 1e9:.2f}, subnormal {sub[i]:.0%})"
                                  for i in SPARSE_IMPLS), file=sys.stderr)
    for r in records:  # the slowdown against the same implementation's dense steady state
        base = next((b for b in records if (b["size"], b["config"], b["impl"], b["zero_pct"])
                     == (r["size"], r["config"], r["impl"], 0)), None)
        r["slowdown_best"] = r["best"] / base["best"] if base else None
        r["slowdown_median"] = r["median"] / base["median"] if base else None
    return records


def sparse_markdown(ctx, records):
    if not records:
        return []
    lines = ["", "## Sparse gradients: the steady state with exactly-zero gradient entries (one thread)", "",
             f"A share of the gradient entries is exactly zero step after step (a fixed random mask). The steady "
             f"state is made once per configuration and share on {PATTERN} elements, as the C benchmark makes it "
             f"(docs/performance.md, \"Sparse gradients\"): {DENSE_STEPS} dense steps, then masked steps (at least "
             f"{ctx['sparse_steps']}) until a step leaves the masked elements' state unchanged, with the drop-in "
             "at `flush_subnormal=False`, whose state is torch's up to rounding; the warm-up's column gives the "
             "steps. That state, parameters and gradients are tiled to each size (each element's update depends "
             "on its own values only), each implementation loads it, takes "
             f"{SETTLE_STEPS} masked steps of its own and is timed: best of {ctx['rounds']} "
             f"round{'s' if ctx['rounds'] != 1 else ''} of at least {ROUND_SECONDS} s each, in shuffled order, at "
             "one thread (best: load from other processes only adds time; the JSON has the medians too). "
             "torch's default hyperparameters (`lr` aside). drop-in = `rmsfuse.torch.<Class>`, its default "
             "`flush_subnormal=True`; exact = `flush_subnormal=False`; torch loop = `torch.optim.<Class>"
             "(foreach=False)`; FTZ = the same under `torch.set_flush_denormal(True)`. ns per element of one "
             "`opt.step()`, and in brackets the slowdown against the same implementation with no zeros (best "
             "against best); sub = share of the state elements that are subnormal when timed.", "",
             "| tensors | config | zeros | warm-up | drop-in ns (×) | exact ns (×) | torch loop ns (×) "
             "| torch loop FTZ ns (×) | sub: drop-in / exact / torch / FTZ |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    groups = {}
    for r in records:
        groups.setdefault((r["config"], r["zero_pct"], r["size"]), {})[r["impl"]] = r
    order = list(dict.fromkeys(r["size"] for r in records))
    for key in sorted(groups, key=lambda k: (order.index(k[2]), list(SPARSE_CONFIGS).index(k[0]), k[1])):
        g = groups[key]
        r0 = g[SPARSE_IMPLS[0]]

        def cell(i):
            x = f" ({g[i]['slowdown_best']:.2f}×)" if g[i]["slowdown_best"] else ""
            return f"{g[i]['best'] / g[i]['elements'] * 1e9:.2f}{x}"
        kw = ", ".join(f"{k}={v}" for k, v in r0["kwargs"].items())
        lines.append(f"| {r0['size']}: {r0['tensors']} × {r0['elements'] // r0['tensors']:,} | {r0['config']} "
                     f"(`{r0['optimizer']}({kw})`) | {r0['zero_pct']}% | {r0['warmup_steps']:,}"
                     f"{'' if r0['warmup_fixed_point'] else ' (no fixed point)'} | "
                     + " | ".join(cell(i) for i in SPARSE_IMPLS) + " | "
                     + " / ".join(f"{g[i]['subnormal_share']:.0%}" for i in SPARSE_IMPLS) + " |")
    return lines


def markdown(ctx, results, command, sparse=(), train=(), storage=()):
    head = [f"`{command}`: {ctx.get('cpu', '?')}, {ctx['cores']} cores; "
            f"torch {ctx['torch']}, rmsfuse {ctx['rmsfuse']} ({ctx['isa']}); load average "
            f"{ctx['load_start']:.2f} at the start, {ctx['load_end']:.2f} at the end."]
    if not results and storage:
        return "\n".join(["## PyTorch drop-ins: a bf16 model", ""] + head + storage_markdown(ctx, storage)[3:]
                         + train_markdown(ctx, train) + sparse_markdown(ctx, sparse))
    if not results and train:
        return "\n".join(["## PyTorch drop-ins: the training step", ""] + head + train_markdown(ctx, train)[3:]
                         + sparse_markdown(ctx, sparse))
    if not results:
        return "\n".join(["## PyTorch drop-ins: sparse gradients", ""] + head + sparse_markdown(ctx, sparse)[2:])
    lines = ["## PyTorch drop-ins: seconds per optimizer step", ""] + head + ["",
             "One `opt.step()` over every parameter of the model (float32, CPU, gradients present), after "
             "warm-up. rmsfuse = `rmsfuse.torch.<Class>` (one fused C call; at all threads its pool); torch = "
             "`torch.optim.<Class>` with `foreach=False` (loop) and `foreach=True`, under "
             "`torch.set_num_threads`. Median and best of "
             f"{ctx['rounds']} rounds of {ctx['steps']} steps, implementations in shuffled order per round; "
             "speed-up = median over rounds of the per-round time ratio. Bound = bytes per element of torch's "
             "loop / of the fused step (below): the most a fused step gains where both run at the memory's "
             "bandwidth.", "",
             "| model | config | threads | rmsfuse ms (best) | torch loop ms (best) | torch foreach ms (best) "
             "| rmsfuse GB/s | speed-up vs loop | bound | vs foreach |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        ms = lambda i: f"{r['median'][i] * 1e3:.2f} ({r['best'][i] * 1e3:.2f})"  # noqa: E731
        lines.append(f"| {r['title']}: {r['tensors']} tensors, {r['elements'] / 1e6:.1f} M | {r['config']} | "
                     f"{r['threads']} | {ms('rmsfuse')} | {ms('torch loop')} | {ms('torch foreach')} | "
                     f"{r['gbs_rmsfuse']:.1f} | {r['speedup_vs']['torch loop']:.2f}x | "
                     f"{r['bytes_torch']}/{r['bytes_fused']} = {r['bound']:.2f}x | "
                     f"{r['speedup_vs']['torch foreach']:.2f}x |")
    lines += ["", "Bytes per element (STREAM convention: each array an operation reads or writes counts 4 bytes "
                  "once; torch's passes from torch/optim/<rule>.py 1.13, `_single_tensor_<rule>`):", "",
              "| config | fused (rmsfuse) | torch loop, pass by pass |", "| --- | --- | --- |"]
    for cname in dict.fromkeys(r["config"] for r in results):
        r = next(x for x in results if x["config"] == cname)
        passes = " + ".join(f"{op} {4 * (rd + wr)}" for op, rd, wr in CONFIGS[cname][2])
        lines.append(f"| {cname} (`{CONFIGS[cname][0]}({', '.join(f'{k}={v}' for k, v in CONFIGS[cname][1].items())})`)"
                     f" | {r['bytes_fused']} | {passes} = {r['bytes_torch']} |")
    one = [r for r in results if r["threads"] == 1 and r["elements"] * 4 > ctx["l3_bytes"]]
    if one:
        lines += ["", f"Beyond L3 ({ctx['l3_bytes'] >> 20} MB) at one thread, speed-up against torch's loop as a "
                      "fraction of the traffic bound: "
                  + ", ".join(f"{r['config']} {r['speedup_vs']['torch loop'] / r['bound']:.0%}" for r in one) + "."]
        rms = [r for r in one if r["optimizer"] == "RMSprop"]
        if rms:
            worst = min(min(r["speedup_vs"].values()) for r in rms)
            lines += ["", f"RMSprop target (the first issue's): at one thread, beyond L3, at least {TARGET:g}x "
                          f"faster than both torch variants: worst {worst:.2f}x: "
                          f"**{'met' if worst >= TARGET else 'not met'}** (the traffic bound is "
                      + " / ".join(f"{r['bound']:.2f}x" for r in rms) + ")."]
    return "\n".join(lines + storage_markdown(ctx, storage) + train_markdown(ctx, train) + sparse_markdown(ctx, sparse))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=".", help="folder for python_bench.json and python.md")
    ap.add_argument("--model", choices=["resnet50", "gpt2", "both"], default="resnet50")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="a smoke test: 20 tensors, 1 round of 1 step")
    ap.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset of " + ", ".join(CONFIGS))
    ap.add_argument("--command", default=None, help="how the run was made, for the report")
    ap.add_argument("--l3-mb", type=int, default=L3_BYTES >> 20, help="L3 size for the target (default 32)")
    ap.add_argument("--sparse", action="store_true",
                    help="also the sparse-gradients benchmark (steady state with exactly-zero gradient entries)")
    ap.add_argument("--sparse-only", action="store_true", help="only the sparse-gradients benchmark")
    ap.add_argument("--train", action="store_true",
                    help="also the training-step benchmark (unscale, found-inf, clip by global norm, update)")
    ap.add_argument("--train-only", action="store_true", help="only the training-step benchmark")
    ap.add_argument("--storage", action="store_true",
                    help="also the bf16-model benchmark (the drop-ins' storage choices against torch)")
    ap.add_argument("--storage-only", action="store_true", help="only the bf16-model benchmark")
    ap.add_argument("--storage-configs", default=STORAGE_DEFAULT_CONFIGS,
                    help="comma-separated subset of " + ", ".join(CONFIGS) + " for --storage")
    ap.add_argument("--sparse-configs", default=SPARSE_DEFAULT_CONFIGS,
                    help="comma-separated subset of " + ", ".join(SPARSE_CONFIGS))
    ap.add_argument("--sparse-zeros", default="0,10,50,90", help="percentages of zero gradient entries (0 first: "
                    "the dense steady state the slowdowns are relative to)")
    ap.add_argument("--sparse-steps", type=int, default=1000,
                    help="masked warm-up steps at least, then on to the fixed point (default 1000)")
    a = ap.parse_args()
    if a.quick:
        a.rounds, a.steps = 1, 1
        a.sparse_steps = min(a.sparse_steps, 30)  # and at most 200: sparse_warmup
    sparse_configs = [c for c in a.sparse_configs.split(",") if c]
    bad = [c for c in sparse_configs if c not in SPARSE_CONFIGS]
    if bad:
        ap.error(f"unknown sparse configs {bad}; choose from {list(SPARSE_CONFIGS)}")
    zeros = [int(z) for z in a.sparse_zeros.split(",") if z]
    if not zeros or zeros[0] != 0 or any(not 0 <= z < 100 for z in zeros):
        ap.error("--sparse-zeros: percentages in [0, 100), starting with 0")
    models = ["resnet50", "gpt2"] if a.model == "both" else [a.model]
    ctx = cpu_context()
    ctx.update(torch=torch.__version__, rmsfuse=rmsfuse.version(), isa=rmsfuse.active_isa(),
               library=rmsfuse.library_path, pool=rmsfuse.pool_available(), rounds=a.rounds, steps=a.steps,
               load_start=os.getloadavg()[0], quick=a.quick, l3_bytes=a.l3_mb << 20,
               sparse_steps=a.sparse_steps)
    if not rmsfuse.pool_available():
        print("python_bench.py: librmsfuse_pool not found: one thread only", file=sys.stderr)
    configs = [c for c in a.configs.split(",") if c]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        ap.error(f"unknown configs {unknown}; choose from {list(CONFIGS)}")
    storage_configs = [c for c in a.storage_configs.split(",") if c]
    bad = [c for c in storage_configs if c not in CONFIGS]
    if bad:
        ap.error(f"unknown storage configs {bad}; choose from {list(CONFIGS)}")
    only = a.sparse_only or a.train_only or a.storage_only
    results = [] if only else run(models, configs, a.rounds, a.steps, a.quick)
    storage = run_storage(models, storage_configs, a.rounds, a.steps, a.quick) \
        if a.storage_only or (a.storage and not only) else []
    train = run_train(models, configs, a.rounds, a.steps, a.quick) \
        if a.train_only or (a.train and not only) else []
    sparse = run_sparse(sparse_configs, zeros, a.sparse_steps, a.rounds, a.quick, a.l3_mb << 20) \
        if a.sparse_only or (a.sparse and not only) else []
    ctx["load_end"] = os.getloadavg()[0]
    command = a.command or "bench/python_bench.py " + " ".join(sys.argv[1:])
    md = markdown(ctx, results, command, sparse, train, storage)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "python_bench.json"), "w") as f:
        json.dump({"context": ctx, "results": results, "sparse": sparse, "train": train, "storage": storage}, f,
                  indent=1)
    with open(os.path.join(a.out, "python.md"), "w") as f:
        f.write(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
