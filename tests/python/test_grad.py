"""The drop-ins' fused gradient handling: step(grad_scale=), max_grad_norm=, clip_value=, GradScaler.

Run: /usr/bin/python3 tests/python/run.py test_grad   (ctest: python_grad)

What each is checked against (docs/python.md, "Loss scaling and clipping"):
  * grad_scale: the step reads g * (1/grad_scale rounded to float32 once), as
    torch's GradScaler unscales; so the drop-in stepped on scaled gradients
    with grad_scale= must give the bits of the same drop-in stepped on
    gradients unscaled by hand (g.mul_(inv), inv as torch computes it).
  * found-inf: an Inf or NaN in any gradient of any group skips the whole
    step: every parameter and state tensor keeps its bits, 'step' is not
    counted, found_inf is True; the next finite step runs.
  * max_grad_norm: the norm (grad_norm) is torch.nn.utils.clip_grad_norm_'s
    total norm to 1e-6 relative (rmsfuse sums in double, torch in float);
    the step equals, bit for bit, the drop-in stepped on gradients multiplied
    by hand by the clip factor max_norm / (grad_norm + 1e-6) in float32; the
    norm is global over all groups; threads= gives the same bits.
  * clip_value: the step equals the drop-in stepped on clip_grad_value_'d
    gradients, bit for bit.
  * grad_sumsq= (ZeRO's case): optimizers over parts of a model, each given the
    whole model's sum (grad_sumsq()), step as one optimizer over all of it, bit
    for bit, skipping included.
  * GradScaler: a model whose scaled loss overflows float32 on some steps:
    those steps change nothing (bit for bit), the scale follows torch's
    backoff/growth rules (written out here), and the run equals a hand-made
    loop (unscale, check, step) bit for bit.
"""

import copy
import math
import unittest

import numpy as np
import torch

from rmsfuse.torch import RMSprop, Adagrad, SGD, Adam, AdamW, GradScaler, grad_sumsq

CLASSES = [
    (RMSprop, dict(lr=1e-2, momentum=0.9, centered=True)),
    (Adagrad, dict(lr=1e-2)),
    (SGD, dict(lr=1e-2, momentum=0.9, nesterov=True)),
    (Adam, dict(lr=1e-3, amsgrad=True)),
    (AdamW, dict(lr=1e-3, weight_decay=0.1)),
]


def model(seed=5):
    g = torch.Generator().manual_seed(seed)
    m = torch.nn.Sequential(torch.nn.Linear(12, 40), torch.nn.Tanh(), torch.nn.Linear(40, 3))
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return m


def batch(s):
    g = torch.Generator().manual_seed(1000 + s)
    return torch.randn(32, 12, generator=g), torch.randn(32, 3, generator=g)


def groups(m):
    """Two groups: the weights, then the biases (so the norm must cross groups)."""
    ps = list(m.named_parameters())
    return [{"params": [p for n, p in ps if n.endswith("weight")]},
            {"params": [p for n, p in ps if n.endswith("bias")]}]


def backward(m, s, factor=1.0):
    x, y = batch(s)
    for p in m.parameters():
        p.grad = None
    loss = ((m(x) - y) ** 2).mean()
    (loss * factor).backward()
    return loss.item()


def snapshot(m, opt):
    return [p.detach().clone() for p in m.parameters()], copy.deepcopy(opt.state_dict())


def inv_of(scale):
    """torch's GradScaler: inv_scale = scale.double().reciprocal().float()."""
    return torch.tensor([scale], dtype=torch.float32).double().reciprocal().float()


class Bits(unittest.TestCase):
    def same_model(self, a, b, what):
        for (n, x), y in zip(a.named_parameters(), b.parameters()):
            self.assertTrue(torch.equal(x, y), f"{what}: {n} differs")

    def same_state(self, oa, ob, what):
        sa, sb = oa.state_dict()["state"], ob.state_dict()["state"]
        self.assertEqual(sa.keys(), sb.keys())
        for k in sa:
            for key, v in sa[k].items():
                w = sb[k][key]
                if torch.is_tensor(v):
                    self.assertTrue(torch.equal(v, w), f"{what}: state {k} {key} differs")
                else:
                    self.assertEqual(v, w, f"{what}: state {k} {key}")


class TestGradScale(Bits):
    def test_unscale_is_torchs_unscale(self):
        for cls, kw in CLASSES:
            for scale in (1024.0, 1000.0, 3.0e-3):
                with self.subTest(cls=cls.__name__, scale=scale):
                    ma, mb = model(), model()
                    oa, ob = cls(groups(ma), **kw), cls(groups(mb), **kw)
                    for s in range(6):
                        backward(ma, s, scale)
                        backward(mb, s, scale)
                        with torch.no_grad():
                            for p in mb.parameters():
                                p.grad.mul_(inv_of(scale))
                        oa.step(grad_scale=scale if s % 2 else torch.tensor([scale]))
                        ob.step()
                        self.assertIs(oa.found_inf, False)
                        self.assertIsNone(ob.found_inf)
                    self.same_model(ma, mb, f"{cls.__name__} grad_scale={scale}")
                    self.same_state(oa, ob, f"{cls.__name__} grad_scale={scale}")

    def test_found_inf_skips_the_whole_step(self):
        for cls, kw in CLASSES:
            for bad in (math.inf, -math.inf, math.nan):
                with self.subTest(cls=cls.__name__, bad=bad):
                    m = model()
                    opt = cls(groups(m), **kw)
                    backward(m, 0, 256.0)
                    opt.step(grad_scale=256.0)
                    before, state = snapshot(m, opt)
                    backward(m, 1, 256.0)
                    list(m.parameters())[-1].grad[1] = bad  # the last tensor of the second group
                    opt.step(grad_scale=256.0)
                    self.assertIs(opt.found_inf, True)
                    for p, q in zip(m.parameters(), before):
                        self.assertTrue(torch.equal(p, q))
                    after = opt.state_dict()
                    for k, v in state["state"].items():
                        for key, x in v.items():
                            y = after["state"][k][key]
                            self.assertTrue(torch.equal(x, y) if torch.is_tensor(x) else x == y, (k, key))
                    backward(m, 2, 256.0)
                    opt.step(grad_scale=256.0)  # finite: runs
                    self.assertIs(opt.found_inf, False)
                    self.assertFalse(all(torch.equal(p, q) for p, q in zip(m.parameters(), before)))

    def test_a_new_parameter_gets_no_state_on_a_skipped_step(self):
        m = model()
        opt = Adam(m.parameters(), lr=1e-3)
        backward(m, 0)
        list(m.parameters())[0].grad[0, 0] = math.inf
        opt.step(grad_scale=1.0)
        self.assertTrue(opt.found_inf)
        self.assertEqual(len(opt.state), 0)

    def test_bad_grad_scale_changes_nothing(self):
        m = model()
        opt = RMSprop(m.parameters(), lr=1e-2)
        backward(m, 0)
        before, _ = snapshot(m, opt)
        for bad in (0.0, -2.0, math.nan, math.inf, 1e-300, torch.tensor([1.0, 2.0])):
            with self.assertRaises(ValueError, msg=repr(bad)):
                opt.step(grad_scale=bad)
        with self.assertRaises(TypeError):
            opt.step(grad_scale="2")
        for p, q in zip(m.parameters(), before):
            self.assertTrue(torch.equal(p, q))
        self.assertEqual(len(opt.state), 0)


class TestClipping(Bits):
    def test_max_grad_norm_is_clip_grad_norm(self):
        for cls, kw in CLASSES:
            for max_norm, grad_scale in ((0.05, None), (0.05, 512.0), (1e6, None)):
                with self.subTest(cls=cls.__name__, max_norm=max_norm, grad_scale=grad_scale):
                    ma, mb = model(), model()
                    oa = cls(groups(ma), max_grad_norm=max_norm, **kw)
                    ob = cls(groups(mb), **kw)
                    clipped = 0
                    for s in range(5):
                        f = grad_scale or 1.0
                        backward(ma, s, f)
                        backward(mb, s, f)
                        oa.step() if grad_scale is None else oa.step(grad_scale=grad_scale)
                        with torch.no_grad():
                            unscaled = [p.grad * inv_of(f) for p in mb.parameters()]
                            total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.double())
                                                                          for g in unscaled]))
                            self.assertAlmostEqual(oa.grad_norm / total.item(), 1.0, delta=1e-6)
                            c = max_norm / (oa.grad_norm + 1e-6)
                            clipped += c < 1.0
                            # the scale and the factor: one float32 multiplier, as docs/math.md says
                            mult = torch.tensor((1.0 / f) * min(c, 1.0), dtype=torch.float32)
                            for p in mb.parameters():
                                p.grad.mul_(mult)
                        ob.step()
                    self.assertEqual(clipped > 0, max_norm < 1.0)
                    self.same_model(ma, mb, f"{cls.__name__} max_grad_norm={max_norm}")
                    self.same_state(oa, ob, f"{cls.__name__} max_grad_norm={max_norm}")

    def test_norm_is_global_and_only_clipping_groups_clip(self):
        ma, mb = model(), model()
        ga, gb = groups(ma), groups(mb)
        ga[1]["max_grad_norm"] = None  # the biases: not clipped, but in the norm
        oa = SGD(ga, lr=0.1, max_grad_norm=0.01)
        ob = SGD(gb, lr=0.1)
        backward(ma, 0)
        backward(mb, 0)
        oa.step()
        total = torch.nn.utils.clip_grad_norm_(list(mb.parameters()), math.inf).item()
        self.assertAlmostEqual(oa.grad_norm / total, 1.0, delta=1e-6)
        c = torch.tensor(0.01 / (oa.grad_norm + 1e-6), dtype=torch.float32)
        with torch.no_grad():
            for p in gb[0]["params"]:
                p.grad.mul_(c)
        ob.step()
        self.same_model(ma, mb, "global norm, one group clipped")

    def test_clip_value_is_clip_grad_value(self):
        for cls, kw in CLASSES:
            with self.subTest(cls=cls.__name__):
                ma, mb = model(), model()
                oa = cls(groups(ma), clip_value=0.02, **kw)
                ob = cls(groups(mb), **kw)
                for s in range(4):
                    backward(ma, s)
                    backward(mb, s)
                    torch.nn.utils.clip_grad_value_(mb.parameters(), 0.02)
                    oa.step()
                    ob.step()
                    self.assertIsNone(oa.grad_norm)
                self.same_model(ma, mb, f"{cls.__name__} clip_value")
                self.same_state(oa, ob, f"{cls.__name__} clip_value")

    def test_threads_give_the_same_bits(self):
        for cls, kw in CLASSES:
            with self.subTest(cls=cls.__name__):
                ma, mb = model(), model()
                oa = cls(groups(ma), max_grad_norm=0.05, clip_value=0.5, **kw)
                ob = cls(groups(mb), max_grad_norm=0.05, clip_value=0.5, threads=2, **kw)
                for s in range(4):
                    backward(ma, s, 8.0)
                    backward(mb, s, 8.0)
                    oa.step(grad_scale=8.0)
                    ob.step(grad_scale=8.0)
                    self.assertEqual(oa.grad_norm, ob.grad_norm)
                self.same_model(ma, mb, f"{cls.__name__} threads")
                ob.close()

    def test_parts_given_the_whole_sum_are_the_whole(self):
        """Two optimizers over the weights and the biases (as ZeRO's partitions), each given the
        whole model's sum (grad_sumsq()), step as one optimizer over both groups, bit for bit,
        skipping included."""
        for cls, kw in CLASSES:
            with self.subTest(cls=cls.__name__):
                ma, mb = model(), model()
                whole = cls(groups(ma), max_grad_norm=0.05, **kw)
                gb = groups(mb)
                parts = [cls([g], max_grad_norm=0.05, **kw) for g in gb]
                for s in range(5):
                    backward(ma, s, 64.0)
                    backward(mb, s, 64.0)
                    if s == 3:
                        list(ma.parameters())[-1].grad[0] = math.inf
                        list(mb.parameters())[-1].grad[0] = math.inf
                    whole.step(grad_scale=64.0)
                    total = grad_sumsq([p for g in gb for p in g["params"]], grad_scale=64.0)
                    self.assertEqual(math.sqrt(total) if math.isfinite(total) else total, whole.grad_norm)
                    for o in parts:
                        o.step(grad_scale=64.0, grad_sumsq=total)
                        self.assertEqual(o.found_inf, s == 3)
                        self.assertEqual(o.grad_norm, whole.grad_norm)
                self.same_model(ma, mb, f"{cls.__name__} parts")
        with self.assertRaises(ValueError):
            parts[0].step(grad_sumsq=-1.0)
        with self.assertRaises(TypeError):  # a float64 gradient
            grad_sumsq([type("P", (), {"grad": torch.zeros(2, dtype=torch.float64)})()])

    def test_bad_values_are_refused(self):
        m = model()
        for bad in (-1.0, math.nan, "1", True):
            with self.assertRaises(ValueError, msg=repr(bad)):
                SGD(m.parameters(), lr=0.1, max_grad_norm=bad)
            with self.assertRaises(ValueError, msg=repr(bad)):
                SGD(m.parameters(), lr=0.1, clip_value=bad)


def torch_rules(scale, tracker, found, growth, backoff, interval):
    """torch's _amp_update_scale_ (aten/src/ATen/native/cuda/AmpKernels.cu), in float32."""
    if found:
        return float(np.float32(scale * backoff)), 0
    tracker += 1
    if tracker == interval:
        grown = np.float32(scale * growth)
        return (float(grown) if np.isfinite(grown) else scale), 0
    return scale, tracker


class TestGradScaler(Bits):
    def test_overflowing_loss_scale(self):
        """init_scale 2^126: the scaled loss's gradients overflow float32 until the scale has backed
        off far enough; later, growth_interval clean steps double it again."""
        for cls, kw in CLASSES:
            with self.subTest(cls=cls.__name__):
                if cls is SGD:
                    kw = dict(kw, lr=1e-6)  # the gradients of this loss are ~1e3: stay stable
                ma, mb = model(), model()
                oa, ob = cls(groups(ma), **kw), cls(groups(mb), **kw)
                scaler = GradScaler(init_scale=2.0 ** 126, growth_interval=3)
                scale, tracker, skipped, grown = 2.0 ** 126, 0, 0, 0
                for s in range(40):
                    self.assertEqual(scaler.get_scale(), scale)
                    x, y = batch(s)
                    oa.zero_grad()
                    scaler.scale(((ma(x) - y) ** 2).sum() * 100.0).backward()  # gradients ~1e3: 2^126 overflows
                    before, state = snapshot(ma, oa)
                    ret = scaler.step(oa)
                    scaler.update()
                    # the hand-made loop: unscale, check, step
                    mb.zero_grad()
                    (((mb(x) - y) ** 2).sum() * 100.0 * scale).backward()
                    found = False
                    with torch.no_grad():
                        for p in mb.parameters():
                            p.grad.mul_(inv_of(scale))
                            found |= not bool(torch.isfinite(p.grad).all())
                    self.assertEqual(oa.found_inf, found, f"step {s}")
                    if found:
                        skipped += 1
                        self.assertIsNone(ret)
                        for p, q in zip(ma.parameters(), before):
                            self.assertTrue(torch.equal(p, q), f"step {s}: a skipped step changed a parameter")
                        self.same_state_dict(state, oa.state_dict(), s)
                    else:
                        ob.step()
                    new_scale, tracker = torch_rules(scale, tracker, found, 2.0, 0.5, 3)
                    grown += new_scale > scale
                    scale = new_scale
                    self.same_model(ma, mb, f"{cls.__name__} step {s}")
                self.assertGreater(skipped, 2)
                self.assertGreater(grown, 0)
                self.same_state(oa, ob, cls.__name__)

    def same_state_dict(self, a, b, s):
        for k, v in a["state"].items():
            for key, x in v.items():
                y = b["state"][k][key]
                self.assertTrue(torch.equal(x, y) if torch.is_tensor(x) else x == y, f"step {s}: state {key}")

    def test_a_wrapper_of_a_drop_in(self):
        """GradScaler steps a wrapper that holds a drop-in as .optim and passes keywords on (as
        ZeroRedundancyOptimizer does), reading the drop-in's found_inf."""
        class Wrapper:
            def __init__(self, optim):
                self.optim = optim

            def step(self, closure=None, **kw):
                return self.optim.step(closure, **kw)

        m = model()
        w = Wrapper(SGD(m.parameters(), lr=0.1))
        scaler = GradScaler(init_scale=4.0)
        backward(m, 0, 4.0)
        list(m.parameters())[0].grad[0, 0] = math.inf
        before = [p.clone() for p in m.parameters()]
        self.assertIsNone(scaler.step(w, grad_sumsq=math.inf))
        scaler.update()
        self.assertEqual(scaler.get_scale(), 2.0)
        self.assertTrue(all(torch.equal(p, q) for p, q in zip(m.parameters(), before)))

    def test_state_dict_and_disabled(self):
        sc = GradScaler(init_scale=1024.0, growth_interval=7)
        sd = sc.state_dict()
        self.assertEqual(sd, {"scale": 1024.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                              "growth_interval": 7, "_growth_tracker": 0})
        other = GradScaler()
        other.load_state_dict(sd)
        self.assertEqual(other.state_dict(), sd)
        off = GradScaler(enabled=False)
        t = torch.ones(2)
        self.assertIs(off.scale(t), t)
        self.assertEqual(off.get_scale(), 1.0)
        with self.assertRaises(ValueError):
            GradScaler(growth_factor=1.0)
        m = model()
        with self.assertRaises(TypeError):
            GradScaler().step(torch.optim.SGD(m.parameters(), lr=0.1))


if __name__ == "__main__":
    unittest.main()
