"""The NumPy binding (python/rmsfuse): results, errors, ISA control, multi-tensor, pool.

Run: /usr/bin/python3 tests/python/run.py test_numpy   (ctest: python_numpy)
"""

import ctypes
import ctypes.util
import os
import subprocess
import sys
import unittest

import numpy as np

import rmsfuse
from reference import emulate_f32, variants, variant_name, CENTERED, EPS_IN_SQRT, LR_IN_MOMENTUM, MAXIMIZE

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
        t = rmsfuse.Config.pytorch(0.05)
        self.assertEqual((t.lr, t.alpha, t.eps, t.weight_decay, t.momentum, t.flags), (0.05, 0.99, 1e-8, 0, 0, 0))
        tf = rmsfuse.Config.tensorflow(1e-3)
        self.assertEqual((tf.alpha, tf.eps, tf.flags), (0.9, 1e-10, EPS_IN_SQRT | LR_IN_MOMENTUM))
        k = rmsfuse.Config.keras()
        self.assertEqual((k.lr, k.alpha, k.eps, k.flags), (1e-3, 0.9, 1e-7, EPS_IN_SQRT | LR_IN_MOMENTUM))
        self.assertEqual(rmsfuse.Config(), rmsfuse.Config.pytorch())  # Config() defaults are torch's
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


def readme_snippets(needs_torch):
    """The ```python blocks of README.md that do (or do not) import torch."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(repo, "README.md")) as f:
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
        run_snippet(snippets[0] + "\nassert abs(param[0] - 0.9) < 1e-6, param\n")

    def test_readme_numpy_example(self):
        out = run_example("python_numpy.py")
        # torch's first step moves each element by lr * g / sqrt((1 - alpha) g^2) = 0.1 sign(g);
        # the centred Keras step with momentum by lr * g / sqrt(0.1 g^2 - (0.1 g)^2 + eps) = 1/300.
        self.assertRegex(out, r"param after one step: \[ 0\.9000001 +-1\.9000001 +0\.40000004 +3\. *\]")
        self.assertRegex(out, r"weights after a centred Keras step: \[0\.99666667 0\.99666667\]")
        self.assertIn("refused: grad must have dtype float32", out)


if __name__ == "__main__":
    unittest.main()
