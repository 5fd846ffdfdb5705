"""The NumPy binding (python/rmsfuse): results, errors, ISA control, multi-tensor, pool.

Run: /usr/bin/python3 tests/python/run.py test_numpy   (ctest: python_numpy)
"""

import ctypes
import ctypes.util
import itertools
import os
import subprocess
import sys
import unittest

import numpy as np

import rmsfuse
from reference import (emulate_f32, emulate_rule, refusal, variants, variant_name, CENTERED, EPS_IN_SQRT,
                       LR_IN_MOMENTUM, MAXIMIZE)

HP = {"lr": 0.01, "alpha": 0.9, "eps": 1e-6, "weight_decay": 0.03, "momentum": 0.8}


def cfg_for(flags, wd, mom, **kw):
    hp = dict(HP, **kw)
    return rmsfuse.Config(lr=hp["lr"], alpha=hp["alpha"], eps=hp["eps"],
                          weight_decay=hp["weight_decay"] if wd else 0.0, momentum=hp["momentum"] if mom else 0.0,
                          centered=bool(flags & CENTERED), eps_in_sqrt=bool(flags & EPS_IN_SQRT),
                          lr_in_momentum=bool(flags & LR_IN_MOMENTUM), maximize=bool(flags & MAXIMIZE))


def hp_tuple(cfg):
    return (cfg.lr, cfg.alpha, cfg.eps, cfg.weight_decay, cfg.momentum)


def make_state(n, seed):
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(n).astype(np.float32)
    g = (rng.standard_normal(n) * 2.0 ** rng.integers(-12, 3, n)).astype(np.float32)
    ga = (rng.standard_normal(n) * 0.1 * np.abs(g)).astype(np.float32)
    v = (ga.astype(np.float64) ** 2 * 1.5 + np.abs(g) ** 2 * rng.random(n)).astype(np.float32)
    b = (rng.standard_normal(n) * 0.01).astype(np.float32)
    return [p, g, v, b, ga]


def bits(a):
    return np.asarray(a, dtype=np.float32).view(np.uint32)


class TestStep(unittest.TestCase):
    def test_every_variant_matches_float32_emulation_bit_for_bit(self):
        # The whole contract through the binding: 64 variants, odd sizes, 3 steps each.
        for k, (flags, wd, mom) in enumerate(variants()):
            cfg = cfg_for(flags, wd, mom)
            p, g, v, b, ga = make_state(257 + k, seed=k)
            ep, ev, eb, ega = p.copy(), v.copy(), b.copy(), ga.copy()
            for s in range(3):
                rmsfuse.step(cfg, p, g, v, b, ga)
                ep, ev, eb, ega = emulate_f32(hp_tuple(cfg), cfg.flags, ep, g, ev, eb, ega)
                for name, got, want in (("param", p, ep), ("square_avg", v, ev), ("momentum_buf", b, eb),
                                        ("grad_avg", ga, ega)):
                    with self.subTest(variant=variant_name(flags, wd, mom), step=s, array=name):
                        np.testing.assert_array_equal(bits(got), bits(want))

    def test_presets_are_the_libraries(self):
        fl = rmsfuse.FLUSH_SUBNORMAL  # every preset sets it (docs/math.md)
        t = rmsfuse.Config.pytorch(0.05)
        self.assertEqual((t.lr, t.alpha, t.eps, t.weight_decay, t.momentum, t.flags), (0.05, 0.99, 1e-8, 0, 0, fl))
        tf = rmsfuse.Config.tensorflow(1e-3)
        self.assertEqual((tf.alpha, tf.eps, tf.flags), (0.9, 1e-10, EPS_IN_SQRT | LR_IN_MOMENTUM | fl))
        k = rmsfuse.Config.keras()
        self.assertEqual((k.lr, k.alpha, k.eps, k.flags), (1e-3, 0.9, 1e-7, EPS_IN_SQRT | LR_IN_MOMENTUM | fl))
        # Config()'s hyperparameters are torch's; built by hand, flush_subnormal is off (flags 0, as in C)
        self.assertEqual(rmsfuse.Config(flush_subnormal=True), rmsfuse.Config.pytorch())
        self.assertEqual(rmsfuse.Config().flags, 0)
        self.assertIn("lr=0.05", repr(t))

    def test_any_shape_and_empty(self):
        cfg = rmsfuse.Config.pytorch()
        p, g, v, _, _ = make_state(60, 1)
        p2, g2, v2 = (x.reshape(3, 4, 5).copy() for x in (p, g, v))
        rmsfuse.step(cfg, p, g, v)
        rmsfuse.step(cfg, p2, g2, v2)
        np.testing.assert_array_equal(bits(p2.ravel()), bits(p))
        e = np.zeros(0, np.float32)
        rmsfuse.step(cfg, e, e.copy(), e.copy())  # n == 0: a no-op
        with self.assertRaises(rmsfuse.RmsfuseError):  # ... but the configuration is still checked
            rmsfuse.step(rmsfuse.Config(alpha=2.0), e, e.copy(), e.copy())

    def test_check_reports_without_writing(self):
        p, g, v, _, _ = make_state(10, 2)
        p0 = p.copy()
        self.assertEqual(rmsfuse.check(rmsfuse.Config(), p, g, v), rmsfuse.OK)
        self.assertEqual(rmsfuse.check(rmsfuse.Config(momentum=0.9), p, g, v), rmsfuse.E_NULL_MOMENTUM_BUF)
        np.testing.assert_array_equal(p, p0)


class TestErrors(unittest.TestCase):
    """Every bad call raises a clear exception and changes nothing."""

    def setUp(self):
        self.arrays = make_state(33, 7)
        self.before = [a.copy() for a in self.arrays]

    def assert_unchanged(self):
        for a, b in zip(self.arrays, self.before):
            np.testing.assert_array_equal(bits(a), bits(b))

    def expect(self, exc, pattern, cfg, *arrays):
        with self.assertRaisesRegex(exc, pattern):
            rmsfuse.step(cfg, *arrays)
        self.assert_unchanged()

    def test_binding_checks(self):
        p, g, v, b, ga = self.arrays
        cfg = rmsfuse.Config(momentum=0.9, centered=True)
        self.expect(TypeError, "grad must have dtype float32", cfg, p, g.astype(np.float64), v, b, ga)
        self.expect(TypeError, "param must have dtype float32", cfg, p.astype(np.float16), g, v, b, ga)
        self.expect(TypeError, "byte order|float32", cfg, p, g.astype(">f4"), v, b, ga)
        self.expect(TypeError, "square_avg must be a numpy.ndarray, not list", cfg, p, g, list(v), b, ga)
        self.expect(ValueError, "grad has shape \\(32,\\)", cfg, p, g[:32].copy(), v, b, ga)
        self.expect(ValueError, "grad_avg has shape \\(3, 11\\)", cfg, p, g, v, b, ga.reshape(3, 11))
        big = np.zeros(66, np.float32)
        self.expect(ValueError, "momentum_buf is not C-contiguous", cfg, p, g, v, big[::2], ga)
        ro = v.copy()
        ro.flags.writeable = False
        self.expect(ValueError, "square_avg is read-only", cfg, p, g, ro, b, ga)
        raw = np.zeros(33 * 4 + 1, np.uint8)[1:].view(np.float32)
        self.expect(ValueError, "not aligned", cfg, p, g, v, b, raw)
        self.expect(TypeError, "rmsfuse.Config", {"lr": 0.1}, p, g, v, b, ga)

    def test_read_only_grad_is_fine(self):
        p, g, v, b, ga = self.arrays
        g.flags.writeable = False  # grad is only read
        rmsfuse.step(rmsfuse.Config(), p, g, v)
        self.assertFalse(np.array_equal(p, self.before[0]))

    def test_library_checks(self):
        p, g, v, b, ga = self.arrays
        E = rmsfuse.RmsfuseError
        self.expect(E, "RMSFUSE_E_ALPHA", rmsfuse.Config(alpha=1.5), p, g, v)
        self.expect(E, "RMSFUSE_E_MOMENTUM", rmsfuse.Config(momentum=1.0), p, g, v, b)
        self.expect(E, "RMSFUSE_E_LR", rmsfuse.Config(lr=-1.0), p, g, v)
        self.expect(E, "RMSFUSE_E_NONFINITE", rmsfuse.Config(eps=float("nan")), p, g, v)
        self.expect(E, "RMSFUSE_E_NONFINITE", rmsfuse.Config(lr=1e39), p, g, v)
        self.expect(E, "RMSFUSE_E_NULL_MOMENTUM_BUF", rmsfuse.Config(momentum=0.5), p, g, v)
        self.expect(E, "RMSFUSE_E_NULL_GRAD_AVG", rmsfuse.Config(centered=True), p, g, v)
        self.expect(E, "RMSFUSE_E_OVERLAP", rmsfuse.Config(), p, g, p)
        whole = np.concatenate([p, v])
        self.before.append(whole.copy())
        self.arrays.append(whole)
        self.expect(E, "RMSFUSE_E_OVERLAP", rmsfuse.Config(), whole[:33], g, whole[32:65])
        with self.assertRaises(ValueError):  # RmsfuseError is a ValueError
            rmsfuse.step(rmsfuse.Config(alpha=-0.1), p, g, v)
        try:
            rmsfuse.step(rmsfuse.Config(weight_decay=-1.0), p, g, v)
        except rmsfuse.RmsfuseError as e:
            self.assertEqual((e.status, e.name), (rmsfuse.E_WEIGHT_DECAY, "RMSFUSE_E_WEIGHT_DECAY"))
        self.assert_unchanged()

    def test_unused_state_is_ignored(self):
        p, g, v, b, ga = self.arrays
        # Without momentum/centring these are not touched, nor checked (as in C).
        rmsfuse.step(rmsfuse.Config(), p, g, v, "not an array", b.astype(np.float64))
        np.testing.assert_array_equal(b, self.before[3])


class TestMulti(unittest.TestCase):
    def test_same_bits_as_single_steps(self):
        for flags, wd, mom in variants()[::5]:
            cfg = cfg_for(flags, wd, mom)
            sizes = [1, 7, 64, 1000, 0, 33]
            one = [make_state(n, 100 + i) for i, n in enumerate(sizes)]
            many = [[a.copy() for a in t] for t in one]
            for t in one:
                rmsfuse.step(cfg, *t)
            rmsfuse.step_multi(cfg, [tuple(t) for t in many])
            for t1, t2 in zip(one, many):
                for x, y in zip(t1, t2):
                    np.testing.assert_array_equal(bits(x), bits(y))

    def test_shared_gradient_and_short_tuples(self):
        g = np.full(8, 0.5, np.float32)
        ts = [(np.ones(8, np.float32), g, np.zeros(8, np.float32)) for _ in range(3)]
        rmsfuse.step_multi(rmsfuse.Config(), ts)  # gradients may be shared: read only
        for t in ts:
            np.testing.assert_array_equal(t[0], ts[0][0])
        rmsfuse.step_multi(rmsfuse.Config(), [])

    def test_bad_entry_anywhere_changes_nothing(self):
        cfg = rmsfuse.Config(momentum=0.9)
        ts = [make_state(50, i)[:4] for i in range(70)]  # > 64 tensors: the sorting overlap check
        before = [[a.copy() for a in t] for t in ts]
        for bad, exc, pat in (
                (lambda t: t.__setitem__(69, (t[69][0], t[69][1], t[69][2])), rmsfuse.RmsfuseError,
                 "NULL_MOMENTUM_BUF"),
                (lambda t: t.__setitem__(40, (t[40][0], t[40][1].astype(np.float64), t[40][2], t[40][3])), TypeError,
                 "tensors\\[40\\].grad"),
                (lambda t: t.__setitem__(68, (t[68][0], t[68][1], t[3][2], t[68][3])), rmsfuse.RmsfuseError,
                 "OVERLAP"),
                (lambda t: t.__setitem__(1, t[1][0]), TypeError, "tensors\\[1\\] must be a tuple")):
            lst = [tuple(t) for t in ts]
            bad(lst)
            with self.assertRaisesRegex(exc, pat):
                rmsfuse.step_multi(cfg, lst)
            for t, b in zip(ts, before):
                for x, y in zip(t, b):
                    np.testing.assert_array_equal(bits(x), bits(y))


# ---- every rule ------------------------------------------------------------------------
# (config class, base hyperparameters, values each toggled hyperparameter takes)
RULE_CASES = {
    "rmsprop": (rmsfuse.Config, dict(lr=0.01, alpha=0.9, eps=1e-6), dict(weight_decay=(0, 0.03), momentum=(0, 0.8))),
    "adagrad": (rmsfuse.AdagradConfig, dict(lr=0.05, eps=1e-6), dict(weight_decay=(0, 0.03), lr_decay=(0, 0.1))),
    "sgd": (rmsfuse.SGDConfig, dict(lr=0.05), dict(weight_decay=(0, 0.03), momentum=(0, 0.8), dampening=(0, 0.1))),
    "adam": (rmsfuse.AdamConfig, dict(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6), dict(weight_decay=(0, 0.03))),
}
STEP_FIELD = {"adagrad", "adam"}


def rule_configs(rule):
    """Every valid configuration of the rule's flag combinations and toggled hyperparameters."""
    cls, base, toggles = RULE_CASES[rule]
    mask = rmsfuse._RULES[rule].flag_mask
    bits = [1 << i for i in range(32) if mask >> i & 1]
    out = []
    for k in range(1 << len(bits)):
        flags = sum(b for i, b in enumerate(bits) if k >> i & 1)
        for values in itertools.product(*toggles.values()):
            cfg = cls(**base, **dict(zip(toggles, values)))
            cfg.flags = flags
            status = rmsfuse.check_multi(cfg, [])
            # The library refuses exactly what docs/math.md (the oracle's refusal()) refuses.
            assert rmsfuse.status_name(status) == (refusal(cfg) or "RMSFUSE_OK"), (cfg, status, refusal(cfg))
            if status == rmsfuse.OK:
                out.append(cfg)
    return out


def rule_arrays(rule, n, seed):
    """{name: float32 array} of the rule's arrays, states in their valid ranges."""
    rng = np.random.default_rng(seed)
    g = (rng.standard_normal(n) * 2.0 ** rng.integers(-12, 3, n)).astype(np.float32)
    out = {"param": rng.standard_normal(n).astype(np.float32), "grad": g}
    for name in rmsfuse.ARRAYS[rule][2:]:
        if name in ("momentum_buf", "exp_avg"):
            out[name] = (rng.standard_normal(n) * 0.01).astype(np.float32)
        elif name == "grad_avg":
            out[name] = (rng.standard_normal(n) * 0.1 * np.abs(g)).astype(np.float32)
        else:  # square_avg, sum, exp_avg_sq, max_exp_avg_sq: non-negative, above grad_avg^2 * 1.5
            out[name] = (np.abs(g.astype(np.float64)) ** 2 * (0.02 + rng.random(n))).astype(np.float32)
    return out


def describe(cfg):
    on = [k for k in cfg._rule.attrs if getattr(cfg, k) and k not in RULE_CASES[cfg.rule][1] and k != "step"]
    return f"{cfg.rule}: " + (", ".join(f"{k}={getattr(cfg, k)}" for k in on) or "plain")


class TestRules(unittest.TestCase):
    def test_every_rule_and_flag_combination_matches_float32_emulation_bit_for_bit(self):
        # Every flag combination each rule accepts, with and without its optional terms, 3 steps
        # (step numbers 1, 2, 3; SGD's INIT_MOMENTUM on the first only), odd sizes.
        counts = {}
        for rule in RULE_CASES:
            for k, cfg in enumerate(rule_configs(rule)):
                arrays = rule_arrays(rule, 61 + k % 7, seed=k)
                want = {name: a.copy() for name, a in arrays.items()}
                for s in range(3):
                    c = cfg.replace(step=s + 1) if rule in STEP_FIELD else cfg
                    if rule == "sgd" and s > 0:
                        c = c.replace(init_momentum=False)
                    rmsfuse.step(c, **arrays)
                    want.update((k, v) for k, v in emulate_rule(c, want).items() if v is not None)
                    for name in rmsfuse.ARRAYS[rule]:
                        with self.subTest(describe(c), step=s, array=name):
                            np.testing.assert_array_equal(bits(arrays[name]), bits(want[name]))
                counts[rule] = k + 1
        # 128 flag sets (FLUSH_SUBNORMAL included) x weight decay x momentum, less NESTEROV without
        # momentum
        self.assertEqual(counts["rmsprop"], 384)
        self.assertGreater(min(counts.values()), 15)

    def test_presets_are_the_librarys(self):
        # docs/math.md's presets and the frameworks' default learning rates.
        A, W = rmsfuse.AdamConfig, rmsfuse.AdamWConfig
        # Every preset also sets FLUSH_SUBNORMAL (added below); a config built by hand does not.
        cases = [
            (A.pytorch(), dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0, step=1), 0),
            (A.keras(), dict(lr=1e-3, eps=1e-7, weight_decay=0), rmsfuse.EPS_HAT),
            (A.tensorflow(0.5), dict(lr=0.5, eps=1e-8), rmsfuse.EPS_HAT),
            (W.pytorch(), dict(lr=1e-3, eps=1e-8, weight_decay=0.01), rmsfuse.DECOUPLED_DECAY),
            (W.keras(), dict(lr=1e-3, eps=1e-7, weight_decay=0.004), rmsfuse.DECOUPLED_DECAY | rmsfuse.EPS_HAT),
            (rmsfuse.AdagradConfig.pytorch(), dict(lr=1e-2, lr_decay=0, eps=1e-10, step=1), 0),
            (rmsfuse.AdagradConfig.keras(), dict(lr=1e-3, eps=1e-7), rmsfuse.EPS_IN_SQRT),
            (rmsfuse.AdagradConfig.classic(), dict(lr=1e-2, eps=1e-8), rmsfuse.EPS_IN_SQRT),
            (rmsfuse.SGDConfig.pytorch(0.1), dict(lr=0.1, momentum=0, dampening=0, weight_decay=0), 0),
            (rmsfuse.SGDConfig.keras(), dict(lr=1e-2, momentum=0), rmsfuse.LR_IN_MOMENTUM),
        ]
        for cfg, fields, flags in cases:
            with self.subTest(cfg=cfg):
                self.assertEqual({k: getattr(cfg, k) for k in fields}, fields)
                self.assertEqual(cfg.flags, flags | rmsfuse.FLUSH_SUBNORMAL)
                self.assertTrue(cfg.flush_subnormal)
        for cls in (rmsfuse.Config, rmsfuse.AdagradConfig, rmsfuse.SGDConfig, A, W):
            self.assertEqual(cls(flush_subnormal=True), cls.pytorch())  # the defaults are torch's ...
            self.assertFalse(cls().flush_subnormal)  # ... but by hand, as a C struct, without the flag
            self.assertEqual(cls.pytorch().replace(flush_subnormal=False), cls())
        self.assertEqual(W(), A(weight_decay=0.01, decoupled_decay=True))  # the same C config
        self.assertFalse(hasattr(W, "tensorflow"))  # AdamW has torch's and Keras' presets only
        self.assertIn("torch.optim.AdamW", W.pytorch.__doc__)  # the header's comment

    def test_config_objects(self):
        c = rmsfuse.AdamConfig(0.1, 0.5, step=3, amsgrad=True)
        self.assertEqual((c.lr, c.beta1, c.beta2, c.step, c.flags), (0.1, 0.5, 0.999, 3, rmsfuse.AMSGRAD))
        self.assertIsInstance(c.step, int)
        self.assertEqual(c.replace(step=4).step, 4)
        self.assertEqual(c.step, 3)
        c.flags = rmsfuse.EPS_HAT | rmsfuse.MAXIMIZE
        self.assertEqual((c.eps_hat, c.maximize, c.amsgrad), (True, True, False))
        with self.assertRaisesRegex(ValueError, "not flags of adam"):
            c.flags = rmsfuse.CENTERED
        with self.assertRaisesRegex(TypeError, "unexpected keyword argument 'alpha'"):
            rmsfuse.AdamConfig(alpha=0.9)
        with self.assertRaisesRegex(TypeError, "multiple values"):
            rmsfuse.SGDConfig(0.1, lr=0.2)
        with self.assertRaises(AttributeError):  # __slots__: a typo is an error, not a new field
            c.betas = (0.9, 0.99)
        self.assertIn("rmsfuse.AdamConfig(lr=0.1, beta1=0.5", repr(c))
        self.assertEqual(rmsfuse.SGDConfig(momentum=0.9).rule, "sgd")
        self.assertRaises(rmsfuse.RmsfuseError, rmsfuse.AdamConfig(step=0).validate)
        self.assertIs(rmsfuse.RMSpropConfig, rmsfuse.Config)


class TestRuleErrors(unittest.TestCase):
    """Every rule: bad calls raise and change nothing."""

    def check_unchanged(self, arrays, before):
        for name, a in arrays.items():
            np.testing.assert_array_equal(bits(a), bits(before[name]), name)

    def expect(self, exc, pattern, cfg, arrays, **replace):
        args = dict(arrays, **replace)
        before = {k: v.copy() for k, v in arrays.items()}
        with self.assertRaisesRegex(exc, pattern):
            rmsfuse.step(cfg, **args)
        self.check_unchanged(arrays, before)

    def test_binding_checks(self):
        for rule in RULE_CASES:
            cfg = rule_configs(rule)[-1]
            a = rule_arrays(rule, 33, 1)
            last = rmsfuse.ARRAYS[rule][-1]
            with self.subTest(rule):
                self.expect(TypeError, "grad must have dtype float32", cfg, a, grad=a["grad"].astype(np.float64))
                self.expect(TypeError, f"{last} must be a numpy.ndarray", cfg, a, **{last: list(a[last])})
                self.expect(ValueError, f"{last} has shape \\(32,\\)", cfg, a, **{last: a[last][:32].copy()})
                self.expect(ValueError, f"{last} is not C-contiguous", cfg, a,
                            **{last: np.zeros(66, np.float32)[::2]})
                ro = a[last].copy()
                ro.flags.writeable = False
                self.expect(ValueError, f"{last} is read-only", cfg, a, **{last: ro})
                if rule != "sgd":  # SGD's only state is optional
                    with self.assertRaisesRegex(TypeError, f"missing {rmsfuse.ARRAYS[rule][2]}"):
                        rmsfuse.step(cfg, a["param"], a["grad"])
                with self.assertRaisesRegex(TypeError, "unexpected array 'bogus'"):
                    rmsfuse.step(cfg, bogus=a["param"], **a)

    def test_library_checks(self):
        E = "RMSFUSE_E_"
        bad = {"rmsprop": [(dict(alpha=1.5), "ALPHA"), (dict(nesterov=True, momentum=0), "NESTEROV")],
               "adagrad": [(dict(lr_decay=-1), "LR_DECAY"), (dict(step=0), "STEP"), (dict(eps=-1), "EPS")],
               "sgd": [(dict(dampening=1.5), "DAMPENING"), (dict(nesterov=True, momentum=0.9, dampening=0.1),
                                                            "NESTEROV"),
                       (dict(lr_in_momentum=True, init_momentum=True, momentum=0.9), "FLAGS")],
               "adam": [(dict(beta1=1.0), "BETA1"), (dict(beta2=-0.1), "BETA2"), (dict(step=0), "STEP"),
                        (dict(lr=1e39), "NONFINITE"), (dict(weight_decay=float("nan")), "NONFINITE")]}
        for rule, cases in bad.items():
            cls, base, _ = RULE_CASES[rule]
            a = rule_arrays(rule, 40, 2)
            for kw, name in cases:
                with self.subTest(rule, **kw):
                    self.expect(rmsfuse.RmsfuseError, E + name, cls(**dict(base, **kw)), a)
            with self.subTest(rule, case="overlap"):
                self.expect(rmsfuse.RmsfuseError, E + "OVERLAP", cls(**base), a, grad=a["param"])
        # Used state that is missing: the library's NULL statuses.
        a = rule_arrays("adam", 10, 3)
        del a["max_exp_avg_sq"]
        self.expect(rmsfuse.RmsfuseError, E + "NULL_ARRAY", rmsfuse.AdamConfig(amsgrad=True), a)
        a = rule_arrays("sgd", 10, 3)
        del a["momentum_buf"]
        self.expect(rmsfuse.RmsfuseError, E + "NULL_MOMENTUM_BUF", rmsfuse.SGDConfig(momentum=0.5), a)
        rmsfuse.step(rmsfuse.SGDConfig(), **a)  # without momentum: no buffer needed
        try:
            rmsfuse.step(rmsfuse.AdamConfig(beta2=1.0), **rule_arrays("adam", 5, 4))
        except rmsfuse.RmsfuseError as e:
            self.assertEqual((e.status, e.name), (rmsfuse.E_BETA2, "RMSFUSE_E_BETA2"))
        else:
            self.fail("beta2 = 1 was accepted")


class TestRuleMulti(unittest.TestCase):
    def test_same_bits_as_single_steps_and_bad_entries_change_nothing(self):
        sizes = [1, 7, 64, 1000, 0, 33]
        for rule in RULE_CASES:
            for cfg in rule_configs(rule)[::7]:
                one = [rule_arrays(rule, n, 100 + i) for i, n in enumerate(sizes)]
                many = [{k: v.copy() for k, v in t.items()} for t in one]
                for t in one:
                    rmsfuse.step(cfg, **t)
                order = rmsfuse.ARRAYS[rule]
                rmsfuse.step_multi(cfg, [tuple(t[k] for k in order) for t in many])
                for t1, t2 in zip(one, many):
                    for k in order:
                        np.testing.assert_array_equal(bits(t1[k]), bits(t2[k]), f"{describe(cfg)} {k}")
            # > 64 tensors (the sorting overlap check): a bad last entry changes nothing.
            cfg = rule_configs(rule)[-1]
            ts = [tuple(rule_arrays(rule, 50, i).values()) for i in range(70)]
            before = [[a.copy() for a in t] for t in ts]
            bad = list(ts)
            bad[69] = (ts[69][0], ts[69][1]) + (ts[3][2],) + ts[69][3:]
            self.assertEqual(rmsfuse.check_multi(cfg, bad), rmsfuse.E_OVERLAP)
            with self.assertRaisesRegex(rmsfuse.RmsfuseError, "OVERLAP"):
                rmsfuse.step_multi(cfg, bad)
            bad[69] = (ts[69][0], ts[69][1].astype(np.float64)) + ts[69][2:]
            with self.assertRaisesRegex(TypeError, "tensors\\[69\\].grad"):
                rmsfuse.step_multi(cfg, bad)
            for t, b in zip(ts, before):
                for x, y in zip(t, b):
                    np.testing.assert_array_equal(bits(x), bits(y))

    def test_plan_runs_in_pieces_with_the_bits_of_one_call(self):
        for rule in RULE_CASES:
            cfg = rule_configs(rule)[-1]
            one = [rule_arrays(rule, n, n) for n in (100, 3, 5000, 17)]
            two = [{k: v.copy() for k, v in t.items()} for t in one]
            order = rmsfuse.ARRAYS[rule]
            rmsfuse.step_multi(cfg, [tuple(t[k] for k in order) for t in one])
            with rmsfuse.Plan(cfg, [tuple(t[k] for k in order) for t in two]) as plan:
                self.assertEqual(plan.elements, 5120)
                f = 0
                while f < plan.elements:  # cut at cache-line boundaries, run piece by piece
                    end = plan.cut(f + 300)
                    self.assertGreater(end, f)
                    plan.run(f, end)
                    f = end
                with self.assertRaisesRegex(rmsfuse.RmsfuseError, "RANGE"):
                    plan.run(10, 5)
                with self.assertRaisesRegex(rmsfuse.RmsfuseError, "RANGE"):
                    plan.run(0, 5121)
            for t1, t2 in zip(one, two):
                for k in order:
                    np.testing.assert_array_equal(bits(t1[k]), bits(t2[k]), f"{rule} {k}")
            with self.assertRaisesRegex(ValueError, "closed"):
                plan.run()
            with self.assertRaisesRegex(rmsfuse.RmsfuseError, "BETA1|ALPHA|DAMPENING|LR_DECAY"):
                rmsfuse.Plan(cfg.replace(**{"adam": dict(beta1=2.0), "rmsprop": dict(alpha=2.0),
                                            "sgd": dict(dampening=2.0), "adagrad": dict(lr_decay=-1.0)}[rule]),
                             [tuple(one[0][k] for k in order)])


class TestIsa(unittest.TestCase):
    def tearDown(self):
        rmsfuse.set_isa("auto")

    def test_query_and_force(self):
        names = rmsfuse.isa_names()
        self.assertIn("scalar", names)
        self.assertIn(rmsfuse.active_isa(), names)
        self.assertTrue(rmsfuse.isa_supported("auto"))
        self.assertTrue(rmsfuse.isa_supported("scalar"))
        self.assertFalse(rmsfuse.isa_supported("nonsense"))
        self.assertEqual(rmsfuse.isa_env_status(), rmsfuse.OK)
        cfg = cfg_for(CENTERED | MAXIMIZE, True, True)
        ref = None
        for name in names:
            if not rmsfuse.isa_supported(name):
                with self.assertRaisesRegex(rmsfuse.RmsfuseError, "ISA_UNSUPPORTED"):
                    rmsfuse.set_isa(name)
                continue
            rmsfuse.set_isa(name)
            self.assertEqual(rmsfuse.active_isa(), name)
            arrays = make_state(1003, 5)
            rmsfuse.step(cfg, *arrays)
            if ref is None:
                ref = arrays
            for x, y in zip(arrays, ref):  # every ISA: the same bits
                np.testing.assert_array_equal(bits(x), bits(y))
        active = rmsfuse.active_isa()
        with self.assertRaisesRegex(rmsfuse.RmsfuseError, "UNKNOWN_ISA"):
            rmsfuse.set_isa("avx9000")
        self.assertEqual(rmsfuse.active_isa(), active)

    def test_version(self):
        self.assertEqual(rmsfuse.version().split(".")[:2], ["0", "2"])
        self.assertEqual(rmsfuse.__version__, rmsfuse.version())


@unittest.skipUnless(rmsfuse.pool_available(), "librmsfuse_pool not found")
class TestPool(unittest.TestCase):
    def test_bit_identical_to_one_thread(self):
        cfg = cfg_for(CENTERED, True, True)
        for threads in (1, 2, 3, 0):
            with rmsfuse.Pool(threads) as pool:
                self.assertEqual(pool.threads, threads or rmsfuse.machine_cores())
                pool.set_chunk(1000)
                a = make_state(100003, 9)
                b = [x.copy() for x in a]
                pool.step(cfg, *a)
                rmsfuse.step(cfg, *b)
                for x, y in zip(a, b):
                    np.testing.assert_array_equal(bits(x), bits(y))
                ts = [make_state(n, n) for n in (5, 40000, 17, 70000)]
                us = [[x.copy() for x in t] for t in ts]
                pool.step_multi(cfg, [tuple(t) for t in ts])
                rmsfuse.step_multi(cfg, [tuple(t) for t in us])
                for t, u in zip(ts, us):
                    for x, y in zip(t, u):
                        np.testing.assert_array_equal(bits(x), bits(y))

    def test_every_rule_bit_identical_to_one_thread(self):
        with rmsfuse.Pool(2) as pool:
            pool.set_chunk(1000)
            for rule in RULE_CASES:
                for cfg in rule_configs(rule)[::11]:
                    order = rmsfuse.ARRAYS[rule]
                    one = [rule_arrays(rule, n, n) for n in (5, 40000, 17, 70000)]
                    two = [{k: v.copy() for k, v in t.items()} for t in one]
                    pool.step_multi(cfg, [tuple(t[k] for k in order) for t in one])
                    rmsfuse.step_multi(cfg, [tuple(t[k] for k in order) for t in two])
                    pool.step(cfg, **one[1])
                    rmsfuse.step(cfg, **two[1])
                    with rmsfuse.Plan(cfg, [tuple(t[k] for k in order) for t in one]) as plan:
                        pool.run_plan(plan)
                    rmsfuse.step_multi(cfg, [tuple(t[k] for k in order) for t in two])
                    for t1, t2 in zip(one, two):
                        for k in order:
                            np.testing.assert_array_equal(bits(t1[k]), bits(t2[k]), f"{describe(cfg)} {k}")

    def test_errors(self):
        pool = rmsfuse.Pool(2)
        a = make_state(100, 3)
        before = [x.copy() for x in a]
        with self.assertRaisesRegex(rmsfuse.RmsfuseError, "OVERLAP"):
            pool.step(rmsfuse.Config(), a[0], a[1], a[0])
        with self.assertRaisesRegex(TypeError, "float32"):
            pool.step_multi(rmsfuse.Config(), [(a[0], a[1].astype(np.float64), a[2])])
        for x, y in zip(a, before):
            np.testing.assert_array_equal(x, y)
        pool.close()
        pool.close()
        with self.assertRaisesRegex(ValueError, "closed"):
            pool.step(rmsfuse.Config(), *a[:3])
        with self.assertRaisesRegex(rmsfuse.RmsfuseError, "SIZE"):
            rmsfuse.Pool(-1)
        with self.assertRaises(TypeError):
            rmsfuse.Pool(2.5)


class TestLoading(unittest.TestCase):
    def run_python(self, code, **env):
        pkg = os.path.dirname(os.path.dirname(os.path.abspath(rmsfuse.__file__)))
        e = dict(os.environ, PYTHONPATH=pkg, **env)
        return subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True)

    def test_environment_variable_wins_and_fails_loudly(self):
        r = self.run_python("import rmsfuse", RMSFUSE_LIBRARY="/nonexistent/librmsfuse.so.0")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("RMSFUSE_LIBRARY='/nonexistent/librmsfuse.so.0' could not be loaded", r.stderr)
        r = self.run_python("import rmsfuse; print(rmsfuse.library_path)", RMSFUSE_LIBRARY=rmsfuse.library_path)
        self.assertEqual(r.stdout.strip(), rmsfuse.library_path, r.stderr)

    def test_wrong_library_is_refused(self):
        libc = ctypes.util.find_library("c")
        r = self.run_python("import rmsfuse", RMSFUSE_LIBRARY=libc)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("not a usable librmsfuse", r.stderr)

    def test_environment_isa(self):
        r = self.run_python("import rmsfuse; print(rmsfuse.active_isa(), rmsfuse.isa_env_status())",
                            RMSFUSE_ISA="scalar", RMSFUSE_LIBRARY=rmsfuse.library_path)
        self.assertEqual(r.stdout.split(), ["scalar", "0"], r.stderr)


def run_example(name):
    """Runs examples/<name> with this package and library; returns its stdout."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(rmsfuse.__file__)))
    env = dict(os.environ, PYTHONPATH=pkg, RMSFUSE_LIBRARY=rmsfuse.library_path)
    r = subprocess.run([sys.executable, os.path.join(repo, "examples", name)], env=env, capture_output=True,
                       text=True, timeout=300)
    if r.returncode != 0:
        raise AssertionError(f"examples/{name} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r.stdout


def readme_snippets(needs_torch, doc="README.md"):
    """The ```python blocks of README.md (or another page) that do (or do not) import torch."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(repo, doc)) as f:
        blocks = f.read().split("```python\n")[1:]
    code = [b.split("```")[0] for b in blocks]
    return [c for c in code if ("import torch" in c) == needs_torch]


def run_snippet(code):
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(rmsfuse.__file__)))
    env = dict(os.environ, PYTHONPATH=pkg, RMSFUSE_LIBRARY=rmsfuse.library_path)
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise AssertionError(f"README snippet failed:\n{code}\n{r.stderr}")


class TestExample(unittest.TestCase):
    def test_readme_snippet(self):
        snippets = readme_snippets(needs_torch=False)
        self.assertEqual(len(snippets), 1)
        self.assertIn("rmsfuse.step(", snippets[0])
        # torch's RMSprop moves param[0] by lr * g / sqrt((1 - alpha) g^2) = 0.1, then Adam's first
        # step by lr = 1e-3 (m / sqrt(v) = sign(g) after the bias corrections).
        run_snippet(snippets[0] + "\nassert abs(param[0] - 0.899) < 1e-6, param\n")

    def test_docs_snippets(self):
        # docs/python.md's NumPy snippets run as written (the first is the README's).
        snippets = readme_snippets(needs_torch=False, doc="docs/python.md")
        self.assertEqual(len(snippets), 2)
        for code in snippets:
            run_snippet(code)

    def test_readme_numpy_example(self):
        out = run_example("python_numpy.py")
        # torch's first step moves each element by lr * g / sqrt((1 - alpha) g^2) = 0.1 sign(g);
        # the centred Keras step with momentum by lr * g / sqrt(0.1 g^2 - (0.1 g)^2 + eps) = 1/300.
        self.assertRegex(out, r"param after one step: \[ 0\.9000001 +-1\.9000001 +0\.40000004 +3\. *\]")
        self.assertRegex(out, r"weights after a centred Keras step: \[0\.99666667 0\.99666667\]")
        self.assertIn("refused: grad must have dtype float32", out)


if __name__ == "__main__":
    unittest.main()
