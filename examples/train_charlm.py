"""A character-level language model (an MLP over the last 16 characters) trained with torch.optim.X and rmsfuse.torch.X.

    RMSFUSE_LIBRARY=build/release/librmsfuse.so.0 PYTHONPATH=python \\
        /usr/bin/python3 examples/train_charlm.py --out results/examples    # docs/examples.md

Data: the license texts in /usr/share/common-licenses, shipped by base-files,
which is Essential: they are on every Debian system, container images
included, so the example needs no download and no extra package.  The 14
distinct files (GPL, LGPL and GFDL are links to the current versions) are
237 KB of plain ASCII English.  Training text: every one but Apache-2.0
(226 KB); validation text: Apache-2.0 (11 KB), a license the model never sees
(not a held-out slice: GPL-2/LGPL-2.1 and GFDL-1.2/1.3 are near copies of
each other, a slice of one would be in the training text through the other).
GPL-3 alone (35 KB) was the first choice: this model learns it by heart in a
few hundred steps and its validation loss turns up, which says nothing about
the optimizers.

Model (45,366 parameters), a CPU-friendly Bengio-style MLP: each of the last
16 characters through an embedding 86->16, concatenated (256), linear
256->128, ReLU, linear 128->86; cross-entropy in bits per character.  (A GRU
costs ~20x the time per step on a CPU with torch's autograd, for nothing the
comparison needs.)  Each step is a batch of 128 positions drawn at random
(the same positions for every run).

Protocol as examples/train_digits.py: for every rule the library has,
the same initial weights and the same batches, once with torch.optim.<X> and
once with rmsfuse.torch.<X>, same arguments; only the optimizer step differs.
At the end each model writes a short sample (the same random draws for all).

Writes to --out: charlm.png (a panel per optimizer: training and validation
bits per character, torch dashed, rmsfuse solid), charlm.md (the table, also
printed, and the samples) and charlm.json (every curve, for
tests/python/test_training_examples.py).
"""
import argparse
import copy
import json
import math
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

LICENSES = "/usr/share/common-licenses"
VALIDATION = "Apache-2.0"
# name, class name, arguments (the same for torch.optim and rmsfuse.torch)
RULES = [
    ("RMSprop", "RMSprop", dict(lr=2e-3)),
    ("RMSprop + momentum", "RMSprop", dict(lr=5e-4, momentum=0.9)),
    ("Adagrad", "Adagrad", dict(lr=0.05)),
    ("SGD + momentum", "SGD", dict(lr=0.1, momentum=0.9)),
    ("Adam", "Adam", dict(lr=3e-3)),
    ("AdamW", "AdamW", dict(lr=3e-3, weight_decay=0.05)),
]
BATCH, CTX = 128, 16
LN2 = math.log(2.0)


class CharMLP(nn.Module):
    def __init__(self, vocab, emb=16, hidden=128):
        super().__init__()
        self.emb = nn.Embedding(vocab, emb)
        self.fc = nn.Linear(CTX * emb, hidden)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x):  # x: (batch, CTX) character ids -> logits of the next character
        return self.head(F.relu(self.fc(self.emb(x).flatten(1))))


def bpc(logits, y):
    return F.cross_entropy(logits, y) / LN2


def windows(ids, pos):
    """The CTX characters before each position, and the character at it."""
    return ids[pos[:, None] + torch.arange(-CTX, 0)], ids[pos]


def load_texts(folder, validation):
    """The distinct files of folder (links resolved), as (training text, validation text)."""
    files = sorted({os.path.realpath(os.path.join(folder, f)) for f in os.listdir(folder)})
    val = os.path.realpath(os.path.join(folder, validation))
    if val not in files:
        raise SystemExit(f"{val}: not found")
    read = lambda f: open(f, encoding="utf-8").read()  # noqa: E731
    return "".join(read(f) for f in files if f != val), read(val)


def evaluate(model, data):
    with torch.no_grad():
        return bpc(model(data[0]), data[1]).item()


def sample(model, stoi, itos, prompt, n, seed, temperature=0.7):
    gen = torch.Generator().manual_seed(seed)
    ctx = [stoi["\n"]] * CTX + [stoi[c] for c in prompt]
    out = list(prompt)
    with torch.no_grad():
        for _ in range(n):
            p = F.softmax(model(torch.tensor([ctx[-CTX:]]))[0] / temperature, dim=-1)
            c = torch.multinomial(p, 1, generator=gen).item()
            ctx.append(c)
            out.append(itos[c])
    return "".join(out)


def train(model, opt, train_ids, evals, steps, eval_every, seed):
    gen = torch.Generator().manual_seed(seed)  # the same windows for every run
    step_loss, eval_at, train_bpc, val_bpc, step_s = [], [], [], [], []

    def log(step):
        eval_at.append(step)
        train_bpc.append(evaluate(model, evals["train"]))
        val_bpc.append(evaluate(model, evals["val"]))

    log(0)
    for step in range(1, steps + 1):
        x, y = windows(train_ids, torch.randint(CTX, len(train_ids), (BATCH,), generator=gen))
        opt.zero_grad()
        loss = bpc(model(x), y)
        loss.backward()
        t = time.perf_counter()
        opt.step()
        step_s.append(time.perf_counter() - t)
        step_loss.append(loss.item())
        if step % eval_every == 0 or step == steps:
            log(step)
    return dict(step_loss=step_loss, eval_at=eval_at, train_bpc=train_bpc, val_bpc=val_bpc,
                step_ms=1e3 * float(np.mean(step_s[1:] if len(step_s) > 1 else step_s)))


def plot(results, path, title, window):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    # rmsfuse: a thick light line; torch: a thin dark dashed line on top of it.
    style = {"rmsfuse": dict(ls="-", lw=3.2, alpha=0.45), "torch": dict(ls=(0, (4, 2.5)), lw=1.2)}
    colors = {"train": {"rmsfuse": "#1f6fb4", "torch": "#0b2f55"}, "val": {"rmsfuse": "#e8730c", "torch": "#7a3400"}}
    fig, axes = plt.subplots(2, 3, figsize=(14, 8), sharex=True, sharey=True, constrained_layout=True)
    for ax, (name, r) in zip(axes.flat, results.items()):
        for impl in ("rmsfuse", "torch"):
            c = r[impl]
            n = len(c["step_loss"])
            ax.plot(np.arange(1, n + 1), smooth(c["step_loss"], window), color=colors["train"][impl], **style[impl])
            ax.plot(c["eval_at"], c["val_bpc"], color=colors["val"][impl], **style[impl])
        ax.set_title(f"{name}  ({r['args']})", fontsize=11)
        ax.set_xlabel("step")
        ax.set_ylabel("bits per character")
        ax.grid(alpha=0.3)
        val = {impl: r[impl]["val_bpc"][-1] for impl in ("rmsfuse", "torch")}
        ax.legend(handles=[Line2D([], [], color=colors["train"]["rmsfuse"], lw=3, label="training batches"),
                           Line2D([], [], color=colors["val"]["rmsfuse"], lw=3, label="validation text"),
                           Line2D([], [], color="0.3", **style["rmsfuse"],
                                  label=f"rmsfuse.torch  val {val['rmsfuse']:.3f}"),
                           Line2D([], [], color="k", **style["torch"], label=f"torch.optim    val {val['torch']:.3f}")],
                  loc="upper right", fontsize=9, framealpha=0.9)
    axes[0, 0].set_ylim(1.5, 6.5)
    fig.suptitle(title, fontsize=13)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--out", default="results/examples", help="folder for charlm.png, charlm.md, charlm.json")
    ap.add_argument("--quick", action="store_true", help="60 steps, for the tests")
    ap.add_argument("--texts", default=LICENSES, help="folder of texts to learn (default: %(default)s)")
    ap.add_argument("--validation", default=VALIDATION, help="the file of it held out (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # reproducible, and fair to the (single-threaded) optimizer steps

    train_text, val_text = load_texts(args.texts, args.validation)
    itos = sorted(set(train_text + val_text))
    stoi = {c: i for i, c in enumerate(itos)}
    train_ids = torch.tensor([stoi[c] for c in train_text], dtype=torch.long)
    val_ids = torch.tensor([stoi[c] for c in val_text], dtype=torch.long)
    steps = min(args.steps, 60) if args.quick else args.steps
    eval_every = max(1, steps // (4 if args.quick else 20))
    # Every position of the validation text, every 60th of the training text (--quick: every 8th, every 240th).
    evals = {"train": windows(train_ids, torch.arange(CTX, len(train_ids), 240 if args.quick else 60)),
             "val": windows(val_ids, torch.arange(CTX, len(val_ids), 8 if args.quick else 1))}

    torch.manual_seed(args.seed)
    init = CharMLP(len(itos)).state_dict()
    n_params = sum(v.numel() for v in init.values())
    results, samples = {}, {}
    for name, cls, kw in RULES:
        r = {"args": ", ".join(f"{k}={v}" for k, v in kw.items())}
        for impl, mod in (("torch", torch.optim), ("rmsfuse", rt)):
            model = CharMLP(len(itos))
            model.load_state_dict(copy.deepcopy(init))
            r[impl] = train(model, getattr(mod, cls)(model.parameters(), **kw), train_ids, evals, steps,
                            eval_every, args.seed)
            samples[f"{name}, {impl}"] = sample(model, stoi, itos, "This License ", 40 if args.quick else 240,
                                                args.seed)
        r["rel_diff_100"] = rel_diff(r["rmsfuse"]["step_loss"][:100], r["torch"]["step_loss"][:100])
        r["rel_diff_end"] = rel_diff(r["rmsfuse"]["val_bpc"][-1:], r["torch"]["val_bpc"][-1:])
        results[name] = r
        print(f"{name:20s} val bpc torch {r['torch']['val_bpc'][-1]:.3f}  rmsfuse {r['rmsfuse']['val_bpc'][-1]:.3f}"
              f"  loss rel. diff: first 100 steps {r['rel_diff_100']:.0e}, end {r['rel_diff_end']:.0e}", flush=True)

    cpu = cpu_model()
    rows = [f"## Character MLP ({CTX} characters of context) on {args.texts} ({len(train_ids)} characters; "
            f"validation: {args.validation}, {len(val_ids)}), {steps} steps of {BATCH} positions, "
            f"{n_params} parameters\n",
            "| optimizer | arguments | train bpc torch | train bpc rmsfuse | val bpc torch | val bpc rmsfuse "
            "| step ms torch | step ms rmsfuse | loss rel. diff, first 100 steps | at the end |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        t, f = r["torch"], r["rmsfuse"]
        rows.append(f"| {name} | `{r['args']}` | {t['train_bpc'][-1]:.3f} | {f['train_bpc'][-1]:.3f} "
                    f"| {t['val_bpc'][-1]:.3f} | {f['val_bpc'][-1]:.3f} | {t['step_ms']:.3f} | {f['step_ms']:.3f} "
                    f"| {r['rel_diff_100']:.0e} | {r['rel_diff_end']:.0e} |")
    md = "\n".join(rows) + (
        f"\n\nbpc: bits per character (cross-entropy / ln 2) on the training text (every 60th position) and "
        f"the validation text; a uniform guess over the {len(itos)} characters is {math.log2(len(itos)):.2f}.  "
        "step ms: "
        "mean time of optimizer.step(); rel. diff: |rmsfuse - torch| / torch of the batch losses (max over the "
        f"first 100 steps) and of the final validation bpc.\nCPU: {cpu}, 1 torch thread; torch {torch.__version__}\n")
    md += "\n### Samples (prompt \"This License \", temperature 0.7, the same random draws)\n\n"
    md += "\n".join(f"**{k}**\n\n```\n{v}\n```\n" for k, v in samples.items())
    print("\n" + md)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "charlm.md"), "w") as f:
        f.write(md)
    with open(os.path.join(args.out, "charlm.json"), "w") as f:
        json.dump(dict(steps=steps, cpu=cpu, torch=torch.__version__, results=results, samples=samples), f)
    plot(results, os.path.join(args.out, "charlm.png"),
         f"Character-level MLP on Debian's license texts: torch.optim (dashed) vs rmsfuse.torch (solid), same init and "
         f"batches\ntraining loss (blue, mean of the last {max(1, steps // 20)} batches) and validation loss "
         f"(orange, {args.validation}), bits per character", max(1, steps // 20))
    print(f"wrote {args.out}/charlm.png, charlm.md, charlm.json")


if __name__ == "__main__":
    main()
