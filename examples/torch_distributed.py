#!/usr/bin/env python3
"""DistributedDataParallel + ZeroRedundancyOptimizer with rmsfuse's AdamW, on gloo, on this host.

    /usr/bin/python3 examples/torch_distributed.py --world-size 2     # or 3; --steps N

Each rank trains the same small MLP on its own shard of the batch: DDP averages
the gradients (gloo allreduce), and ZeroRedundancyOptimizer keeps the AdamW
state of about 1/world_size of the parameters on each rank, steps them with
rmsfuse.torch.AdamW and broadcasts them.  Rank 0 prints the loss every few
steps.  At the end it trains the same model in this one process (every
shard's gradient, averaged as DDP averages them, then a plain
rmsfuse.torch.AdamW step) and compares: with 2 ranks the parameters are
bit-identical; with 3, gloo adds the three gradients in a different order
for each third of the gradient, so the last bits differ and it prints the
largest difference (docs/distributed.md, "PyTorch: torch.distributed").

The library is found as the package finds it (RMSFUSE_LIBRARY, or the build
folders; docs/python.md); python/ is put on sys.path when run from a clone.
"""
import argparse
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
from torch.distributed.optim import ZeroRedundancyOptimizer  # noqa: E402
from torch.nn.parallel import DistributedDataParallel as DDP  # noqa: E402

import rmsfuse.torch  # noqa: E402

SHARD = 32              # rows per rank and step
HYPER = dict(lr=3e-3, weight_decay=0.05)


def make_model():
    torch.manual_seed(0)  # the same initial weights in every process
    return torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.GELU(), torch.nn.Linear(64, 64),
                               torch.nn.GELU(), torch.nn.Linear(64, 1))


def batch(step, rank, world):
    """Rank `rank`'s shard of step `step`'s global batch (a fixed regression target)."""
    gen = torch.Generator().manual_seed(1000 * step + rank)
    x = torch.randn(SHARD, 16, generator=gen)
    y = (x[:, :4].sum(1, keepdim=True) - x[:, 4:8].prod(1, keepdim=True)).tanh()
    return x, y


def train(rank, world, steps, init, out):
    torch.set_num_threads(1)  # the same bits in every process (and 2 ranks share 2 cores)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    model = make_model()
    ddp = DDP(model, gradient_as_bucket_view=True)
    opt = ZeroRedundancyOptimizer(ddp.parameters(), optimizer_class=rmsfuse.torch.AdamW, **HYPER)
    mine = sum(p.numel() for g in opt.optim.param_groups for p in g["params"])
    total = sum(p.numel() for p in model.parameters())
    print(f"rank {rank}: AdamW state for {mine} of {total} parameters")
    for step in range(steps):
        x, y = batch(step, rank, world)
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(ddp(x), y)
        loss.backward()             # DDP: every rank now holds the averaged gradient
        opt.step()                  # this rank's AdamW step on its partition, then the broadcasts
        if rank == 0 and (step % 10 == 0 or step == steps - 1):
            print(f"step {step:3d}  loss (rank 0's shard) {loss.item():.6f}")
    opt.consolidate_state_dict(to=0)  # the whole optimizer state, as one process's, on rank 0
    if rank == 0:
        torch.save({"params": [p.detach() for p in model.parameters()], "optim": opt.state_dict()}, out)
    dist.destroy_process_group()


def one_process(world, steps):
    """What the ranks compute, in one process: DDP's average is each shard's gradient times
    float32(1/world), added in rank order."""
    torch.set_num_threads(1)
    model = make_model()
    opt = rmsfuse.torch.AdamW(model.parameters(), **HYPER)
    for step in range(steps):
        grads = []
        for r in range(world):
            model.zero_grad(set_to_none=True)
            x, y = batch(step, r, world)
            torch.nn.functional.mse_loss(model(x), y).backward()
            grads.append([p.grad * (1.0 / world) for p in model.parameters()])
        for i, p in enumerate(model.parameters()):
            p.grad = grads[0][i]
            for g in grads[1:]:
                p.grad = p.grad + g[i]
        opt.step()
    return [p.detach() for p in model.parameters()], opt.state_dict()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--world-size", type=int, default=2)
    ap.add_argument("--steps", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.pt")
        mp.spawn(train, args=(args.world_size, args.steps, f"file://{tmp}/init", out),
                 nprocs=args.world_size, join=True)
        got = torch.load(out)
    ref, ref_state = one_process(args.world_size, args.steps)
    diff = max((a - b).abs().max().item() for a, b in zip(got["params"], ref))
    state_same = all(torch.equal(got["optim"]["state"][i][k], v) for i, s in ref_state["state"].items()
                     for k, v in s.items())
    if diff == 0 and state_same:
        print(f"{args.world_size} ranks: parameters and AdamW state bit-identical to one process")
    else:
        scale = max(b.abs().max().item() for b in ref)
        print(f"{args.world_size} ranks: max |parameter difference| to one process {diff:.3g} "
              f"({diff / scale:.3g} of max|param|; gloo's reduction order, docs/distributed.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
