"""The drop-ins rmsfuse.torch.{RMSprop, Adagrad, SGD, Adam, AdamW} against their torch.optim classes.

Run: /usr/bin/python3 tests/python/run.py test_torch   (ctest: python_torch)

Each drop-in is run side by side with its torch 1.13 class from the same
tensors and gradients: API (signature, param_groups, state names and types,
state_dict both ways), every option, groups with different hyperparameters,
refusals (nothing changes), threads, and the training of a small MLP.

Tolerances.  rmsfuse evaluates docs/math.md's op order with every operation
rounded once (it is the float32 emulation bit for bit, test_numpy); Debian's
torch 1.13 runs AVX2 kernels compiled with FMA contraction, and its Adam
divides sqrt(v)/sqrt(bc2) + eps where rmsfuse computes the same real number
as (sqrt(v) + eps*sqrt(bc2)) with lr*sqrt(bc2)/bc1 folded into one constant
(docs/math.md, "Adam").  So each step differs by a few ulps here and there,
and each step feeds the next: agreement is ulp-level, not bitwise.
  * short runs on random data (10 steps, every option of every class):
    parameters and state within SHORT_TOL = 16 ulps of max|tensor|.  The
    worst measured (AMD EPYC Zen 4 VM, torch 1.13.1) is printed by the test;
    it was 2.8 for RMSprop and at most 1.6 for the others.
  * training a two-layer MLP for 300 steps, every step: each parameter tensor
    within TRAIN_PARAM_TOL = 1e-4 * max|param| of torch's, the loss within
    TRAIN_LOSS_TOL = 1e-4 (relative).  The worst measured per configuration
    is printed (docs/python.md has the table); all are below 3e-5, most
    below 1e-6, so the bound is at least 3x the measured worst.
"""

import copy
import inspect
import itertools
import unittest

import torch

import rmsfuse
from rmsfuse.torch import RMSprop, Adagrad, SGD, Adam, AdamW

TRAIN_STEPS = 300
TRAIN_PARAM_TOL = 1e-4
TRAIN_LOSS_TOL = 1e-4
SHORT_TOL = 16  # ulps of max|tensor|


def product(**axes):
    return [dict(zip(axes, v)) for v in itertools.product(*axes.values())]


class Spec:
    def __init__(self, ours, theirs, extras, options, mlp, group2, lr=None):
        self.ours, self.theirs, self.extras = ours, theirs, extras
        self.options, self.mlp, self.group2 = options, mlp, group2
        self.base = {} if lr is None else {"lr": lr}  # SGD has no default lr


# Keyword-only group options every class takes for the fused gradient handling and the storage
# types (docs/python.md).
GRAD_EXTRAS = {"max_grad_norm": None, "clip_value": None, "master_weights": "fp32", "state_dtype": torch.float32,
               "stochastic_rounding": False, "seed": 0}

SGD_OPTIONS = [o for o in product(momentum=(0, 0.9), dampening=(0, 0.1), nesterov=(False, True),
                                  weight_decay=(0, 1e-2), maximize=(False, True))
               if not (o["nesterov"] and (o["momentum"] == 0 or o["dampening"] != 0))]
SPECS = {
    "RMSprop": Spec(RMSprop, torch.optim.RMSprop, {"nesterov": False, "decoupled_weight_decay": False,
                                                   "capturable": False, "flush_subnormal": True, **GRAD_EXTRAS},
                    product(centered=(False, True), maximize=(False, True), weight_decay=(0, 1e-2),
                            momentum=(0, 0.9)),
                    [dict(), dict(momentum=0.9, centered=True), dict(lr=1e-3, weight_decay=1e-3, momentum=0.5),
                     dict(lr=3e-3, alpha=0.9, eps=1e-6, centered=True, maximize=True)],
                    dict(lr=0.1, momentum=0.5, centered=True)),
    "Adagrad": Spec(Adagrad, torch.optim.Adagrad, {"eps_in_sqrt": False, "differentiable": False, "fused": None,
                                                   "flush_subnormal": True, **GRAD_EXTRAS},
                    product(lr_decay=(0, 0.05), weight_decay=(0, 1e-2), initial_accumulator_value=(0, 0.1),
                            maximize=(False, True)),
                    [dict(lr=0.05), dict(lr=0.05, lr_decay=1e-3, weight_decay=1e-4, initial_accumulator_value=0.1),
                     dict(lr=0.02, eps=1e-6, maximize=True)],
                    dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.5)),
    "SGD": Spec(SGD, torch.optim.SGD, {"fused": None, "flush_subnormal": True, **GRAD_EXTRAS}, SGD_OPTIONS,
                [dict(lr=0.05), dict(lr=0.01, momentum=0.9), dict(lr=0.01, momentum=0.9, nesterov=True,
                                                                   weight_decay=1e-4),
                 dict(lr=0.02, momentum=0.5, dampening=0.5, maximize=True)],
                dict(lr=0.1, momentum=0.9, nesterov=True), lr=0.01),
    "Adam": Spec(Adam, torch.optim.Adam, {"decoupled_weight_decay": False, "flush_subnormal": True, **GRAD_EXTRAS},
                 product(amsgrad=(False, True), weight_decay=(0, 1e-2), maximize=(False, True),
                         betas=((0.9, 0.999), (0.5, 0.9))),
                 [dict(lr=1e-2), dict(lr=3e-3, amsgrad=True, weight_decay=1e-3),
                  dict(lr=1e-3, betas=(0.8, 0.99), eps=1e-6, maximize=True)],
                 dict(lr=0.1, betas=(0.5, 0.9), amsgrad=True)),
    "AdamW": Spec(AdamW, torch.optim.AdamW, {"differentiable": False, "fused": None, "flush_subnormal": True, **GRAD_EXTRAS},
                  product(amsgrad=(False, True), weight_decay=(0, 1e-2, 0.3), maximize=(False, True)),
                  [dict(lr=1e-2), dict(lr=3e-3, amsgrad=True, weight_decay=0.1),
                   dict(lr=1e-3, weight_decay=0.5, maximize=True)],
                  dict(lr=0.1, weight_decay=0.5, amsgrad=True)),
}
WORST = {}  # name -> worst short-run difference in ulps, printed at the end


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


def set_grads(pa, pb, gen, which=None):
    for i, (x, y) in enumerate(zip(pa, pb)):
        if which is not None and i not in which:
            x.grad = y.grad = None
            continue
        g = torch.randn(x.shape, generator=gen) * 0.1
        x.grad = g.clone()
        y.grad = g.clone()


def torch_keys(spec, group):
    return {k: v for k, v in group.items() if k not in spec.extras and k != "params"}


class Compare(unittest.TestCase):
    def assert_close(self, name, pa, pb, oa, ob, tol=SHORT_TOL):
        for x, y in zip(pa, pb):
            d = scaled_diff(x.detach(), y.detach())
            WORST[name] = max(WORST.get(name, 0.0), d)
            self.assertLess(d, tol, "param")
            sa, sb = oa.state.get(x, {}), ob.state.get(y, {})
            self.assertEqual(sorted(sa), sorted(sb))
            for k in sa:
                if k == "step":
                    self.assertEqual(type(sa[k]), type(sb[k]))
                    self.assertEqual(float(sa[k]), float(sb[k]))
                    if torch.is_tensor(sa[k]):
                        self.assertEqual((sa[k].shape, sa[k].dtype), (sb[k].shape, sb[k].dtype))
                elif sa[k] is None:
                    self.assertIsNone(sb[k], k)
                else:
                    d = scaled_diff(sa[k], sb[k])
                    WORST[name] = max(WORST[name], d)
                    self.assertLess(d, tol, k)


class TestDropIn(Compare):
    def test_constructor_signature_and_param_groups(self):
        for name, spec in SPECS.items():
            with self.subTest(name):
                ours = inspect.signature(spec.ours.__init__).parameters
                theirs = inspect.signature(spec.theirs.__init__).parameters
                # torch's parameters, in torch's order, kinds and defaults; then keyword-only extras.
                head = list(ours.items())[:len(theirs)]
                self.assertEqual([(n, p.kind, p.default) for n, p in theirs.items()],
                                 [(n, p.kind, p.default) for n, p in head])
                extra = list(ours.values())[len(theirs):]
                self.assertEqual({p.name for p in extra}, set(spec.extras) | {"threads"})
                self.assertTrue(all(p.kind == inspect.Parameter.KEYWORD_ONLY for p in extra))
                for kw in [spec.base] + [dict(spec.base, **o) for o in spec.options[-1:]] + [
                        dict(spec.base, foreach=True)]:
                    p = [torch.zeros(3, requires_grad=True)]
                    g1 = spec.theirs(p, **kw).param_groups[0]
                    g2 = spec.ours(p, **kw).param_groups[0]
                    self.assertEqual(torch_keys(spec, g1), torch_keys(spec, g2))
                    self.assertEqual({k: g2[k] for k in spec.extras}, spec.extras)

    def test_every_option(self):
        gen = torch.Generator().manual_seed(1)
        for name, spec in SPECS.items():
            for opt in spec.options:
                kw = dict(spec.base, **opt)
                with self.subTest(name, **opt):
                    pa, pb = twin_params([(40, 7), (7,), (3, 2, 5)])
                    oa, ob = spec.theirs(pa, **kw), spec.ours(pb, **kw)
                    for _ in range(10):
                        set_grads(pa, pb, gen)
                        oa.step()
                        ob.step()
                    self.assert_close(name, pa, pb, oa, ob)
                    sda, sdb = oa.state_dict(), ob.state_dict()
                    self.assertEqual([torch_keys(spec, g) for g in sda["param_groups"]],
                                     [torch_keys(spec, g) for g in sdb["param_groups"]])
                    self.assertEqual({k: sorted(v) for k, v in sda["state"].items()},
                                     {k: sorted(v) for k, v in sdb["state"].items()})

    def test_state_dict_moves_between_the_two(self):
        gen = torch.Generator().manual_seed(2)
        for name, spec in SPECS.items():
            kw = dict(spec.base, **spec.options[-1])
            with self.subTest(name, **kw):
                pa, pb = twin_params([(100,), (10, 10)])
                oa = spec.theirs(pa, **kw)
                for _ in range(5):
                    set_grads(pa, pb, gen)
                    oa.step()
                with torch.no_grad():
                    for x, y in zip(pa, pb):
                        y.copy_(x)
                ob = spec.ours(pb, **kw)
                ob.load_state_dict(copy.deepcopy(oa.state_dict()))  # torch -> rmsfuse
                self.assertEqual(ob.param_groups[0].get(next(iter(spec.extras))), next(iter(spec.extras.values())))
                for _ in range(5):
                    set_grads(pa, pb, gen)
                    oa.step()
                    ob.step()
                self.assert_close(name, pa, pb, oa, ob)
                back = spec.theirs(pa, **kw)
                back.load_state_dict(copy.deepcopy(ob.state_dict()))  # rmsfuse -> torch
                for x, y in zip(pa, pb):
                    for k, v in ob.state[y].items():
                        w = back.state[x][k]
                        self.assertTrue(v is None and w is None or float(v) == float(w) if k == "step"
                                        else torch.equal(v, w) if v is not None else w is None, k)
                with torch.no_grad():
                    for x, y in zip(pa, pb):
                        x.copy_(y)
                set_grads(pa, pb, gen)
                back.step()
                ob.step()
                self.assert_close(name, pa, pb, back, ob)

    def test_groups_with_different_hyperparameters_and_lr_scheduler(self):
        gen = torch.Generator().manual_seed(3)
        for name, spec in SPECS.items():
            with self.subTest(name):
                pa, pb = twin_params([(50,), (20,), (30,)])
                groups = lambda p: [{"params": p[:2]}, dict(spec.group2, params=p[2:])]  # noqa: E731
                oa, ob = spec.theirs(groups(pa), **spec.base), spec.ours(groups(pb), **spec.base)
                sa = torch.optim.lr_scheduler.StepLR(oa, step_size=3, gamma=0.5)
                sb = torch.optim.lr_scheduler.StepLR(ob, step_size=3, gamma=0.5)
                for _ in range(10):
                    set_grads(pa, pb, gen)
                    oa.step()
                    ob.step()
                    sa.step()
                    sb.step()
                self.assertEqual(ob.param_groups[1]["lr"], oa.param_groups[1]["lr"])
                self.assert_close(name, pa, pb, oa, ob)

    def test_hyperparameters_changed_after_a_step(self):
        # The drop-ins keep each group's checked config between steps (docs/python.md): a value
        # changed after a step must be seen by the next one, checked (a bad one refused, changing
        # nothing) and then used, as torch uses it.
        bad = {"RMSprop": ("alpha", -0.5), "Adagrad": ("lr_decay", -1.0), "SGD": ("dampening", 2.0),
               "Adam": ("betas", (0.9, 1.0)), "AdamW": ("eps", float("nan"))}
        gen = torch.Generator().manual_seed(8)
        for name, spec in SPECS.items():
            with self.subTest(name):
                pa, pb = twin_params([(40,), (9,)])
                oa, ob = spec.theirs(pa, **spec.base), spec.ours(pb, **spec.base)
                for k in range(6):
                    set_grads(pa, pb, gen)
                    oa.step()
                    ob.step()
                    if k == 2:
                        key, value = bad[name]
                        good = ob.param_groups[0][key]
                        ob.param_groups[0][key] = value
                        before = [p.detach().clone() for p in pb]
                        with self.assertRaises(ValueError):
                            ob.step()
                        self.assertTrue(all(torch.equal(p, q) for p, q in zip(pb, before)))
                        ob.param_groups[0][key] = good
                    if k in (1, 3):  # as a scheduler would, on both
                        for o in (oa, ob):
                            o.param_groups[0]["lr"] *= 0.3
                self.assert_close(name, pa, pb, oa, ob)

    def test_parameters_with_gradients_on_some_steps_only(self):
        # Parameters of one group at different step numbers (Adam, Adagrad) or with a momentum
        # buffer made on a later step (SGD): one call per distinct value, torch's results.
        gen = torch.Generator().manual_seed(6)
        for name, spec in SPECS.items():
            kw = dict(spec.base, **spec.group2)
            with self.subTest(name):
                pa, pb = twin_params([(30,), (20,), (10,)])
                oa, ob = spec.theirs(pa, **kw), spec.ours(pb, **kw)
                for s in range(8):
                    set_grads(pa, pb, gen, which={0} | ({1} if s >= 3 else set()) | ({2} if s % 2 else set()))
                    oa.step()
                    ob.step()
                self.assert_close(name, pa, pb, oa, ob)

    def test_closure_and_params_without_grad(self):
        for name, spec in SPECS.items():
            with self.subTest(name):
                w = torch.ones(4, requires_grad=True)
                unused = torch.ones(4, requires_grad=True)
                opt = spec.ours([w, unused], **spec.base)
                ref = spec.theirs([torch.ones(4, requires_grad=True), torch.ones(4, requires_grad=True)],
                                  **spec.base)

                def closure():
                    opt.zero_grad()
                    loss = (w * w).sum()
                    loss.backward()
                    return loss

                self.assertEqual(opt.step(closure).item(), 4.0)
                self.assertTrue(torch.all(w < 1))
                self.assertTrue(torch.equal(unused, torch.ones(4)))
                self.assertEqual(unused in opt.state, len(ref.state) == 2)  # Adagrad: state made up front

    def test_other_layouts(self):
        # Dense tensors in another memory format, laid out alike: the same bits as contiguous ones.
        gen = torch.Generator().manual_seed(4)
        base = torch.randn(2, 3, 4, 5, generator=gen)
        grad = torch.randn(2, 3, 4, 5, generator=gen)
        for name, spec in SPECS.items():
            kw = dict(spec.base, **spec.group2)
            with self.subTest(name):
                cl = base.clone().to(memory_format=torch.channels_last).requires_grad_()
                ct = base.clone().requires_grad_()
                tr = base[0, 0].clone().t().requires_grad_()  # a transposed leaf
                trc = base[0, 0].clone().t().contiguous().requires_grad_()
                cl.grad = grad.clone().to(memory_format=torch.channels_last)
                ct.grad = grad.clone()
                tr.grad = grad[0, 0].clone().t()
                trc.grad = grad[0, 0].t().contiguous()
                self.assertFalse(cl.is_contiguous() or tr.is_contiguous())
                o1, o2 = spec.ours([cl, tr], **kw), spec.ours([ct, trc], **kw)
                for _ in range(3):
                    o1.step()
                    o2.step()
                self.assertTrue(torch.equal(cl, ct))
                self.assertTrue(torch.equal(tr, trc))
                for k, v in o1.state[cl].items():
                    if torch.is_tensor(v) and v.dim() == 4:
                        self.assertTrue(v.is_contiguous(memory_format=torch.channels_last), k)

    def test_sgd_momentum_buffer_is_none_without_momentum(self):
        p = torch.ones(3, requires_grad=True)
        q = torch.ones(3, requires_grad=True)
        p.grad = torch.ones(3)
        opt = SGD([p, q], lr=0.1)
        opt.step()
        self.assertEqual(dict(opt.state), {p: {"momentum_buffer": None}})
        opt.param_groups[0]["momentum"] = 0.9  # momentum from now on: torch's first-step buffer
        ref = torch.optim.SGD([torch.full((3,), 0.9, requires_grad=True)], lr=0.1, momentum=0.9)
        ref.param_groups[0]["params"][0].grad = torch.ones(3)
        ref.step()
        opt.step()
        self.assertTrue(torch.equal(opt.state[p]["momentum_buffer"], torch.ones(3)))
        self.assertTrue(torch.equal(p, ref.param_groups[0]["params"][0]))


class TestExtras(Compare):
    """The keyword-only options beyond torch 1.13, against torch built the same way."""

    def test_rmsprop_decoupled_weight_decay_is_torch_after_scaling(self):
        gen = torch.Generator().manual_seed(7)
        for mom in (0, 0.9):
            pa, pb = twin_params([(64,), (8, 8)])
            oa = torch.optim.RMSprop(pa, lr=0.01, momentum=mom)
            ob = RMSprop(pb, lr=0.01, momentum=mom, weight_decay=0.2, decoupled_weight_decay=True)
            for _ in range(10):
                set_grads(pa, pb, gen)
                with torch.no_grad():
                    for x in pa:
                        x.mul_(1 - 0.01 * 0.2)
                oa.step()
                ob.step()
            self.assert_close("RMSprop extras", pa, pb, oa, ob)

    def test_rmsprop_nesterov_against_its_formula_in_torch(self):
        gen = torch.Generator().manual_seed(8)
        lr, alpha, eps, m = 0.01, 0.99, 1e-8, 0.9
        pa, pb = twin_params([(64,), (8, 8)])
        ob = RMSprop(pb, lr=lr, momentum=m, nesterov=True)
        v = [torch.zeros_like(x) for x in pa]
        b = [torch.zeros_like(x) for x in pa]
        for _ in range(10):
            set_grads(pa, pb, gen)
            ob.step()
            with torch.no_grad():
                for x, vi, bi in zip(pa, v, b):
                    g = x.grad
                    vi.mul_(alpha).addcmul_(g, g, value=1 - alpha)
                    q = g / (vi.sqrt() + eps)
                    bi.mul_(m).add_(q)
                    x.add_(q + m * bi, alpha=-lr)
        for x, y, bi in zip(pa, pb, b):
            self.assertLess(scaled_diff(x.detach(), y.detach()), SHORT_TOL)
            self.assertLess(scaled_diff(bi, ob.state[y]["momentum_buffer"]), SHORT_TOL)
        with self.assertRaisesRegex(ValueError, "RMSFUSE_E_NESTEROV"):
            RMSprop(pb, nesterov=True)  # needs momentum

    def test_adam_decoupled_weight_decay_is_adamw(self):
        gen = torch.Generator().manual_seed(9)
        pa, pb = twin_params([(64,), (8, 8)])
        oa = torch.optim.AdamW(pa, lr=0.01, weight_decay=0.1, amsgrad=True)
        ob = Adam(pb, lr=0.01, weight_decay=0.1, amsgrad=True, decoupled_weight_decay=True)
        for _ in range(10):
            set_grads(pa, pb, gen)
            oa.step()
            ob.step()
        self.assert_close("Adam extras", pa, pb, oa, ob)

    def test_adagrad_eps_in_sqrt_is_the_classic_formula(self):
        gen = torch.Generator().manual_seed(10)
        lr, eps, lr_decay = 0.1, 1e-3, 0.01
        pa, pb = twin_params([(64,), (8, 8)])
        ob = Adagrad(pb, lr=lr, eps=eps, lr_decay=lr_decay, eps_in_sqrt=True)
        sums = [torch.zeros_like(x) for x in pa]
        for t in range(1, 11):
            set_grads(pa, pb, gen)
            ob.step()
            with torch.no_grad():
                for x, s in zip(pa, sums):
                    s.addcmul_(x.grad, x.grad)
                    x.addcdiv_(x.grad, (s + eps).sqrt(), value=-lr / (1 + (t - 1) * lr_decay))
        for x, y, s in zip(pa, pb, sums):
            self.assertLess(scaled_diff(x.detach(), y.detach()), SHORT_TOL)
            self.assertTrue(torch.equal(s, ob.state[y]["sum"]) or scaled_diff(s, ob.state[y]["sum"]) < SHORT_TOL)

    def test_no_op_keywords_change_nothing(self):
        gen = torch.Generator().manual_seed(11)
        for spec, kw in ((SPECS["Adam"], dict(fused=True, foreach=True)), (SPECS["AdamW"], dict(fused=True)),
                         (SPECS["SGD"], dict(fused=True, foreach=False)), (SPECS["Adagrad"], dict(fused=True)),
                         (SPECS["RMSprop"], dict(foreach=True))):
            with self.subTest(spec.ours.__name__, **kw):
                pa, pb = twin_params([(30,)])
                oa = spec.ours(pa, **dict(spec.base, **spec.group2))
                ob = spec.ours(pb, **dict(spec.base, **spec.group2, **kw))
                for _ in range(3):
                    set_grads(pa, pb, gen)
                    oa.step()
                    ob.step()
                self.assertTrue(torch.equal(pa[0], pb[0]))
                for k, v in kw.items():
                    self.assertEqual(ob.param_groups[0][k], v)


class TestRefusals(unittest.TestCase):
    def assert_refused(self, spec, exc, pattern, params, **kw):
        good = torch.randn(10, requires_grad=True)
        good.grad = torch.ones(10)
        before = good.detach().clone()
        opt = spec.ours([good] + params, **dict(spec.base, **kw))
        state_before = {p: dict(s) for p, s in opt.state.items()}
        with self.assertRaisesRegex(exc, pattern):
            opt.step()
        self.assertTrue(torch.equal(good, before), "a failed step changed a parameter")
        self.assertEqual({p: sorted(s) for p, s in opt.state.items()},
                         {p: sorted(s) for p, s in state_before.items()}, "a failed step created state")
        for p, s in opt.state.items():
            self.assertEqual(float(s.get("step", 0)), 0.0, "a failed step counted a step")

    def test_unsupported_tensors(self):
        for name, spec in SPECS.items():
            with self.subTest(name):
                p = torch.zeros(5, dtype=torch.float64, requires_grad=True)
                p.grad = torch.ones(5, dtype=torch.float64)
                self.assert_refused(spec, TypeError, "float32 tensors only.*float64", [p])
                p = torch.zeros(5, dtype=torch.complex64, requires_grad=True)
                p.grad = torch.ones(5, dtype=torch.complex64)
                self.assert_refused(spec, TypeError, "float32", [p])
                p = torch.zeros(5, device="meta", requires_grad=True)
                p.grad = torch.zeros(5, device="meta")
                self.assert_refused(spec, TypeError, "CPU tensors only.*meta", [p])
                emb = torch.nn.Embedding(10, 3, sparse=True)
                emb(torch.tensor([1, 2])).sum().backward()
                self.assert_refused(spec, RuntimeError, "sparse gradients", list(emb.parameters()))
                p = torch.zeros(4, 10)[:, ::2].requires_grad_()  # strided, not dense
                p.grad = torch.ones(4, 5)
                self.assert_refused(spec, ValueError, "laid out alike and densely", [p])
                p = torch.zeros(2, 3, 4, 5).to(memory_format=torch.channels_last).requires_grad_()
                p.grad = torch.ones(2, 3, 4, 5)  # contiguous grad for a channels_last param
                self.assert_refused(spec, ValueError, "laid out alike", [p])

    def test_bad_group_changes_no_other_group(self):
        bad = {"RMSprop": ("momentum", 1.5, "RMSFUSE_E_MOMENTUM"), "Adagrad": ("lr_decay", -1.0, "RMSFUSE_E_LR_DECAY"),
               "SGD": ("dampening", 2.0, "RMSFUSE_E_DAMPENING"), "Adam": ("betas", (0.9, 1.0), "RMSFUSE_E_BETA2"),
               "AdamW": ("eps", float("inf"), "RMSFUSE_E_NONFINITE")}
        for name, spec in SPECS.items():
            key, value, pattern = bad[name]
            with self.subTest(name):
                a = torch.randn(6, requires_grad=True)
                b = torch.randn(6, requires_grad=True)
                a.grad, b.grad = torch.ones(6), torch.ones(6)
                a0 = a.detach().clone()
                opt = spec.ours([{"params": [a]}, {"params": [b]}], **dict(spec.base, **spec.group2))
                state0 = {p: sorted(s) for p, s in opt.state.items()}
                good = opt.param_groups[1][key]
                opt.param_groups[1][key] = value  # changed after construction: refused at step()
                with self.assertRaisesRegex(ValueError, f"not supported by rmsfuse.*{pattern}"):
                    opt.step()
                self.assertTrue(torch.equal(a, a0))
                self.assertEqual({p: sorted(s) for p, s in opt.state.items()}, state0)
                opt.param_groups[1][key] = good
                opt.step()
                self.assertFalse(torch.equal(a, a0))
                self.assertEqual([float(opt.state[t].get("step", 1)) for t in (a, b)], [1.0, 1.0])

    def test_overlapping_parameters(self):
        for name, spec in SPECS.items():
            with self.subTest(name):
                base = torch.zeros(20)
                a = base[:12].requires_grad_()
                b = base[8:].requires_grad_()
                a.grad, b.grad = torch.ones(12), torch.ones(12)
                opt = spec.ours([a, b], **spec.base)
                state0 = {p: sorted(s) for p, s in opt.state.items()}
                with self.assertRaisesRegex(rmsfuse.RmsfuseError, "OVERLAP"):
                    opt.step()
                self.assertTrue(torch.equal(base, torch.zeros(20)))
                self.assertEqual({p: sorted(s) for p, s in opt.state.items()}, state0)

    def test_constructor_refuses_as_torch(self):
        # torch's own checks, with torch's messages (the same ValueError text as torch's class).
        p = [torch.zeros(2, requires_grad=True)]
        torch_bad = {"RMSprop": [dict(lr=-1), dict(alpha=-1), dict(eps=-1), dict(momentum=-1), dict(weight_decay=-1)],
                     "Adagrad": [dict(lr=-1), dict(lr_decay=-1), dict(weight_decay=-1),
                                 dict(initial_accumulator_value=-1), dict(eps=-1)],
                     "SGD": [dict(lr=-1), dict(momentum=-1), dict(weight_decay=-1), dict(nesterov=True),
                             dict(nesterov=True, momentum=0.9, dampening=0.1)],
                     "Adam": [dict(lr=-1), dict(eps=-1), dict(betas=(1.0, 0.9)), dict(betas=(0.9, -0.1)),
                              dict(weight_decay=-1)],
                     "AdamW": [dict(lr=-1), dict(betas=(0.9, 1.0)), dict(weight_decay=-1)]}
        for name, spec in SPECS.items():
            for kw in torch_bad[name]:
                kw = dict(spec.base, **kw)
                with self.subTest(name, **kw):
                    with self.assertRaises(ValueError) as theirs:
                        spec.theirs(p, **kw)
                    with self.assertRaises(ValueError) as ours:
                        spec.ours(p, **kw)
                    self.assertEqual(str(ours.exception), str(theirs.exception))
        with self.assertRaisesRegex(ValueError, "didn't specify a value of required optimization parameter lr"):
            SGD(p)

    def test_constructor_refusals_beyond_torch(self):
        p = [torch.zeros(2, requires_grad=True)]
        cases = [(RMSprop, dict(alpha=1.5), "RMSFUSE_E_ALPHA"), (RMSprop, dict(momentum=1.0), "RMSFUSE_E_MOMENTUM"),
                 (RMSprop, dict(eps=float("inf")), "NONFINITE"), (Adagrad, dict(lr=1e39), "NONFINITE"),
                 (SGD, dict(lr=0.1, dampening=1.5), "RMSFUSE_E_DAMPENING"),
                 (Adam, dict(weight_decay=float("inf")), "NONFINITE")]
        for cls in (RMSprop, Adagrad, Adam):
            cases.append((cls, dict(differentiable=True), "differentiable=True is not supported"))
        cases += [(SGD, dict(lr=0.1, differentiable=True), "differentiable"),
                  (AdamW, dict(differentiable=True), "differentiable"),
                  (Adam, dict(capturable=True), "capturable=True is not supported"),
                  (AdamW, dict(capturable=True), "capturable"), (RMSprop, dict(capturable=True), "capturable")]
        for cls in (RMSprop, Adagrad, SGD, Adam, AdamW):
            cases += [(cls, dict(lr=0.1, threads=-1), "threads"), (cls, dict(lr=0.1, threads=1.5), "threads")]
        for cls, kw, pat in cases:
            with self.subTest(cls.__name__, **kw), self.assertRaisesRegex(ValueError, pat):
                cls(p, **kw)
        opt = Adam(p)
        with self.assertRaisesRegex(ValueError, "RMSFUSE_E_BETA1"):
            opt.add_param_group({"params": [torch.zeros(1, requires_grad=True)], "betas": (1.5, 0.9)})
        with self.assertRaisesRegex(ValueError, "capturable"):
            opt.add_param_group({"params": [torch.zeros(1, requires_grad=True)], "capturable": True})


@unittest.skipUnless(rmsfuse.pool_available(), "librmsfuse_pool not found")
class TestThreads(unittest.TestCase):
    def test_pool_gives_the_same_bits(self):
        gen = torch.Generator().manual_seed(5)
        shapes = [(300, 200), (17,), (40000,), (3, 3, 3, 64)]
        for name, spec in SPECS.items():
            kw = dict(spec.base, **spec.group2)
            with self.subTest(name):
                pa, pb = twin_params(shapes)
                o1 = spec.ours(pa, **kw)
                o2 = spec.ours(pb, threads=2, **kw)
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
                o1.step()
                o2.step()  # closed: back on the calling thread
                for x, y in zip(pa, pb):
                    self.assertTrue(torch.equal(x, y))


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
    def test_mlp_trains_like_torch(self):
        x, y, model = mlp_task()
        report = []
        for name, spec in SPECS.items():
            for cfg in spec.mlp:
                kw = dict(spec.base, **cfg)
                ma, mb = model(), model()
                oa, ob = spec.theirs(ma.parameters(), **kw), spec.ours(mb.parameters(), **kw)
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
                    self.assertLessEqual(rel, TRAIN_LOSS_TOL, f"{name} {kw} step {s}: loss {la.item()} vs {lb.item()}")
                    for (pname, pa), pb in zip(ma.named_parameters(), mb.parameters()):
                        d = ((pa - pb).abs().max() / pa.abs().max()).item()
                        worst_p = max(worst_p, d)
                        self.assertLessEqual(d, TRAIN_PARAM_TOL, f"{name} {kw} step {s} {pname}")
                    losses.append(la.item())
                self.assertLess(losses[-1], 0.25 * losses[0], f"{name} {kw}: the model did not train")
                report.append(f"| {name} | {', '.join(f'{k}={v}' for k, v in kw.items()) or 'defaults'} | "
                              f"{losses[0]:.4g} → {losses[-1]:.4g} | {worst_l:.1e} | {worst_p:.1e} |")
        print(f"\nMLP, {TRAIN_STEPS} steps, rmsfuse.torch vs torch.optim:\n"
              "| class | options | loss 0 → 300 | worst \\|Δloss\\|/loss | worst max\\|Δparam\\|/max\\|param\\| |\n"
              "| --- | --- | --- | --- | --- |\n" + "\n".join(report))


class TestExample(unittest.TestCase):
    def test_readme_snippet(self):
        from test_numpy import readme_snippets, run_snippet
        snippets = readme_snippets(needs_torch=True)
        self.assertEqual(len(snippets), 1)
        run_snippet(snippets[0] + "\nassert all(s['step'] == 1 for s in opt.state.values()) and len(opt.state) == 4\n")

    @unittest.skipUnless(rmsfuse.pool_available(), "librmsfuse_pool not found (the snippet uses threads=)")
    def test_docs_snippet(self):
        # docs/python.md's PyTorch snippet runs as written, and its state_dict round trip holds.
        from test_numpy import readme_snippets, run_snippet
        snippets = readme_snippets(needs_torch=True, doc="docs/python.md")
        self.assertEqual(len(snippets), 2)
        run_snippet(snippets[0] + "\nassert all(float(ref.state[p]['step']) == 10 for p in model.parameters())\n"
                    "assert [o.threads for o in others] == [None, None, None, 2]\n")
        # the loss-scaling snippet: ten steps taken, a norm reported, no overflow at 2^16
        run_snippet(snippets[1] + "\nassert opt.found_inf is False and opt.grad_norm > 0\n"
                    "assert all(float(opt.state[p]['step']) == 10 for p in model.parameters())\n"
                    "assert scaler.get_scale() == 2.0 ** 16\n")

    def test_readme_torch_example(self):
        from test_numpy import run_example
        out = run_example("python_torch.py")
        start = float(out.split("loss at the start: ")[1].split()[0])
        end = float(out.split("loss after 200 steps: ")[1].split()[0])
        self.assertLess(end, 0.01 * start, out)
        self.assertIn("state of the first weight: ['momentum_buffer', 'square_avg', 'step'], step 200", out)


def tearDownModule():
    if WORST:
        print("\nworst short-run difference, ulps of max|tensor|: "
              + ", ".join(f"{k} {v:.2f}" for k, v in sorted(WORST.items())))


if __name__ == "__main__":
    unittest.main()
