"""rmsfuse.torch.RMSprop against torch.optim.RMSprop: API, state, errors, training.

Run: /usr/bin/python3 tests/python/run.py test_torch   (ctest: python_torch)

Tolerances (measured on an AMD EPYC (Zen 5) with Debian's torch 1.13.1, whose
AVX2 kernels contract into FMA, so torch and rmsfuse differ by an ulp here and
there; see docs/python.md):
  * training a two-layer MLP for 300 steps, every step: each parameter tensor
    within TRAIN_PARAM_TOL * max|param| of torch's, the loss within
    TRAIN_LOSS_TOL (relative).  Measured worst: 1.6e-5 and 2.4e-5.
  * short runs on random data (10 steps, every torch flag combination):
    parameters and state within SHORT_TOL ulps of max|tensor|; measured
    worst 2.8.
"""

import copy
import inspect
import itertools
import unittest

import torch

import rmsfuse
from rmsfuse.torch import RMSprop

TRAIN_STEPS = 300
TRAIN_PARAM_TOL = 1e-4
TRAIN_LOSS_TOL = 1e-4
SHORT_TOL = 16  # ulps of max|tensor|

TORCH_FLAGS = [dict(centered=c, maximize=mx, weight_decay=wd, momentum=m)
               for c, mx, wd, m in itertools.product((False, True), (False, True), (0, 1e-2), (0, 0.9))]


def scaled_diff(a, b):
    """max|a - b| in ulps of max|a| (float32 spacing)."""
    scale = a.abs().max().item()
    ulp = torch.finfo(torch.float32).eps * scale if scale > 0 else torch.finfo(torch.float32).tiny
    return (a - b).abs().max().item() / ulp


def twin_params(shapes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    a = [torch.randn(s, generator=gen).requires_grad_() for s in shapes]
    b = [x.detach().clone().requires_grad_() for x in a]
    return a, b


def set_grads(pa, pb, gen):
    for x, y in zip(pa, pb):
        g = torch.randn(x.shape, generator=gen) * 0.1
        x.grad = g.clone()
        y.grad = g.clone()


class TestDropIn(unittest.TestCase):
    def test_constructor_signature_and_defaults(self):
        ours = inspect.signature(RMSprop.__init__).parameters
        theirs = inspect.signature(torch.optim.RMSprop.__init__).parameters
        self.assertEqual([(n, p.default) for n, p in theirs.items()],
                         [(n, p.default) for n, p in ours.items() if n != "threads"])
        self.assertEqual(ours["threads"].kind, inspect.Parameter.KEYWORD_ONLY)
        for kw in ({}, dict(lr=0.5, alpha=0.9, eps=1e-3, weight_decay=0.1, momentum=0.3, centered=True,
                            foreach=True, maximize=True)):
            p = [torch.zeros(3, requires_grad=True)]
            g1 = torch.optim.RMSprop(p, **kw).param_groups[0]
            g2 = RMSprop(p, **kw).param_groups[0]
            self.assertEqual({k: v for k, v in g1.items() if k != "params"},
                             {k: v for k, v in g2.items() if k != "params"})

    def test_every_torch_flag_combination(self):
        gen = torch.Generator().manual_seed(1)
        for kw in TORCH_FLAGS:
            with self.subTest(**kw):
                pa, pb = twin_params([(40, 7), (7,), (3, 2, 5)])
                oa, ob = torch.optim.RMSprop(pa, lr=0.01, **kw), RMSprop(pb, lr=0.01, **kw)
                for _ in range(10):
                    set_grads(pa, pb, gen)
                    oa.step()
                    ob.step()
                for x, y in zip(pa, pb):
                    self.assertLess(scaled_diff(x.detach(), y.detach()), SHORT_TOL)
                    sa, sb = oa.state[x], ob.state[y]
                    self.assertEqual(sorted(sa), sorted(sb))
                    self.assertEqual((type(sa["step"]), sa["step"]), (type(sb["step"]), sb["step"]))
                    for k in sa:
                        if k != "step":
                            self.assertLess(scaled_diff(sa[k], sb[k]), SHORT_TOL, k)
                sda, sdb = oa.state_dict(), ob.state_dict()
                self.assertEqual(sda["param_groups"], sdb["param_groups"])
                self.assertEqual({k: sorted(v) for k, v in sda["state"].items()},
                                 {k: sorted(v) for k, v in sdb["state"].items()})

    def test_state_dict_moves_between_the_two(self):
        gen = torch.Generator().manual_seed(2)
        kw = dict(lr=0.02, momentum=0.9, centered=True, weight_decay=1e-3)
        pa, pb = twin_params([(100,), (10, 10)])
        oa = torch.optim.RMSprop(pa, **kw)
        for _ in range(5):
            set_grads(pa, pb, gen)
            oa.step()
        with torch.no_grad():
            for x, y in zip(pa, pb):
                y.copy_(x)
        ob = RMSprop(pb, **kw)
        ob.load_state_dict(copy.deepcopy(oa.state_dict()))  # torch -> rmsfuse
        for _ in range(5):
            set_grads(pa, pb, gen)
            oa.step()
            ob.step()
        for x, y in zip(pa, pb):
            self.assertLess(scaled_diff(x.detach(), y.detach()), SHORT_TOL)
            self.assertEqual(ob.state[y]["step"], 10)
        back = torch.optim.RMSprop(pa, **kw)
        back.load_state_dict(ob.state_dict())  # rmsfuse -> torch
        self.assertEqual(back.state[pa[0]]["step"], 10)

    def test_groups_and_lr_scheduler(self):
        gen = torch.Generator().manual_seed(3)
        pa, pb = twin_params([(50,), (20,), (30,)])
        groups = lambda p: [{"params": p[:2]}, {"params": p[2:], "lr": 0.1, "momentum": 0.5,  # noqa: E731
                                                 "centered": True}]
        oa, ob = torch.optim.RMSprop(groups(pa), lr=0.01), RMSprop(groups(pb), lr=0.01)
        sa = torch.optim.lr_scheduler.StepLR(oa, step_size=3, gamma=0.5)
        sb = torch.optim.lr_scheduler.StepLR(ob, step_size=3, gamma=0.5)
        for _ in range(10):
            set_grads(pa, pb, gen)
            oa.step()
            ob.step()
            sa.step()
            sb.step()
        self.assertEqual(ob.param_groups[1]["lr"], oa.param_groups[1]["lr"])
        for x, y in zip(pa, pb):
            self.assertLess(scaled_diff(x.detach(), y.detach()), SHORT_TOL)
        self.assertIn("momentum_buffer", ob.state[pb[2]])
        self.assertNotIn("momentum_buffer", ob.state[pb[0]])

    def test_closure_and_params_without_grad(self):
        w = torch.ones(4, requires_grad=True)
        unused = torch.ones(4, requires_grad=True)
        opt = RMSprop([w, unused])

        def closure():
            opt.zero_grad()
            loss = (w * w).sum()
            loss.backward()
            return loss

        self.assertEqual(opt.step(closure).item(), 4.0)
        self.assertTrue(torch.all(w < 1))
        self.assertTrue(torch.equal(unused, torch.ones(4)))
        self.assertNotIn(unused, opt.state)

    def test_other_layouts(self):
        # Dense tensors in another memory format, laid out alike: the same bits as contiguous ones.
        gen = torch.Generator().manual_seed(4)
        base = torch.randn(2, 3, 4, 5, generator=gen)
        grad = torch.randn(2, 3, 4, 5, generator=gen)
        cl = base.clone().to(memory_format=torch.channels_last).requires_grad_()
        ct = base.clone().requires_grad_()
        tr = base[0, 0].clone().t().requires_grad_()  # a transposed leaf
        trc = base[0, 0].clone().t().contiguous().requires_grad_()
        cl.grad = grad.clone().to(memory_format=torch.channels_last)
        ct.grad = grad.clone()
        tr.grad = grad[0, 0].clone().t()
        trc.grad = grad[0, 0].t().contiguous()
        self.assertFalse(cl.is_contiguous() or tr.is_contiguous())
        o1, o2 = RMSprop([cl, tr], momentum=0.9), RMSprop([ct, trc], momentum=0.9)
        for _ in range(3):
            o1.step()
            o2.step()
        self.assertTrue(torch.equal(cl, ct))
        self.assertTrue(torch.equal(tr, trc))
        self.assertTrue(o1.state[cl]["square_avg"].is_contiguous(memory_format=torch.channels_last))


class TestRefusals(unittest.TestCase):
    def assert_refused(self, exc, pattern, params, grads=None, **kw):
        good = torch.randn(10, requires_grad=True)
        good.grad = torch.ones(10)
        before = good.detach().clone()
        opt = RMSprop([good] + params, **kw)
        with self.assertRaisesRegex(exc, pattern):
            opt.step()
        self.assertTrue(torch.equal(good, before), "a failed step changed a parameter")
        self.assertEqual(len(opt.state), 0, "a failed step created state")

    def test_unsupported_tensors(self):
        p = torch.zeros(5, dtype=torch.float64, requires_grad=True)
        p.grad = torch.ones(5, dtype=torch.float64)
        self.assert_refused(TypeError, "float32 tensors only.*float64", [p])
        p = torch.zeros(5, dtype=torch.complex64, requires_grad=True)
        p.grad = torch.ones(5, dtype=torch.complex64)
        self.assert_refused(TypeError, "float32", [p])
        p = torch.zeros(5, device="meta", requires_grad=True)
        p.grad = torch.zeros(5, device="meta")
        self.assert_refused(TypeError, "CPU tensors only.*meta", [p])
        emb = torch.nn.Embedding(10, 3, sparse=True)
        emb(torch.tensor([1, 2])).sum().backward()
        self.assert_refused(RuntimeError, "sparse gradients", list(emb.parameters()))
        p = torch.zeros(4, 10)[:, ::2].requires_grad_()  # strided, not dense
        p.grad = torch.ones(4, 5)
        self.assert_refused(ValueError, "laid out alike and densely", [p])
        p = torch.zeros(2, 3, 4, 5).to(memory_format=torch.channels_last).requires_grad_()
        p.grad = torch.ones(2, 3, 4, 5)  # contiguous grad for a channels_last param
        self.assert_refused(ValueError, "laid out alike", [p])

    def test_bad_group_changes_no_other_group(self):
        a = torch.randn(6, requires_grad=True)
        b = torch.randn(6, requires_grad=True)
        a.grad, b.grad = torch.ones(6), torch.ones(6)
        a0 = a.detach().clone()
        opt = RMSprop([{"params": [a]}, {"params": [b], "momentum": 0.9}])
        opt.param_groups[1]["momentum"] = 1.5  # changed after construction: refused at step()
        with self.assertRaisesRegex(ValueError, "not supported by rmsfuse.*RMSFUSE_E_MOMENTUM"):
            opt.step()
        self.assertTrue(torch.equal(a, a0))
        self.assertEqual(len(opt.state), 0)
        opt.param_groups[1]["momentum"] = 0.9
        opt.step()
        self.assertEqual([opt.state[a]["step"], opt.state[b]["step"]], [1, 1])

    def test_overlapping_parameters(self):
        base = torch.zeros(20)
        a = base[:12].requires_grad_()
        b = base[8:].requires_grad_()
        a.grad, b.grad = torch.ones(12), torch.ones(12)
        opt = RMSprop([a, b])
        with self.assertRaisesRegex(rmsfuse.RmsfuseError, "OVERLAP"):
            opt.step()
        self.assertTrue(torch.equal(base, torch.zeros(20)))
        self.assertEqual(len(opt.state), 0)

    def test_constructor(self):
        p = [torch.zeros(2, requires_grad=True)]
        for kw, pat in ((dict(lr=-1), "Invalid learning rate"), (dict(alpha=-1), "Invalid alpha"),
                        (dict(alpha=1.5), "RMSFUSE_E_ALPHA"), (dict(momentum=1.0), "RMSFUSE_E_MOMENTUM"),
                        (dict(eps=float("inf")), "NONFINITE"), (dict(differentiable=True), "differentiable"),
                        (dict(threads=-1), "threads"), (dict(threads=1.5), "threads")):
            with self.subTest(**kw), self.assertRaisesRegex(ValueError, pat):
                RMSprop(p, **kw)
        opt = RMSprop(p)
        with self.assertRaisesRegex(ValueError, "RMSFUSE_E_ALPHA"):
            opt.add_param_group({"params": [torch.zeros(1, requires_grad=True)], "alpha": 2.0})


@unittest.skipUnless(rmsfuse.pool_available(), "librmsfuse_pool not found")
class TestThreads(unittest.TestCase):
    def test_pool_gives_the_same_bits(self):
        gen = torch.Generator().manual_seed(5)
        shapes = [(300, 200), (17,), (40000,), (3, 3, 3, 64)]
        pa, pb = twin_params(shapes)
        o1 = RMSprop(pa, momentum=0.9, centered=True, weight_decay=1e-4)
        o2 = RMSprop(pb, momentum=0.9, centered=True, weight_decay=1e-4, threads=2)
        self.assertEqual((o1.threads, o2.threads), (None, 2))
        for _ in range(4):
            set_grads(pa, pb, gen)
            o1.step()
            o2.step()
        for x, y in zip(pa, pb):
            self.assertTrue(torch.equal(x, y))
        o2.close()
        self.assertIsNone(o2.threads)
        set_grads(pa, pb, gen)
        o2.step()  # closed: back on the calling thread
        self.assertEqual(o2.state[pb[0]]["step"], 5)


def mlp_task():
    """A deterministic synthetic regression task and a two-layer MLP initialiser."""
    gen = torch.Generator().manual_seed(1234)
    x = torch.randn(1024, 16, generator=gen)
    teacher = torch.randn(16, 4, generator=gen)
    y = torch.tanh(x @ teacher) + 0.1 * torch.randn(1024, 4, generator=gen)

    def model():
        g = torch.Generator().manual_seed(99)
        m = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.Tanh(), torch.nn.Linear(64, 4))
        with torch.no_grad():
            for p in m.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        return m

    return x, y, model


class TestTraining(unittest.TestCase):
    CONFIGS = [dict(), dict(momentum=0.9, centered=True), dict(lr=1e-3, weight_decay=1e-3, momentum=0.5),
               dict(lr=3e-3, alpha=0.9, eps=1e-6, centered=True, maximize=True)]

    def test_mlp_trains_like_torch(self):
        x, y, model = mlp_task()
        report = []
        for kw in self.CONFIGS:
            ma, mb = model(), model()
            oa, ob = torch.optim.RMSprop(ma.parameters(), **kw), RMSprop(mb.parameters(), **kw)
            sign = -1.0 if kw.get("maximize") else 1.0
            worst_p = worst_l = 0.0
            losses = []
            for s in range(TRAIN_STEPS):
                i = (s * 128) % len(x)
                xb, yb = x[i:i + 128], y[i:i + 128]
                la = ((ma(xb) - yb) ** 2).mean()
                lb = ((mb(xb) - yb) ** 2).mean()
                oa.zero_grad()
                ob.zero_grad()
                (sign * la).backward()
                (sign * lb).backward()
                oa.step()
                ob.step()
                rel = abs(la.item() - lb.item()) / abs(la.item())
                worst_l = max(worst_l, rel)
                self.assertLessEqual(rel, TRAIN_LOSS_TOL, f"{kw} step {s}: loss {la.item()} vs {lb.item()}")
                for (name, pa), pb in zip(ma.named_parameters(), mb.parameters()):
                    d = ((pa - pb).abs().max() / pa.abs().max()).item()
                    worst_p = max(worst_p, d)
                    self.assertLessEqual(d, TRAIN_PARAM_TOL, f"{kw} step {s} {name}")
                losses.append(la.item())
            self.assertLess(losses[-1], 0.1 * losses[0], f"{kw}: the model did not train")
            report.append(f"  {kw or 'defaults'}: loss {losses[0]:.4g} -> {losses[-1]:.4g}; worst |loss diff|/loss "
                          f"{worst_l:.2e}, worst max|param diff|/max|param| {worst_p:.2e}")
        print(f"\nMLP, {TRAIN_STEPS} steps, rmsfuse vs torch.optim.RMSprop:\n" + "\n".join(report))


class TestExample(unittest.TestCase):
    def test_readme_snippet(self):
        from test_numpy import readme_snippets, run_snippet
        snippets = readme_snippets(needs_torch=True)
        self.assertEqual(len(snippets), 1)
        run_snippet(snippets[0] + "\nassert all(s['step'] == 1 for s in opt.state.values()) and len(opt.state) == 4\n")

    def test_readme_torch_example(self):
        from test_numpy import run_example
        out = run_example("python_torch.py")
        start = float(out.split("loss at the start: ")[1].split()[0])
        end = float(out.split("loss after 200 steps: ")[1].split()[0])
        self.assertLess(end, 0.01 * start, out)
        self.assertIn("state of the first weight: ['momentum_buffer', 'square_avg', 'step'], step 200", out)


if __name__ == "__main__":
    unittest.main()
