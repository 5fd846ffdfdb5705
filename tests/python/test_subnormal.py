"""RMSFUSE_FLUSH_SUBNORMAL through the binding and the drop-ins: what the flag changes, and what not.

Run: /usr/bin/python3 tests/python/run.py test_subnormal   (ctest: python_subnormal)

docs/math.md ("Subnormal-safe state"): with the flag, every state value below
FLT_MIN (2^-126, 1.18e-38) becomes +0 as it is computed (that value is stored
and used by the rest of the step); NaN and +-Inf are unchanged; gradients and
parameters are never flushed.  It argues that the parameters keep their bits
for eps >= 2^-39 (1.8e-12) and parameters above about 1e-30, and that eps = 0
gives NaN where the gradient and the state are zero.  This module checks that
evidence for the default of the drop-ins (flush_subnormal=True), with the flag
on and off side by side from the same inputs:

* TestOneStep: one step of every rule from the same random inputs (state
  spread over normal, subnormal, +-0, NaN and +-Inf values): the state with the
  flag is the state without it, flushed; the parameters are bit-identical;
  centred RMSProp with tiny gradients (its flushed s = v - ga*ga).
* TestTraining: the MLP of test_torch with each drop-in, dense (test_torch's
  configurations, 300 steps), and pruned (100 dense steps, then 1000 steps with
  a fixed half of every tensor's gradient entries exactly zero, decay 0.9 so
  that the state reaches the subnormal range within the run).  At every step
  the parameters are bit-identical and each state element is either
  bit-identical or +0 with the flag where it is below FLT_MIN without it; the
  pruned runs must actually have subnormal state without the flag (and none
  with it) for every class whose state decays.  The table printed at the end is
  the one in docs/python.md.
* TestEpsZero: eps = 0 is where the flag changes the parameters: NaN.
"""

import unittest

import numpy as np
import torch

import rmsfuse
from rmsfuse.torch import RMSprop, Adagrad, SGD, Adam, AdamW
from test_torch import mlp_task

FLT_MIN = np.finfo(np.float32).tiny  # 2^-126
DENSE_STEPS = 300
PRUNE_AFTER, PRUNED_STEPS, PRUNED_SHARE = 100, 1000, 0.5
REPORT = []
NAN_FIXED = []  # (rule, flags, elements whose parameter is NaN without the flag only, elements)


def bits(t):
    """The bit patterns of a float32 tensor or array (so -0 != +0 and NaN == the same NaN)."""
    if torch.is_tensor(t):
        return t.detach().contiguous().view(torch.int32)
    return np.asarray(t, dtype=np.float32).view(np.uint32)


def flushed(x):
    """docs/math.md's flush: +0 where |x| < FLT_MIN (zero or subnormal, -0 included), x elsewhere."""
    x = np.asarray(x, dtype=np.float32)
    return np.where(np.abs(x) < FLT_MIN, np.float32(0.0), x).astype(np.float32)


# ---- one step of every rule ------------------------------------------------------------
RULES = {  # config class, hyperparameters (eps >= 1e-8, as every preset's), flag sets to try
    "rmsprop": (rmsfuse.Config, dict(lr=0.01, alpha=0.9, eps=1e-8, momentum=0.9),
                [{}, dict(centered=True), dict(centered=True, lr_in_momentum=True, eps_in_sqrt=True),
                 dict(nesterov=True, weight_decay=0.01, decoupled_decay=True)]),
    "adagrad": (rmsfuse.AdagradConfig, dict(lr=0.05, eps=1e-10, step=3), [{}, dict(eps_in_sqrt=True)]),
    "sgd": (rmsfuse.SGDConfig, dict(lr=0.05, momentum=0.9),
            [{}, dict(dampening=0.1), dict(nesterov=True), dict(lr_in_momentum=True, nesterov=True)]),
    "adam": (rmsfuse.AdamConfig, dict(lr=0.01, beta1=0.9, beta2=0.9, eps=1e-8, step=7),
             [{}, dict(amsgrad=True), dict(eps_hat=True, weight_decay=0.01, decoupled_decay=True)]),
}


def special_arrays(rule, n, seed):
    """The rule's arrays: param ~ N(0, 1) with some subnormal and zero params, gradients with
    exact zeros (+0 and -0), subnormals and normals, and state spread over the whole float32
    range: normal, near FLT_MIN, subnormal, +-0, and a few NaN and +-Inf."""
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(n).astype(np.float32)
    p[:8] = np.float32(3e-39)  # subnormal parameters with zero gradients and state: never flushed
    p[8:12] = 0.0
    g = (rng.standard_normal(n) * 10.0 ** rng.integers(-3, 1, n)).astype(np.float32)
    g[rng.random(n) < 0.4] = 0.0
    g[rng.random(n) < 0.05] = -0.0
    g[rng.random(n) < 0.05] = np.float32(1e-40)  # subnormal gradients: never flushed
    g[:12] = 0.0
    out = {"param": p, "grad": g}
    for name in rmsfuse.ARRAYS[rule][2:]:
        exp = rng.integers(-155, 5, n).astype(np.float64)  # 2^-155 .. 2^4: subnormal and 0 included
        s = (rng.random(n) + 0.5) * 2.0 ** exp
        if name in ("momentum_buf", "exp_avg", "grad_avg"):
            s *= rng.choice([-1.0, 1.0], n)
        s = s.astype(np.float32)
        s[:12] = 0.0
        k = 12 + rng.permutation(n - 12)[:6]
        s[k] = [np.nan, np.inf, -np.inf if name in ("momentum_buf", "exp_avg", "grad_avg") else np.inf,
                0.0, -0.0, FLT_MIN]
        if name == "grad_avg":  # centred: s = v - ga^2 >= 0 needs |ga| <= sqrt(v)
            s = np.where(np.abs(s) ** 2 <= out["square_avg"], s, 0.0).astype(np.float32)
        if name == "max_exp_avg_sq":
            s = np.maximum(s, out["exp_avg_sq"]).astype(np.float32)
        out[name] = s
    return out


class TestOneStep(unittest.TestCase):
    def test_state_is_the_unflushed_state_flushed_and_params_keep_their_bits(self):
        for rule, (cls, hp, flag_sets) in RULES.items():
            for k, flags in enumerate(flag_sets):
                off = cls(**hp, **flags)
                on = off.replace(flush_subnormal=True)
                self.assertEqual(on.flags, off.flags | rmsfuse.FLUSH_SUBNORMAL)
                n = 4099
                a = special_arrays(rule, n, seed=k)
                b = {name: x.copy() for name, x in a.items()}
                g0, p0 = a["grad"].copy(), a["param"].copy()
                with np.errstate(all="ignore"):
                    rmsfuse.step(off, **a)
                    rmsfuse.step(on, **b)
                with self.subTest(rule=rule, **flags):
                    np.testing.assert_array_equal(bits(a["grad"]), bits(g0))  # read only
                    np.testing.assert_array_equal(bits(b["grad"]), bits(g0))
                    # Centred RMSProp: elements where the exact s = v - ga*ga rounds below 0 give NaN
                    # without the flag and are finite with it (s is flushed to +0): that is all.
                    dev = np.zeros(n, bool)
                    if rule == "rmsprop" and off.centered and not off.eps_in_sqrt:
                        dev = np.isnan(a["param"]) & ~np.isnan(b["param"])
                        with np.errstate(all="ignore"):
                            s_off = a["square_avg"] - a["grad_avg"] * a["grad_avg"]
                        self.assertTrue(np.all(s_off[dev] < 0), "NaN without the flag for another reason")
                        NAN_FIXED.append((rule, flags, int(dev.sum()), n))
                    for name in rmsfuse.ARRAYS[rule][2:]:
                        if (name == "grad_avg" and not off.centered) or (name == "max_exp_avg_sq" and not off.amsgrad):
                            continue
                        x, y = a[name][~dev], b[name][~dev]  # (dev: the momentum buffer is NaN without)
                        np.testing.assert_array_equal(bits(y), bits(flushed(x)), name)
                        small = np.abs(x) < FLT_MIN
                        self.assertGreater(np.count_nonzero(small & (x != 0)), 0, f"{name}: no subnormal case")
                        self.assertTrue(np.all(bits(y[small]) == 0), f"{name}: not +0 where flushed")
                    # The parameters: the same bits where |param| >= 2^-100 (docs/math.md: a
                    # flushed momentum term changes only smaller ones; here p = 0 with a subnormal
                    # gradient differs).  Subnormal parameters (zero gradient) are never flushed.
                    keep = ~dev & ((np.abs(p0) >= 2.0 ** -100) | (np.arange(n) < 8))
                    np.testing.assert_array_equal(bits(b["param"][keep]), bits(a["param"][keep]))
                    self.assertGreater(np.count_nonzero(keep), 0.99 * n)
                    self.assertTrue(np.all((np.abs(b["param"][:8]) > 0) & (np.abs(b["param"][:8]) < FLT_MIN)))

    def test_flag_off_keeps_subnormal_state(self):
        # Without the flag the state is exact IEEE: a decaying state value goes subnormal and stays.
        for flush in (False, True):
            cfg = rmsfuse.Config(lr=0.01, alpha=0.9, flush_subnormal=flush)
            p, g, v = np.ones(4, np.float32), np.zeros(4, np.float32), np.full(4, 1e-30, np.float32)
            for _ in range(200):
                rmsfuse.step(cfg, p, g, v)
            if flush:
                np.testing.assert_array_equal(bits(v), np.zeros(4, np.uint32))
            else:
                self.assertTrue(np.all((v > 0) & (v < FLT_MIN)), v)
            np.testing.assert_array_equal(p, np.ones(4, np.float32))


    def test_centred_rmsprop_tiny_gradients(self):
        # Centred RMSProp flushes s = v - ga*ga too (docs/math.md).  For a gradient with c*g^2 < FLT_MIN
        # but |c*g| >= 2^-75 (about 2.6e-21 <= |g| < 1.1e-18 at alpha 0.99) on an element with no
        # history, v = c*g^2 is flushed to 0 while ga = c*g stays normal; s = -(c*g)^2 would be a tiny
        # negative number and d = sqrt(s) + eps NaN.  Flushed, s is +0 and the parameter keeps the bits
        # of the exact step (whose s = c(1-c)g^2 is a subnormal that vanishes beside eps).  This test
        # found the NaN before the library flushed s.
        g = np.array([1e-18, -1e-19, 1e-20, 3e-21, 1e-21, 1e-17, 0.0], np.float32)
        for eps_in_sqrt in (False, True):
            out = {}
            for flush in (False, True):
                cfg = rmsfuse.Config(lr=0.01, alpha=0.99, centered=True, eps_in_sqrt=eps_in_sqrt,
                                     flush_subnormal=flush)
                p, v, ga = np.ones(7, np.float32), np.zeros(7, np.float32), np.zeros(7, np.float32)
                rmsfuse.step(cfg, p, g, v, None, ga)
                out[flush] = (p, v, ga)
            with self.subTest(eps_in_sqrt=eps_in_sqrt):
                (p0, v0, ga0), (p1, v1, ga1) = out[False], out[True]
                self.assertTrue(np.all(np.isfinite(p1)), p1)
                np.testing.assert_array_equal(bits(p1), bits(p0))
                np.testing.assert_array_equal(bits(v1), bits(flushed(v0)))
                np.testing.assert_array_equal(bits(ga1), bits(ga0))  # ga is normal: kept
                self.assertTrue(np.all(v1[:4] == 0) and np.all(np.abs(ga1[:4]) >= 2.0 ** -75))


# ---- training ------------------------------------------------------------------------------
CLASSES = {"RMSprop": (RMSprop, torch.optim.RMSprop), "Adagrad": (Adagrad, torch.optim.Adagrad),
           "SGD": (SGD, torch.optim.SGD), "Adam": (Adam, torch.optim.Adam), "AdamW": (AdamW, torch.optim.AdamW)}
# test_torch's MLP configurations (the torch-side agreement is tested there).
DENSE = {
    "RMSprop": [dict(), dict(momentum=0.9, centered=True), dict(lr=1e-3, weight_decay=1e-3, momentum=0.5),
                dict(lr=3e-3, alpha=0.9, eps=1e-6, centered=True, maximize=True)],
    "Adagrad": [dict(lr=0.05), dict(lr=0.05, lr_decay=1e-3, weight_decay=1e-4, initial_accumulator_value=0.1)],
    "SGD": [dict(lr=0.01, momentum=0.9), dict(lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4)],
    "Adam": [dict(lr=1e-2), dict(lr=3e-3, amsgrad=True, weight_decay=1e-3)],
    "AdamW": [dict(lr=1e-2), dict(lr=1e-3, weight_decay=0.5, maximize=True)],
}
# Pruned: decaying state with decay 0.9, so that a state value of ~1e-2 falls below FLT_MIN
# after ~800 zero-gradient steps (torch's 0.99 and 0.999 would take ~8,000 and ~80,000).
# No coupled weight decay: it would make the pruned gradients non-zero.
PRUNED = {
    "RMSprop": [dict(lr=1e-3, alpha=0.9), dict(lr=1e-3, alpha=0.9, momentum=0.9, centered=True)],
    "Adagrad": [dict(lr=0.05)],
    "SGD": [dict(lr=0.01, momentum=0.9), dict(lr=0.01, momentum=0.9, nesterov=True)],
    "Adam": [dict(lr=1e-3, betas=(0.9, 0.9))],
    "AdamW": [dict(lr=1e-3, betas=(0.9, 0.9), weight_decay=0.01, amsgrad=True)],
}


def state_tensors(opt, params):
    return [(i, k, v) for i, p in enumerate(params) for k, v in sorted(opt.state[p].items())
            if torch.is_tensor(v) and v.dim() > 0]


class TestTraining(unittest.TestCase):
    def train_pair(self, name, kw, steps, masks=None, prune_after=None):
        """Trains two copies of the MLP with the drop-in, flush_subnormal True and False; checks
        every step; returns the report's row values."""
        x, y, model = mlp_task()
        ours, _ = CLASSES[name]
        m_on, m_off = model(), model()
        p_on, p_off = list(m_on.parameters()), list(m_off.parameters())
        o_on = ours(p_on, **kw)  # the default: flush_subnormal=True
        o_off = ours(p_off, flush_subnormal=False, **kw)
        self.assertEqual((o_on.param_groups[0]["flush_subnormal"], o_off.param_groups[0]["flush_subnormal"]),
                         (True, False))
        sign = -1.0 if kw.get("maximize") else 1.0
        differ = 0
        for s in range(steps):
            i = (s * 128) % len(x)
            xb, yb = x[i:i + 128], y[i:i + 128]
            for m, o, ps in ((m_on, o_on, p_on), (m_off, o_off, p_off)):
                o.zero_grad()
                (sign * ((m(xb) - yb) ** 2).mean()).backward()
                if masks is not None and s >= prune_after:
                    for p, keep in zip(ps, masks):
                        p.grad.masked_fill_(~keep, 0.0)  # exactly +0
            o_on.step()
            o_off.step()
            for j, (a, b) in enumerate(zip(p_on, p_off)):
                self.assertTrue(torch.equal(bits(a), bits(b)), f"{name} {kw} step {s}: param {j} differs")
            at_step = 0
            for (j, k, a), (_, _, b) in zip(state_tensors(o_on, p_on), state_tensors(o_off, p_off)):
                d = bits(a) != bits(b)
                if d.any():
                    # Only where the unflushed state is below FLT_MIN, and there the flushed one is +0.
                    self.assertTrue(bool((b[d].abs() < FLT_MIN).all()), f"{name} {kw} step {s}: {k} of {j}")
                    self.assertTrue(bool((bits(a)[d] == 0).all()), f"{name} {kw} step {s}: {k} of {j}")
                    at_step += int(d.sum())
            differ = max(differ, at_step)
        states = [(a, b) for (_, _, a), (_, _, b) in zip(state_tensors(o_on, p_on), state_tensors(o_off, p_off))]
        total = sum(a.numel() for a, _ in states)
        sub_off = sum(int(((b != 0) & (b.abs() < FLT_MIN)).sum()) for _, b in states)
        sub_on = sum(int(((a != 0) & (a.abs() < FLT_MIN)).sum()) for a, _ in states)
        zero_on = sum(int((a == 0).sum()) for a, _ in states)
        zero_off = sum(int((b == 0).sum()) for _, b in states)
        self.assertEqual(sub_on, 0, f"{name} {kw}: subnormal state with the flag")
        return total, sub_off, zero_off, zero_on, differ

    def test_dense_mlp_is_bit_identical(self):
        for name, configs in DENSE.items():
            for kw in configs:
                with self.subTest(name, **kw):
                    total, sub_off, zero_off, zero_on, differ = self.train_pair(name, kw, DENSE_STEPS)
                    REPORT.append((name, kw, f"dense, {DENSE_STEPS} steps", total, sub_off, zero_off, zero_on,
                                   differ))
        self.assertTrue(all(r[4] == 0 and r[7] == 0 for r in REPORT if r[2].startswith("dense")))

    def test_pruned_mlp_params_bit_identical_state_flushed_only_below_flt_min(self):
        gen = torch.Generator().manual_seed(5)
        _, _, model = mlp_task()
        masks = [torch.rand(p.shape, generator=gen) >= PRUNED_SHARE for p in model().parameters()]
        steps = PRUNE_AFTER + PRUNED_STEPS
        for name, configs in PRUNED.items():
            for kw in configs:
                with self.subTest(name, **kw):
                    total, sub_off, zero_off, zero_on, differ = self.train_pair(name, kw, steps, masks, PRUNE_AFTER)
                    if name != "Adagrad":  # AdaGrad's sum never decays: nothing to flush
                        self.assertGreater(sub_off, 0.2 * total, f"{name} {kw}: the state did not go subnormal")
                        self.assertEqual(zero_on, zero_off + sub_off)
                    masked = sum(int((~m).sum()) for m in masks)
                    REPORT.append((name, kw, f"{masked} of {sum(m.numel() for m in masks)} gradient entries 0 "
                                   f"after step {PRUNE_AFTER}, {steps} steps", total, sub_off, zero_off, zero_on,
                                   differ))


# ---- eps = 0 ---------------------------------------------------------------------------------
class TestEpsZero(unittest.TestCase):
    def run_rmsprop(self, cls, alpha, steps, **kw):
        """A parameter with gradient 1e-15 on step 1, then exactly 0: returns (param, square_avg) per step."""
        p = torch.ones(4, requires_grad=True)
        opt = cls([p], lr=0.01, alpha=alpha, eps=0.0, **kw)
        out = []
        for s in range(steps):
            p.grad = torch.full((4,), 1e-15 if s == 0 else 0.0)
            opt.step()
            out.append((p.detach().clone(), opt.state[p]["square_avg"].clone()))
        return out

    def test_eps_zero_gives_nan_once_the_state_is_flushed(self):
        # alpha = 0.9: v = 1e-31 after step 1 decays below FLT_MIN after ~150 steps.  Without the
        # flag (and in torch) v stays subnormal, d = sqrt(v) > 0 and the update 0/d is 0; with it,
        # v becomes 0, d = 0, and the update 0/0 is NaN.
        off = self.run_rmsprop(RMSprop, 0.9, 300, flush_subnormal=False)
        on = self.run_rmsprop(RMSprop, 0.9, 300)
        ref = self.run_rmsprop(torch.optim.RMSprop, 0.9, 300)
        first = next(s for s, (_, v) in enumerate(off) if float(v[0]) < FLT_MIN)
        self.assertTrue(100 < first < 300, first)
        for s in range(300):
            (p_on, v_on), (p_off, v_off), (p_ref, v_ref) = on[s], off[s], ref[s]
            self.assertTrue(torch.isfinite(p_off).all() and torch.isfinite(p_ref).all(), s)
            if s < first:
                self.assertTrue(torch.equal(bits(p_on), bits(p_off)) and torch.equal(bits(v_on), bits(v_off)), s)
            else:
                self.assertTrue(torch.isnan(p_on).all(), s)  # NaN from the first flushed step on
                self.assertTrue(torch.equal(bits(v_on), torch.zeros(4, dtype=torch.int32)), s)
                self.assertTrue(bool(((v_off > 0) & (v_off < FLT_MIN)).all()), s)
                self.assertTrue(bool(((v_ref > 0) & (v_ref < FLT_MIN)).all()), s)

    def test_eps_zero_nan_without_the_flag_where_the_state_is_zero(self):
        # The same NaN without the flag, and in torch, where v is exactly 0: a zero gradient on
        # the first step, or alpha <= 0.5, where v underflows to 0 (0.5 * 2^-149 rounds to 0).
        for cls, kw in ((torch.optim.RMSprop, {}), (RMSprop, dict(flush_subnormal=False)), (RMSprop, {})):
            p = torch.ones(2, requires_grad=True)
            p.grad = torch.zeros(2)
            cls([p], lr=0.01, eps=0.0, **kw).step()
            self.assertTrue(torch.isnan(p).all(), (cls, kw))
        off = self.run_rmsprop(RMSprop, 0.5, 200, flush_subnormal=False)
        ref = self.run_rmsprop(torch.optim.RMSprop, 0.5, 200)
        for run in (off, ref):
            nan = [s for s, (p, _) in enumerate(run) if torch.isnan(p).all()]
            self.assertTrue(nan and nan[0] > 20 and nan == list(range(nan[0], 200)), nan[:3])
            self.assertEqual(float(run[nan[0]][1][0]), 0.0)


def tearDownModule():
    if NAN_FIXED:
        print("\none step from special inputs, centred RMSProp (eps outside the sqrt): parameters NaN without "
              "the flag only: " + "; ".join(f"{r} {f}: {k} of {n}" for r, f, k, n in NAN_FIXED))
    if REPORT:
        lines = ["", "flush_subnormal=True vs False, the MLP of test_torch (parameters bit-identical at every step):",
                 "| class | options | run | state elements | subnormal without the flag (end) | zero without "
                 "| zero with | most state elements differing at a step |",
                 "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, kw, run, total, sub_off, zero_off, zero_on, differ in REPORT:
            opts = ", ".join(f"{k}={v}" for k, v in kw.items()) or "defaults"
            lines.append(f"| {name} | {opts} | {run} | {total} | {sub_off} | {zero_off} | {zero_on} | {differ} |")
        print("\n".join(lines))


if __name__ == "__main__":
    unittest.main()
