"""Training with fewer bytes per element: every storage choice of rmsfuse.torch on scikit-learn's digits.

    RMSFUSE_LIBRARY=build/release/librmsfuse.so.0 PYTHONPATH=python \\
        /usr/bin/python3 examples/train_storage.py --out results/examples    # docs/examples.md

Data: sklearn.datasets.load_digits() (Debian python3-sklearn, nothing is
downloaded), the split of examples/train_digits.py: 1437 images to train on,
360 to test on, mini-batches of 64.

Models: an MLP 64-256-256-10 (85,002 parameters) and the small CNN of
examples/train_digits.py (9,930 parameters).  Optimizers: AdamW (lr 1e-3,
weight decay 0.01) and RMSprop (lr 1e-3).

Protocol.  For each model and optimizer, the same initial weights and the
same batches in the same order are trained with each storage choice of the
drop-ins (docs/python.md, "Storage types"):

  float32             the reference: float32 parameters and state
  bf16 state          state_dtype=torch.bfloat16
  8-bit state         state_dtype="q8": 8-bit block state, the float-like code
  8-bit linear state  state_dtype="q8_linear": the linear code
  bf16 + fp32 master  a bfloat16 model, master_weights="fp32" (the default)
  split bf16          a bfloat16 model, master_weights="split"
  bf16, round         a bfloat16 model, master_weights=None (round to nearest)
  bf16, stochastic    master_weights=None, stochastic_rounding=True
  bf16 SR + 8-bit     the least memory: bf16 model, stochastic rounding, 8-bit state

A bfloat16 model computes its forward and backward passes in bfloat16 (the
inputs are cast; the loss is taken in float32), as mixed-precision training
does; its gradients are bfloat16, read by the step as they are.

Writes to --out: storage.png (a panel per model and optimizer: the training
loss of each choice), storage.md (the table, also printed: final training
loss, test accuracy, optimizer state bytes per parameter as measured from
the optimizer's state tensors, mean step time) and storage.json (every
curve, for tests/python/test_training_examples.py).
"""
import argparse
import copy
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

try:
    import rmsfuse.torch as rt
except ImportError:  # run from a clone without PYTHONPATH=python
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
    import rmsfuse.torch as rt

from _training import cpu_model, smooth  # noqa: E402  (examples/_training.py)
from train_digits import BATCH, Net, load  # noqa: E402  (examples/train_digits.py: the CNN and the data)


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1 = nn.Linear(64, 256)
        self.l2 = nn.Linear(256, 256)
        self.l3 = nn.Linear(256, 10)

    def forward(self, x):
        x = x.flatten(1)
        return self.l3(F.relu(self.l2(F.relu(self.l1(x)))))


MODELS = [("MLP", MLP), ("CNN", Net)]
RULES = [("AdamW", "AdamW", dict(lr=1e-3, weight_decay=0.01)), ("RMSprop", "RMSprop", dict(lr=1e-3))]
# name, parameter dtype, drop-in storage arguments
CHOICES = [
    ("float32", torch.float32, {}),
    ("bf16 state", torch.float32, dict(state_dtype=torch.bfloat16)),
    ("8-bit state", torch.float32, dict(state_dtype="q8")),
    ("8-bit linear state", torch.float32, dict(state_dtype="q8_linear")),
    ("bf16 + fp32 master", torch.bfloat16, dict(master_weights="fp32")),
    ("split bf16", torch.bfloat16, dict(master_weights="split")),
    ("bf16, round", torch.bfloat16, dict(master_weights=None)),
    ("bf16, stochastic", torch.bfloat16, dict(master_weights=None, stochastic_rounding=True)),
    ("bf16 SR + 8-bit", torch.bfloat16, dict(master_weights=None, stochastic_rounding=True, state_dtype="q8")),
]
COLORS = ["#000000", "#1f77b4", "#d62728", "#ff9896", "#2ca02c", "#98df8a", "#7f7f7f", "#9467bd", "#e377c2"]


def evaluate(model, x, y, dtype):
    with torch.no_grad():
        out = model(x.to(dtype)).float()
        return F.cross_entropy(out, y).item(), (out.argmax(1) == y).float().mean().item()


def state_bytes_per_param(opt, n_params):
    """Bytes of the optimizer's state tensors (master, trail, codes, scales, moments) per parameter."""
    total = 0
    for st in opt.state.values():
        for v in st.values():
            if torch.is_tensor(v) and v.numel() > 1:
                total += v.numel() * v.element_size()
    return total / n_params


def train(model, opt, data, epochs, seed, dtype):
    xtr, ytr, xte, yte = data
    gen = torch.Generator().manual_seed(seed)
    steps, epoch_loss, test_acc, step_s = [], [], [], []
    epoch_loss.append(evaluate(model, xtr, ytr, dtype)[0])
    test_acc.append(evaluate(model, xte, yte, dtype)[1])
    for _ in range(epochs):
        perm = torch.randperm(len(ytr), generator=gen)
        for i in range(0, len(ytr), BATCH):
            idx = perm[i:i + BATCH]
            opt.zero_grad()
            loss = F.cross_entropy(model(xtr[idx].to(dtype)).float(), ytr[idx])
            loss.backward()
            t = time.perf_counter()
            opt.step()
            step_s.append(time.perf_counter() - t)
            steps.append(loss.item())
        epoch_loss.append(evaluate(model, xtr, ytr, dtype)[0])
        test_acc.append(evaluate(model, xte, yte, dtype)[1])
    return dict(step_loss=steps, epoch_loss=epoch_loss, test_acc=test_acc,
                step_ms=1e3 * float(np.mean(step_s[1:] if len(step_s) > 1 else step_s)))


def plot(results, path, steps_per_epoch, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(2, len(results))
    rows = (len(results) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(7.5 * cols, 5.2 * rows), squeeze=False, constrained_layout=True)
    axes = axes.flat
    for ax, (panel, r) in zip(axes, results.items()):
        # Diverged runs leave the plot at the top (the axis ends at 3x the initial loss).
        top = 3 * max(c["step_loss"][0] for c in r["runs"].values() if np.isfinite(c["step_loss"][0]))
        bottom = 0.7 * min(float(np.min(smooth(c["step_loss"], steps_per_epoch))) for c in r["runs"].values()
                           if np.all(np.isfinite(c["step_loss"])))
        for (name, _, _), color in zip(CHOICES, COLORS):
            if name not in r["runs"]:
                continue
            c = r["runs"][name]
            n = len(c["step_loss"])
            ref = name == "float32"
            y = smooth(np.nan_to_num(c["step_loss"], nan=1e30, posinf=1e30), steps_per_epoch)
            diverged = not np.isfinite(c["epoch_loss"][-1]) or c["epoch_loss"][-1] > top
            ax.plot(np.arange(1, n + 1) / steps_per_epoch, np.minimum(y, 10 * top), color=color,
                    lw=2.6 if ref else 1.4, ls="-" if ref or "bf16" not in name or "state" in name else "--",
                    label=f"{name}  " + ("diverged" if diverged else f"{100 * c['test_acc'][-1]:.1f}%")
                          + f"  {c['state_bytes']:.2f} B")
        ax.set_yscale("log")
        ax.set_ylim(bottom, top)
        ax.set_title(panel, fontsize=11)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, title="choice, test accuracy, state bytes/param", title_fontsize=8, loc="upper right",
                  framealpha=0.9)
    for ax in list(axes)[len(results):]:
        ax.set_visible(False)
    fig.supylabel("training loss (cross-entropy, mean of the last epoch of batches)")
    fig.suptitle(title, fontsize=12)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(results, cpu, epochs):
    rows = ["| model, optimizer | storage | final training loss | test accuracy | vs float32 (points) "
            "| state bytes/param | step ms |", "|---|---|---:|---:|---:|---:|---:|"]
    for panel, r in results.items():
        ref = 100 * r["runs"]["float32"]["test_acc"][-1]
        for name, c in r["runs"].items():
            acc = 100 * c["test_acc"][-1]
            rows.append(f"| {panel} | {name} | {c['epoch_loss'][-1]:.4f} | {acc:.1f}% | {acc - ref:+.1f} "
                        f"| {c['state_bytes']:.2f} | {c['step_ms']:.3f} |")
    return "\n".join(rows) + (
        f"\n\n{epochs} epochs.  final training loss: cross-entropy on the whole training set after the last "
        "epoch; state bytes/param: every tensor of the optimizer's state (moments, master weights, trail, "
        "8-bit codes and block scales) over the number of parameters; step ms: mean optimizer.step() time.\n"
        f"CPU: {cpu}, 1 torch thread; torch {torch.__version__}\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--out", default="results/examples", help="folder for storage.png, storage.md, storage.json")
    ap.add_argument("--quick", action="store_true", help="the MLP with AdamW only, 4 epochs, for the tests")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    data = load(args.seed)
    epochs = min(args.epochs, 4) if args.quick else args.epochs
    models = MODELS[:1] if args.quick else MODELS
    rules = RULES[:1] if args.quick else RULES
    steps_per_epoch = (len(data[1]) + BATCH - 1) // BATCH

    results = {}
    for mname, mcls in models:
        torch.manual_seed(args.seed)
        init = mcls().state_dict()
        n_params = sum(v.numel() for v in init.values())
        for rname, cls, kw in rules:
            panel = f"{mname} ({n_params:,} parameters), {rname}"
            runs = {}
            for name, dtype, extra in CHOICES:
                model = mcls()
                model.load_state_dict(copy.deepcopy(init))
                model.to(dtype)
                opt = getattr(rt, cls)(model.parameters(), **kw, **extra)
                c = train(model, opt, data, epochs, args.seed, dtype)
                c["state_bytes"] = state_bytes_per_param(opt, n_params)
                runs[name] = c
                print(f"{panel:38s} {name:20s} loss {c['epoch_loss'][-1]:.4f}  acc {100 * c['test_acc'][-1]:5.1f}%  "
                      f"state {c['state_bytes']:.2f} B/param", flush=True)
            results[panel] = dict(args=", ".join(f"{k}={v}" for k, v in kw.items()), runs=runs)

    os.makedirs(args.out, exist_ok=True)
    cpu = cpu_model()
    md = (f"## Storage choices on the digits, {epochs} epochs, {len(data[1])} training / {len(data[3])} test "
          f"images, batches of {BATCH}\n\n" + table(results, cpu, epochs))
    print("\n" + md)
    with open(os.path.join(args.out, "storage.md"), "w") as f:
        f.write(md)
    with open(os.path.join(args.out, "storage.json"), "w") as f:
        json.dump(dict(epochs=epochs, cpu=cpu, torch=torch.__version__, results=results), f)
    plot(results, os.path.join(args.out, "storage.png"), steps_per_epoch,
         "8x8 digits: rmsfuse.torch with each storage choice, same init and batches "
         "(training loss; legend: final test accuracy, optimizer state bytes per parameter)")
    print(f"wrote {args.out}/storage.png, storage.md, storage.json")


if __name__ == "__main__":
    main()
