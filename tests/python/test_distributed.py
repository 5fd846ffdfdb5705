"""The drop-ins under torch.distributed: ZeroRedundancyOptimizer and DistributedDataParallel (gloo).

Run: /usr/bin/python3 tests/python/run.py test_distributed   (ctest: python_distributed)

Each world size (2 and 3) is one torch.multiprocessing.spawn of gloo ranks on
this host (init_method file://), single-threaded (torch.set_num_threads(1):
every forward/backward gives the same bits in every process).  The ranks save
what they computed; this process computes the one-process references and
compares.  docs/distributed.md ("PyTorch: torch.distributed") explains the
results.

  * ZeRO alone (ZeroRedundancyOptimizer(optimizer_class=rmsfuse.torch.X)),
    every class: every rank computes the same full-batch gradient, steps its
    partition, and ZeRO broadcasts.  Two parameter groups (the biases all land
    on one rank, so the others' local optimizers hold an empty group), an lr
    change between steps, consolidate_state_dict()/state_dict(), a fresh ZeRO
    that load_state_dict()s it and goes on, parameters_as_bucket_view=True,
    threads=, add_param_group: parameters and state bit-identical to one
    process with the same drop-in, on every rank.
  * DDP (gloo allreduce of the gradients, which DDP first multiplies by
    1/world_size, rounded to float32: fl(g * fl(1/W))), every class:
      - world size 2: the averaged gradient is g0' + g1' (addition is
        commutative), so DDP + drop-in is bit-identical to one process that
        computes both shards' gradients and adds them;
      - world size 3: gloo's ring allreduce cuts the gradient into one chunk
        per rank and adds each chunk in a different association:
        (g1'+g2')+g0', (g2'+g0')+g1', (g0'+g1')+g2'.  Every element is checked
        to be one of the three; the trained parameters differ from the one
        process's (g0'+g1')+g2' within DDP3_TOL;
      - DDP + ZeRO(drop-in) is bit-identical to DDP + drop-in (both world sizes:
        ZeRO only splits the update), with gradient_as_bucket_view=True;
      - DDP + drop-in against DDP + torch.optim: within test_torch's
        TRAIN_PARAM_TOL (1e-4 of max|param|, its training bound; the worst
        measured is printed).
  * Under ZeRO, max_grad_norm= and step(grad_scale=)'s Inf/NaN check see the
    rank's own partition only (printed, not asserted); given the whole model's
    sum (step(grad_sumsq=rmsfuse.torch.grad_sumsq(model.parameters()))), every
    rank clips and skips as one process, bit for bit (asserted), and so does
    torch.nn.utils.clip_grad_norm_ over every parameter on every rank before
    the ZeRO step.
"""

import copy
import os
import shutil
import sys
import tempfile
import time
import unittest

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel as DDP

GLOO = dist.is_available() and dist.is_gloo_available()
if GLOO:
    from torch.distributed.optim import ZeroRedundancyOptimizer

import rmsfuse.torch as rt
from test_torch import TRAIN_PARAM_TOL, scaled_diff

WORLD_SIZES = (2, 3)
ZERO_STEPS = (4, 3)   # steps before the state_dict round trip, steps after it
DDP_STEPS = 10
SHARD = 8             # rows of each rank's batch under DDP
# world size 3, DDP + drop-in against one process ((g0'+g1')+g2'), in ulps of max|param| per tensor,
# after DDP_STEPS steps.  Measured worst (AMD EPYC VM, Debian torch 1.13): 7.7 (RMSprop), printed by the test.
DDP3_TOL = 64

# (name, class, torch class, group-0 hyperparameters, the biases' group's own)
CLASSES = [
    ("RMSprop", rt.RMSprop, torch.optim.RMSprop, dict(lr=1e-2, momentum=0.9, centered=True, weight_decay=1e-3),
     dict(lr=3e-3, alpha=0.9)),
    ("Adagrad", rt.Adagrad, torch.optim.Adagrad, dict(lr=0.05, lr_decay=1e-3, initial_accumulator_value=0.1),
     dict(lr=0.02)),
    ("SGD", rt.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4),
     dict(lr=0.01, momentum=0.5)),
    ("Adam", rt.Adam, torch.optim.Adam, dict(lr=1e-2, amsgrad=True, weight_decay=1e-3),
     dict(lr=3e-3, betas=(0.8, 0.99))),
    ("AdamW", rt.AdamW, torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.1), dict(lr=3e-3, weight_decay=0.0)),
]
# ZeRO cases: (case, class name, ZeRO keywords beyond the hyperparameters, biases added later)
ZERO_CASES = ([(name, name, {}, False) for name, *_ in CLASSES]
              + [("Adam bucket view", "Adam", {"parameters_as_bucket_view": True}, False),
                 ("RMSprop threads=2", "RMSprop", {"threads": 2}, False),
                 ("RMSprop add_param_group", "RMSprop", {}, True)])
BY_NAME = {c[0]: c for c in CLASSES}


# ---- the model and data, the same bits in every process ---------------------------------------

def make_model(seed=3):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16),
                               torch.nn.Tanh(), torch.nn.Linear(16, 4))


def make_data(rows, seed=11):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, 8, generator=gen)
    y = torch.randn(rows, 4, generator=gen)
    return x, y


def split(model):
    """Weights and biases: two parameter groups."""
    params = list(model.parameters())
    return params[0::2], params[1::2]


def groups(model, g2):
    weights, biases = split(model)
    return [{"params": weights}, {"params": biases, **g2}]


def loss_of(model, x, y):
    return torch.nn.functional.mse_loss(model(x), y)


def backward(model, x, y):
    for p in model.parameters():
        p.grad = None
    loss = loss_of(model, x, y)
    loss.backward()
    return loss.item()


def params_of(model):
    return [p.detach().clone() for p in model.parameters()]


def drop_threads(groups_):
    """param_groups without ZeRO's copy of the constructor's threads= (it becomes a group key there)."""
    return [{k: v for k, v in g.items() if k != "threads"} for g in groups_]


def shard(world, rank):
    x, y = make_data(SHARD * world)
    return x[rank * SHARD:(rank + 1) * SHARD], y[rank * SHARD:(rank + 1) * SHARD]


# ---- ZeRO alone: one schedule, run by the ranks and by one process ----------------------------

def zero_schedule(model, make_opt, add_biases, g2, on_state_dict, reload_opt):
    """ZERO_STEPS[0] steps (lr halved after step 2, the biases' group added after step 1 when
    add_biases), on_state_dict(opt) -> state_dict, then a fresh optimizer from reload_opt(sd) for
    ZERO_STEPS[1] steps.  Every process uses the full batch."""
    x, y = make_data(24)
    opt = make_opt()
    for step in range(ZERO_STEPS[0]):
        backward(model, x, y)
        opt.step()
        if step == 1 and add_biases:
            opt.add_param_group({"params": split(model)[1], **g2})
        if step == 2:
            opt.param_groups[0]["lr"] *= 0.5
    sd = on_state_dict(opt)
    opt = reload_opt(sd)
    for _ in range(ZERO_STEPS[1]):
        backward(model, x, y)
        opt.step()
    return sd


def zero_case(case):
    _, cname, zkw, add_biases = case
    name, cls, _, hp, g2 = BY_NAME[cname]
    return cls, hp, g2, zkw, add_biases


def zero_params(model, g2, add_biases):
    return [{"params": split(model)[0]}] if add_biases else groups(model, g2)


def run_zero(case, rank, world):
    cls, hp, g2, zkw, add_biases = zero_case(case)
    model = make_model()
    out = {}

    def make():
        return ZeroRedundancyOptimizer(zero_params(model, g2, add_biases), optimizer_class=cls, **hp, **zkw)

    def on_state_dict(opt):
        out["local_params"] = [len(g["params"]) for g in opt.optim.param_groups]
        out["params_mid"] = params_of(model)
        opt.consolidate_state_dict(to=0)
        obj = [opt.state_dict() if rank == 0 else None]
        dist.broadcast_object_list(obj, src=0)
        return obj[0]

    def reload(sd):
        opt = make()
        if add_biases:
            opt.add_param_group({"params": split(model)[1], **g2})
        opt.load_state_dict(copy.deepcopy(sd))  # torch 1.13's ZeRO sets the other ranks' entries to None in it
        return opt

    out["state_dict"] = zero_schedule(model, make, add_biases, g2, on_state_dict, reload)
    out["params"] = params_of(model)
    return out


def reference_zero(case):
    cls, hp, g2, zkw, add_biases = zero_case(case)
    threads = zkw.get("threads")
    model = make_model()
    out = {}

    def make():
        return cls(zero_params(model, g2, add_biases), **hp, threads=threads)

    def on_state_dict(opt):
        out["params_mid"] = params_of(model)
        return opt.state_dict()

    def reload(sd):
        opt = make()
        if add_biases:
            opt.add_param_group({"params": split(model)[1], **g2})
        opt.load_state_dict(sd)
        return opt

    out["state_dict"] = zero_schedule(model, make, add_biases, g2, on_state_dict, reload)
    out["params"] = params_of(model)
    return out


def run_zero_clip(rank):
    """The workaround for a global norm under ZeRO: clip_grad_norm_ over every parameter on every
    rank, then step; and what the drop-in's own max_grad_norm sees (the rank's partition)."""
    x, y = make_data(24)
    model = make_model()
    opt = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=rt.RMSprop, lr=1e-2, momentum=0.9)
    for _ in range(3):
        backward(model, x, y)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.05)
        opt.step()
    out = {"params": params_of(model)}
    # The fused max_grad_norm= under ZeRO: the norm of this rank's partition only.
    model = make_model()
    opt = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=rt.RMSprop, lr=1e-2, max_grad_norm=0.05)
    backward(model, x, y)
    out["global_norm"] = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf")).item()
    opt.step()
    out["local_norm"] = opt.optim.grad_norm
    # step(grad_scale=): an Inf in the largest weight (one rank's partition; under DDP every rank
    # would hold it after the allreduce).  Only the rank that owns it skips.
    backward(model, x, y)
    before = params_of(model)
    model[2].weight.grad[0, 0] = float("inf")
    opt.step(grad_scale=1.0)
    out["found_inf"] = opt.optim.found_inf
    out["changed"] = sum(not torch.equal(a, b) for a, b in zip(before, params_of(model)))
    # The fix: every rank gives its partition the whole model's sum of squares (rt.grad_sumsq over
    # every parameter, in the one-process optimizer's order): the fused clip and the skip are then
    # one process's, bit for bit.  Three steps, an Inf on the second: every rank skips it.
    model = make_model()
    opt = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=rt.RMSprop, lr=1e-2, momentum=0.9,
                                  max_grad_norm=0.05)
    out["fused_found"] = []
    for s in range(3):
        backward(model, x, y)
        if s == 1:
            model[2].weight.grad[0, 0] = float("inf")
        opt.step(grad_scale=1.0, grad_sumsq=rt.grad_sumsq(model.parameters()))
        out["fused_found"].append(opt.optim.found_inf)
    out["fused_params"] = params_of(model)
    return out


def reference_zero_clip():
    x, y = make_data(24)
    model = make_model()
    opt = rt.RMSprop(model.parameters(), lr=1e-2, momentum=0.9)
    for _ in range(3):
        backward(model, x, y)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.05)
        opt.step()
    ref = params_of(model)
    model = make_model()
    opt = rt.RMSprop(model.parameters(), lr=1e-2, momentum=0.9, max_grad_norm=0.05)
    for s in range(3):
        backward(model, x, y)
        if s == 1:
            model[2].weight.grad[0, 0] = float("inf")
        opt.step(grad_scale=1.0)
    return ref, params_of(model)


# ---- DDP ------------------------------------------------------------------------------------

def run_ddp(rank, world):
    x, y = shard(world, rank)
    out = {}
    for name, cls, tcls, hp, _ in CLASSES:
        for kind in ("dropin", "torch", "zero"):
            model = make_model()
            ddp = DDP(model, gradient_as_bucket_view=(kind == "zero"))
            if kind == "zero":
                opt = ZeroRedundancyOptimizer(ddp.parameters(), optimizer_class=cls, **hp)
            else:
                opt = (cls if kind == "dropin" else tcls)(ddp.parameters(), **hp)
            losses = []
            for step in range(DDP_STEPS):
                opt.zero_grad(set_to_none=True)
                loss = loss_of(ddp, x, y)
                loss.backward()
                if step == 0 and kind == "dropin":
                    out[name, "grad0"] = [p.grad.clone() for p in model.parameters()]
                opt.step()
                losses.append(loss.item())
            out[name, kind] = params_of(model)
            out[name, kind, "loss"] = losses
    return out


def average(grads, world):
    """DDP's average as one process computes it: each rank's gradient times fl(1/W), added in rank order."""
    total = None
    for g in grads:
        g = g * (1.0 / world)
        total = g if total is None else total + g
    return total


def reference_ddp(cls, hp, world):
    model = make_model()
    opt = cls(model.parameters(), **hp)
    shards = [shard(world, r) for r in range(world)]
    for _ in range(DDP_STEPS):
        per_rank = []
        for x, y in shards:
            backward(model, x, y)
            per_rank.append([p.grad.clone() for p in model.parameters()])
        for i, p in enumerate(model.parameters()):
            p.grad = average([g[i] for g in per_rank], world)
        opt.step()
    return params_of(model)


def first_step_shard_grads(world):
    model = make_model()
    grads = []
    for r in range(world):
        backward(model, *shard(world, r))
        grads.append([p.grad.clone() for p in model.parameters()])
    return grads


# ---- the ranks ------------------------------------------------------------------------------

def _worker(rank, world, tmp):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/init", rank=rank, world_size=world)
    try:
        out = {"zero": {case[0]: run_zero(case, rank, world) for case in ZERO_CASES},
               "zero_clip": run_zero_clip(rank),
               "ddp": run_ddp(rank, world)}
        dist.barrier()
    finally:
        dist.destroy_process_group()
    torch.save(out, os.path.join(tmp, f"rank{rank}.pt"))


def spawn(world):
    tmp = tempfile.mkdtemp(prefix="rmsfuse-dist-")
    try:
        t0 = time.perf_counter()
        mp.spawn(_worker, args=(world, tmp), nprocs=world, join=True)
        took = time.perf_counter() - t0
        return [torch.load(os.path.join(tmp, f"rank{r}.pt")) for r in range(world)], took
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def max_ulps(a, b):
    return max(scaled_diff(x, y) for x, y in zip(a, b))


@unittest.skipUnless(GLOO, "torch.distributed with gloo is not in this torch build")
class Distributed(unittest.TestCase):
    RESULTS = {}
    REPORT = []

    @classmethod
    def setUpClass(cls):
        cls._threads = torch.get_num_threads()
        torch.set_num_threads(1)
        for world in WORLD_SIZES:
            cls.RESULTS[world], took = spawn(world)
            cls.REPORT.append(f"world size {world}: ranks ran in {took:.1f} s")

    @classmethod
    def tearDownClass(cls):
        torch.set_num_threads(cls._threads)
        print("\n" + "\n".join(cls.REPORT), file=sys.stderr)

    def assert_bits(self, what, a, b):
        self.assertEqual(len(a), len(b), what)
        for i, (x, y) in enumerate(zip(a, b)):
            self.assertTrue(torch.equal(x, y), f"{what}: tensor {i} differs by {scaled_diff(y, x):.3g} ulps")

    def assert_same_state_dict(self, what, ours, ref):
        self.assertEqual(drop_threads(ours["param_groups"]), ref["param_groups"], what)
        self.assertEqual(sorted(ours["state"]), sorted(ref["state"]), what)
        for i, s in ref["state"].items():
            self.assertEqual(sorted(ours["state"][i]), sorted(s), f"{what}: state {i}")
            for k, v in s.items():
                o = ours["state"][i][k]
                if torch.is_tensor(v):
                    self.assertTrue(torch.equal(o, v), f"{what}: state {i} {k!r} differs")
                else:
                    self.assertEqual(o, v, f"{what}: state {i} {k!r}")

    def test_zero_bit_identical_to_one_process(self):
        for world in WORLD_SIZES:
            ranks = self.RESULTS[world]
            for case in ZERO_CASES:
                what = f"ZeRO {case[0]}, {world} ranks"
                with self.subTest(what):
                    ref = reference_zero(case)
                    # every rank stepped a part (else the partition proves nothing) and holds the same model
                    self.assertTrue(all(sum(r["zero"][case[0]]["local_params"]) > 0 for r in ranks), what)
                    for r, res in enumerate(ranks):
                        self.assert_bits(f"{what}, rank {r}, mid-run", res["zero"][case[0]]["params_mid"],
                                         ref["params_mid"])
                        self.assert_bits(f"{what}, rank {r}, after the reload", res["zero"][case[0]]["params"],
                                         ref["params"])
                    # the consolidated state_dict is the one-process drop-in's, bit for bit
                    self.assert_same_state_dict(what, ranks[0]["zero"][case[0]]["state_dict"], ref["state_dict"])
            if world == 3:  # the biases all land on rank 2: ranks 0 and 1 hold an empty group
                self.assertEqual(ranks[0]["zero"]["RMSprop"]["local_params"][1], 0)

    def test_zero_clip_workaround_and_local_norm(self):
        ref, ref_fused = reference_zero_clip()
        for world in WORLD_SIZES:
            ranks = self.RESULTS[world]
            for r, res in enumerate(ranks):
                self.assert_bits(f"ZeRO clip_grad_norm_, {world} ranks, rank {r}", res["zero_clip"]["params"], ref)
                # the fused clip and skip with the whole model's grad_sumsq: one process's bits
                self.assertEqual(res["zero_clip"]["fused_found"], [False, True, False])
                self.assert_bits(f"ZeRO max_grad_norm + grad_sumsq, {world} ranks, rank {r}",
                                 res["zero_clip"]["fused_params"], ref_fused)
            self.REPORT.append(
                f"ZeRO, {world} ranks: max_grad_norm= saw the partition norms "
                + ", ".join(f"{r['zero_clip']['local_norm']:.6g}" for r in ranks)
                + f" (global {ranks[0]['zero_clip']['global_norm']:.6g}); an Inf in one weight: found_inf "
                + ", ".join(str(r["zero_clip"]["found_inf"]) for r in ranks)
                + f", {ranks[0]['zero_clip']['changed']} of 6 parameters still changed")

    def test_ddp_gradient_average(self):
        for world in WORLD_SIZES:
            shards = first_step_shard_grads(world)
            for name, *_ in CLASSES:
                for r, res in enumerate(self.RESULTS[world]):
                    got = res["ddp"][name, "grad0"]
                    for i, g in enumerate(got):
                        parts = [s[i] * (1.0 / world) for s in shards]
                        if world == 2:
                            self.assertTrue(torch.equal(g, parts[0] + parts[1]), f"{world} ranks, grad {i}")
                            continue
                        rotations = [(parts[k] + parts[(k + 1) % 3]) + parts[(k + 2) % 3] for k in range(3)]
                        self.assertTrue(((g == rotations[0]) | (g == rotations[1]) | (g == rotations[2])).all(),
                                        f"{world} ranks, grad {i}: an element is none of the three associations")
            if world == 3:
                got = self.RESULTS[3][0]["ddp"]["RMSprop", "grad0"]
                ref = [average([s[i] for s in shards], 3) for i in range(len(got))]
                differ = sum(int((g != f).sum()) for g, f in zip(got, ref))
                total = sum(g.numel() for g in got)
                self.REPORT.append(f"DDP, 3 ranks: {differ} of {total} averaged gradients of step 1 differ "
                                   f"from one process's (g0'+g1')+g2'")

    def test_ddp_against_one_process(self):
        for world in WORLD_SIZES:
            ranks = self.RESULTS[world]
            worst = {}
            for name, cls, _, hp, _ in CLASSES:
                with self.subTest(f"DDP {name}, {world} ranks"):
                    ref = reference_ddp(cls, hp, world)
                    for r, res in enumerate(ranks):
                        ddp = res["ddp"]
                        # every rank holds the same model; ZeRO under DDP changes no bit
                        self.assert_bits(f"DDP {name}, rank {r} vs rank 0", ddp[name, "dropin"],
                                         ranks[0]["ddp"][name, "dropin"])
                        self.assert_bits(f"DDP+ZeRO {name}, {world} ranks, rank {r}", ddp[name, "zero"],
                                         ddp[name, "dropin"])
                    got = ranks[0]["ddp"][name, "dropin"]
                    if world == 2:
                        self.assert_bits(f"DDP {name}, 2 ranks vs one process", got, ref)
                    else:
                        worst[name] = max_ulps(ref, got)
                        self.assertLessEqual(worst[name], DDP3_TOL, f"DDP {name}, {world} ranks vs one process")
            if worst:
                self.REPORT.append(f"DDP, {world} ranks vs one process after {DDP_STEPS} steps, ulps of max|param|: "
                                   + ", ".join(f"{k} {v:.3g}" for k, v in worst.items()))

    def test_ddp_dropin_against_torch_optim(self):
        for world in WORLD_SIZES:
            worst = {}
            for name, *_ in CLASSES:
                ddp = self.RESULTS[world][0]["ddp"]
                ours, theirs = ddp[name, "dropin"], ddp[name, "torch"]
                rel = max(((a - b).abs().max() / b.abs().max()).item() for a, b in zip(ours, theirs))
                worst[name] = (rel, max_ulps(theirs, ours))
                self.assertLessEqual(rel, TRAIN_PARAM_TOL, f"DDP {name}, {world} ranks: drop-in vs torch.optim")
            self.REPORT.append(f"DDP, {world} ranks, drop-in vs torch.optim after {DDP_STEPS} steps "
                               f"(relative to max|param|; ulps): "
                               + ", ".join(f"{k} {r:.2g} ({u:.3g})" for k, (r, u) in worst.items()))


if __name__ == "__main__":
    unittest.main()
