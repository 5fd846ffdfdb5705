"""A small CNN on scikit-learn's handwritten digits, trained with torch.optim.X and rmsfuse.torch.X side by side.

    RMSFUSE_LIBRARY=build/release/librmsfuse.so.0 PYTHONPATH=python \\
        /usr/bin/python3 examples/train_digits.py --out results/examples    # docs/examples.md

Data: sklearn.datasets.load_digits(), the 1797 8x8 grey-level digits (0-16)
that Debian's python3-sklearn ships (sklearn/datasets/data/digits.csv.gz):
nothing is downloaded.  A fixed split (seed 0): 1437 images to train on, 360
to test on.

Model (9,930 parameters): conv 3x3 1->16, ReLU, conv 3x3 16->32, ReLU,
max-pool 2 (32x4x4), linear 512->10; cross-entropy, mini-batches of 64.

Protocol.  For every rule the library has (RMSprop, RMSprop with momentum,
Adagrad, SGD with momentum, Adam, AdamW), the same initial weights and the
same batches in the same order are trained twice: once with torch.optim.<X>,
once with rmsfuse.torch.<X>, same arguments.  Forward and backward are
torch's in both runs, so the only difference is the optimizer step, which
differs from torch's by a few ulps (tests/python/test_torch.py's header says
why); the loss curves agree to ~1e-6 relative at first and drift apart slowly
as training amplifies the differences (docs/examples.md).

Writes to --out: digits.png (a panel per optimizer: training loss and test
accuracy, torch dashed, rmsfuse solid), digits.md (the table, also printed:
final training loss, test accuracy, mean optimizer.step() time) and
digits.json (every curve, for tests/python/test_training_examples.py).
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

from _training import cpu_model, rel_diff, smooth  # noqa: E402  (examples/_training.py)

# name, class name, arguments (the same for torch.optim and rmsfuse.torch)
RULES = [
    ("RMSprop", "RMSprop", dict(lr=1e-3)),
    ("RMSprop + momentum", "RMSprop", dict(lr=3e-4, momentum=0.9)),
    ("Adagrad", "Adagrad", dict(lr=0.03)),
    ("SGD + momentum", "SGD", dict(lr=0.03, momentum=0.9)),
    ("Adam", "Adam", dict(lr=1e-3)),
    ("AdamW", "AdamW", dict(lr=1e-3, weight_decay=0.05)),
]
BATCH = 64


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32 * 4 * 4, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


def load(seed=0):
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(d.target, dtype=torch.long)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_test = 360
    return x[perm[n_test:]], y[perm[n_test:]], x[perm[:n_test]], y[perm[:n_test]]


def evaluate(model, x, y):
    with torch.no_grad():
        out = model(x)
        return F.cross_entropy(out, y).item(), (out.argmax(1) == y).float().mean().item()


def train(model, opt, data, epochs, seed):
    """Trains in place; returns the curves: loss of every step, and per epoch (0 = before training)
    the loss on the whole training set and the accuracy on the test set; optimizer.step() times."""
    xtr, ytr, xte, yte = data
    gen = torch.Generator().manual_seed(seed)  # the same batches for every run
    steps, epoch_loss, test_acc, step_s = [], [], [], []
    loss0, _ = evaluate(model, xtr, ytr)
    epoch_loss.append(loss0)
    test_acc.append(evaluate(model, xte, yte)[1])
    for _ in range(epochs):
        perm = torch.randperm(len(ytr), generator=gen)
        for i in range(0, len(ytr), BATCH):
            idx = perm[i:i + BATCH]
            opt.zero_grad()
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            loss.backward()
            t = time.perf_counter()
            opt.step()
            step_s.append(time.perf_counter() - t)
            steps.append(loss.item())
        epoch_loss.append(evaluate(model, xtr, ytr)[0])
        test_acc.append(evaluate(model, xte, yte)[1])
    test_loss = evaluate(model, xte, yte)[0]
    return dict(step_loss=steps, epoch_loss=epoch_loss, test_acc=test_acc, test_loss=test_loss,
                step_ms=1e3 * float(np.mean(step_s[1:] if len(step_s) > 1 else step_s)))


def plot(results, path, steps_per_epoch, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    # rmsfuse: a thick light line; torch: a thin dark dashed line on top of it (where they agree,
    # the dashes run down the middle of the thick line).
    style = {"rmsfuse": dict(ls="-", lw=3.2, alpha=0.45), "torch": dict(ls=(0, (4, 2.5)), lw=1.2)}
    colors = {"loss": {"rmsfuse": "#1f6fb4", "torch": "#0b2f55"}, "acc": {"rmsfuse": "#e8730c", "torch": "#7a3400"}}
    c_loss, c_acc = colors["loss"]["rmsfuse"], colors["acc"]["rmsfuse"]
    fig, axes = plt.subplots(2, 3, figsize=(14, 8), sharex=True, constrained_layout=True)
    for ax, (name, r) in zip(axes.flat, results.items()):
        ax2 = ax.twinx()
        for impl in ("rmsfuse", "torch"):
            c = r[impl]
            n = len(c["step_loss"])
            ax.plot(np.arange(1, n + 1) / steps_per_epoch, smooth(c["step_loss"], steps_per_epoch // 2),
                    color=colors["loss"][impl], **style[impl])
            ax2.plot(np.arange(len(c["test_acc"])), 100 * np.asarray(c["test_acc"]), color=colors["acc"][impl],
                     **style[impl])
        ax.set_yscale("log")
        ax.set_title(f"{name}  ({r['args']})", fontsize=11)
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss (cross-entropy)", color=c_loss)
        ax.tick_params(axis="y", colors=c_loss)
        ax2.set_ylabel("test accuracy (%)", color=c_acc)
        ax2.tick_params(axis="y", colors=c_acc)
        ax2.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        acc = {impl: 100 * r[impl]["test_acc"][-1] for impl in ("rmsfuse", "torch")}
        ax.legend(handles=[Line2D([], [], color="0.3", **style["rmsfuse"],
                                  label=f"rmsfuse.torch  {acc['rmsfuse']:.1f}%"),
                           Line2D([], [], color="k", **style["torch"], label=f"torch.optim    {acc['torch']:.1f}%")],
                  loc="center right", fontsize=9, title="final test accuracy", title_fontsize=9, framealpha=0.9)
    fig.suptitle(title, fontsize=13)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(results, cpu):
    rows = ["| optimizer | arguments | final loss torch | final loss rmsfuse | test acc torch | test acc rmsfuse "
            "| step ms torch | step ms rmsfuse | loss rel. diff, first 100 steps | at the end |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        t, f = r["torch"], r["rmsfuse"]
        rows.append(f"| {name} | `{r['args']}` | {t['epoch_loss'][-1]:.4f} | {f['epoch_loss'][-1]:.4f} "
                    f"| {100 * t['test_acc'][-1]:.1f}% | {100 * f['test_acc'][-1]:.1f}% "
                    f"| {t['step_ms']:.3f} | {f['step_ms']:.3f} | {r['rel_diff_100']:.0e} | {r['rel_diff_end']:.0e} |")
    return "\n".join(rows) + (
        "\n\nfinal loss: cross-entropy on the whole training set after the last epoch; step ms: mean time of "
        "optimizer.step(); rel. diff: |rmsfuse - torch| / torch of the batch losses (max over the first 100 "
        f"steps) and of the final loss.\nCPU: {cpu}, 1 torch thread; torch {torch.__version__}\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--out", default="results/examples", help="folder for digits.png, digits.md, digits.json")
    ap.add_argument("--quick", action="store_true", help="3 epochs (69 steps), for the tests")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # reproducible, and fair to the (single-threaded) optimizer steps

    data = load(args.seed)
    epochs = args.epochs
    if args.quick:
        epochs = min(epochs, 3)
    torch.manual_seed(args.seed)
    init = Net().state_dict()
    steps_per_epoch = (len(data[1]) + BATCH - 1) // BATCH

    results = {}
    for name, cls, kw in RULES:
        r = {"args": ", ".join(f"{k}={v}" for k, v in kw.items())}
        for impl, mod in (("torch", torch.optim), ("rmsfuse", rt)):
            model = Net()
            model.load_state_dict(copy.deepcopy(init))
            r[impl] = train(model, getattr(mod, cls)(model.parameters(), **kw), data, epochs, args.seed)
        r["rel_diff_100"] = rel_diff(r["rmsfuse"]["step_loss"][:100], r["torch"]["step_loss"][:100])
        r["rel_diff_end"] = rel_diff(r["rmsfuse"]["epoch_loss"][-1:], r["torch"]["epoch_loss"][-1:])
        results[name] = r
        print(f"{name:20s} acc torch {100 * r['torch']['test_acc'][-1]:5.1f}%  rmsfuse "
              f"{100 * r['rmsfuse']['test_acc'][-1]:5.1f}%  loss rel. diff: first 100 steps "
              f"{r['rel_diff_100']:.0e}, end {r['rel_diff_end']:.0e}", flush=True)

    os.makedirs(args.out, exist_ok=True)
    cpu = cpu_model()
    md = (f"## Digits CNN, {epochs} epochs, {len(data[1])} training / {len(data[3])} test images, "
          f"batches of {BATCH}\n\n" + table(results, cpu))
    print("\n" + md)
    with open(os.path.join(args.out, "digits.md"), "w") as f:
        f.write(md)
    with open(os.path.join(args.out, "digits.json"), "w") as f:
        json.dump(dict(epochs=epochs, cpu=cpu, torch=torch.__version__, results=results), f)
    plot(results, os.path.join(args.out, "digits.png"), steps_per_epoch,
         "8x8 digits, small CNN: torch.optim (dashed) vs rmsfuse.torch (solid), same init and batches\n"
         "training loss (blue, mean of the last half epoch of batches) and test accuracy (orange)")
    print(f"wrote {args.out}/digits.png, digits.md, digits.json")


if __name__ == "__main__":
    main()
