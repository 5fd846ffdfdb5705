"""Storage types through the Python package: the NumPy API and the PyTorch drop-ins, bit for bit.

Run: /usr/bin/python3 tests/python/run.py test_storage_torch   (ctest: python_storage_torch)

docs/math.md, "Storage types": a typed step computes in float32 exactly what the
float32 step computes from the same values, and rounds what it writes.  So
every test here compares against a float32 run, made to see the same values:

* master weights (bfloat16 and float16 parameters, master_weights="fp32"): the
  master is the float32 run's parameter bit for bit (gradients representable
  in the parameter's dtype), and the parameter is the master rounded to
  nearest even (torch's .to(dtype));
* split bf16: (param << 16) | trail is the float32 run's parameter, and the
  parameter is its upper half;
* bfloat16 state: the float32 run with its state rounded to bfloat16 after each
  step (torch's cast), parameters and state bit for bit;
* 8-bit state (q8, q8_linear): runs, stays close to the float32 run, and
  decodes (convert_to_f32) to what the state holds;
* state_dict() / load_state_dict() (also through torch.save) of every option:
  the reloaded optimizer continues bit for bit, every state tensor keeps its
  dtype (torch's load_state_dict would cast them to the parameter's);
* stochastic rounding: the same seed gives the same bits, another seed or
  another parameter index other ones; it needs no master;
* threads=, max_grad_norm= and grad_scale= with typed tensors: bit-identical
  to the plain calls; refusals with clear messages that change nothing;
* the NumPy API (Storage, step_typed, step_multi_typed, Plan with storage,
  the conversions) against the float32 functions, and its refusals;
* the snippets of docs/python.md's "Storage types" section run as written.
"""

import copy
import io
import os
import unittest

import numpy as np
import torch

import rmsfuse
from rmsfuse.torch import SGD, Adagrad, Adam, AdamW, RMSprop

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHAPES = [(37, 11), (300,), (2, 3, 4, 5), (1,)]
STEPS = 6

# (class, constructor options): every rule, its state arrays, and a few options.
CASES = [
    (RMSprop, dict(lr=1e-2)),
    (RMSprop, dict(lr=1e-2, momentum=0.9, centered=True, weight_decay=1e-2)),
    (Adagrad, dict(lr=5e-2, initial_accumulator_value=0.1, lr_decay=1e-3)),
    (SGD, dict(lr=5e-2)),
    (SGD, dict(lr=5e-2, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    (Adam, dict(lr=1e-2, amsgrad=True)),
    (AdamW, dict(lr=1e-2, weight_decay=0.1)),
]


def name(cls, kw):
    return cls.__name__ + "(" + ", ".join(f"{k}={v}" for k, v in kw.items()) + ")"


def bits(t):
    """The bit patterns of a tensor (int view of its element size)."""
    t = t.detach()
    return t.view({4: torch.int32, 2: torch.int16, 1: torch.uint8}[t.element_size()])


def same_bits(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(bits(a), bits(b))


def rounded(x, dtype):
    """x (float32) rounded to dtype and back (torch's casts round to nearest even)."""
    return x.to(dtype).to(torch.float32)


def make_params(dtype, seed=0, shapes=SHAPES):
    """Parameters with values representable in dtype: a float32 copy and a `dtype` copy."""
    gen = torch.Generator().manual_seed(seed)
    vals = [rounded(torch.randn(s, generator=gen), dtype) for s in shapes]
    return ([v.clone().requires_grad_() for v in vals], [v.to(dtype).requires_grad_() for v in vals])


def set_grads(pa, pb, gen, dtype, scale=0.1):
    """The same gradient values on both lists, representable in dtype."""
    for x, y in zip(pa, pb):
        g = rounded(torch.randn(x.shape, generator=gen) * scale, dtype)
        x.grad = g.to(x.dtype)
        y.grad = g.to(y.dtype)


class TorchCase(unittest.TestCase):
    def assert_bits(self, a, b, msg=""):
        self.assertTrue(same_bits(a, b), f"{msg}: {a.dtype} {tuple(a.shape)} vs {b.dtype} {tuple(b.shape)}, "
                                         f"max |diff| {(a.detach().float() - b.detach().float()).abs().max()}")

    def assert_state_bits(self, sa, sb, msg=""):
        self.assertEqual(sorted(sa), sorted(sb), msg)
        for k in sa:
            a, b = sa[k], sb[k]
            if torch.is_tensor(a):
                self.assert_bits(a, b, f"{msg} state {k!r}")
            else:
                self.assertEqual(a, b, f"{msg} state {k!r}")


class TestMasterWeights(TorchCase):
    def test_master_is_the_float32_run(self):
        # bf16 and f16 parameters with float32 master weights against float32 parameters, same
        # gradient values: the master is the float32 parameter, bit for bit, and the parameter is it
        # rounded to nearest even; the state is the float32 run's.
        for dtype in (torch.bfloat16, torch.float16):
            for cls, kw in CASES:
                with self.subTest(name(cls, kw), dtype=dtype):
                    pa, pb = make_params(dtype)
                    oa, ob = cls(pa, **kw), cls(pb, **kw)
                    gen = torch.Generator().manual_seed(1)
                    for _ in range(STEPS):
                        set_grads(pa, pb, gen, dtype)
                        oa.step()
                        ob.step()
                    for x, y in zip(pa, pb):
                        sa, sb = oa.state[x], ob.state[y]
                        self.assert_bits(sb["master"], x, "master")
                        self.assert_bits(y, x.detach().to(dtype), "param = master rounded to nearest even")
                        self.assert_state_bits(sa, {k: v for k, v in sb.items() if k != "master"}, "state")
                        self.assertEqual(y.dtype, dtype)

    def test_mixed_dtypes_clipping_loss_scale_and_layouts(self):
        # One optimizer over float32, bf16 and channels_last bf16 parameters (several calls), with the
        # global norm clipped and a loss scale: the same bits as a float32 run of the same values.
        gen = torch.Generator().manual_seed(3)
        vals = [rounded(torch.randn(s, generator=gen), torch.bfloat16) for s in [(8, 3, 5, 5), (40,), (7, 3)]]
        pa = [v.clone().contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v.clone()
              for v in vals]
        pb = [pa[0].to(torch.bfloat16), vals[1].to(torch.bfloat16), vals[2].clone()]
        self.assertFalse(pb[0].is_contiguous())
        pa = [p.requires_grad_() for p in pa]
        pb = [p.requires_grad_() for p in pb]
        oa = Adam(pa, lr=1e-2, max_grad_norm=0.5)
        ob = Adam(pb, lr=1e-2, max_grad_norm=0.5)
        for step in range(STEPS):
            for x, y in zip(pa, pb):
                g = rounded(torch.randn(x.shape, generator=gen), torch.bfloat16) * 1024
                x.grad = g.clone().contiguous(memory_format=torch.channels_last) if x.dim() == 4 else g.clone()
                y.grad = torch.empty_like(y).copy_(g)
            oa.step(grad_scale=1024.0)
            ob.step(grad_scale=1024.0)
            self.assertEqual(oa.grad_norm, ob.grad_norm)
            self.assertLess(ob.grad_norm, 1e9)
        for x, y in zip(pa, pb):
            master = ob.state[y]["master"] if y.dtype == torch.bfloat16 else y
            self.assert_bits(master, x, "master")
            self.assertEqual(master.stride(), y.stride())
            self.assert_bits(ob.state[y]["exp_avg_sq"], oa.state[x]["exp_avg_sq"], "exp_avg_sq")

    def test_skipped_step_changes_nothing(self):
        pa, pb = make_params(torch.bfloat16, shapes=[(50,)])
        opt = Adam(pb, lr=1e-2, state_dtype="q8")
        gen = torch.Generator().manual_seed(4)
        set_grads(pa, pb, gen, torch.bfloat16)
        opt.step()
        before = copy.deepcopy(opt.state_dict()), pb[0].detach().clone()
        pb[0].grad[3] = float("inf")
        opt.step(grad_scale=2.0)
        self.assertTrue(opt.found_inf)
        self.assertTrue(same_bits(pb[0], before[1]))
        self.assert_state_bits(opt.state_dict()["state"][0], before[0]["state"][0], "after a skipped step")


class TestSplit(TorchCase):
    def test_split_is_the_float32_run(self):
        for cls, kw in CASES:
            with self.subTest(name(cls, kw)):
                pa, pb = make_params(torch.bfloat16)
                oa, ob = cls(pa, **kw), cls(pb, master_weights="split", **kw)
                gen = torch.Generator().manual_seed(5)
                for _ in range(STEPS):
                    set_grads(pa, pb, gen, torch.bfloat16)
                    oa.step()
                    ob.step()
                for x, y in zip(pa, pb):
                    trail = ob.state[y]["trail"]
                    self.assertEqual(trail.dtype, torch.int16)
                    self.assertNotIn("master", ob.state[y])
                    w = (bits(y).to(torch.int32) << 16) | (trail.to(torch.int32) & 0xFFFF)
                    self.assertTrue(torch.equal(w, bits(x)), "(param << 16) | trail != the float32 param")
                    self.assertTrue(torch.equal(bits(y), (bits(x) >> 16).to(torch.int16)), "param != upper half")
                    self.assert_state_bits(oa.state[x], {k: v for k, v in ob.state[y].items() if k != "trail"})


class TestStateTypes(TorchCase):
    def test_bf16_state_is_float32_state_rounded_each_step(self):
        # The float32 drop-in with its state rounded to bf16 (torch's cast) after each step: the
        # parameters and the state, bit for bit.  Float32 and bf16 parameters (with master weights).
        for pdtype in (torch.float32, torch.bfloat16):
            for cls, kw in CASES:
                with self.subTest(name(cls, kw), param=pdtype):
                    pa, pb = make_params(torch.bfloat16)
                    if pdtype is torch.float32:
                        pb = [x.detach().clone().requires_grad_() for x in pa]
                    oa, ob = cls(pa, **kw), cls(pb, state_dtype=torch.bfloat16, **kw)

                    def round_state():
                        for s in oa.state.values():
                            for k, v in s.items():
                                if torch.is_tensor(v) and v.dtype is torch.float32 and k != "step":
                                    v.copy_(rounded(v, torch.bfloat16))
                    round_state()  # Adagrad's initial sum
                    gen = torch.Generator().manual_seed(6)
                    for _ in range(STEPS):
                        set_grads(pa, pb, gen, torch.bfloat16)
                        oa.step()
                        ob.step()
                        round_state()
                    for x, y in zip(pa, pb):
                        self.assert_bits(ob.state[y].get("master", y), x, "param")
                        sb = ob.state[y]
                        for k, v in oa.state[x].items():
                            if torch.is_tensor(v) and k != "step":
                                self.assertEqual(sb[k].dtype, torch.bfloat16, k)
                                self.assert_bits(sb[k].float(), v, k)
                            else:
                                self.assertEqual(float(sb[k] if sb[k] is not None else -1),
                                                 float(v if v is not None else -1), k)

    def test_q8_state_stays_close_to_float32(self):
        # 8-bit state over 30 steps of a small least-squares problem.  q8 (float-like codes): the loss
        # and the parameters as the float32 run's.  q8_linear: the loss falls (its unsigned map rounds
        # second moments below amax / 508 to 0, so Adam's m / (sqrt(v) + eps) jumps there: it is for
        # momentum-like state), and SGD's momentum stays close.
        gen = torch.Generator().manual_seed(7)
        a, b = torch.randn(256, 64, generator=gen), torch.randn(256, generator=gen)
        l0 = ((b ** 2).mean()).item()
        for state_dtype in ("q8", "q8_linear"):
            for cls, kw in [(Adam, dict(lr=1e-2)), (RMSprop, dict(lr=1e-3, momentum=0.9)),
                            (SGD, dict(lr=1e-2, momentum=0.9)), (Adagrad, dict(lr=5e-2))]:
                with self.subTest(name(cls, kw), state_dtype=state_dtype):
                    w32 = torch.zeros(64, requires_grad=True)
                    w8 = torch.zeros(64, requires_grad=True)
                    o32, o8 = cls([w32], **kw), cls([w8], state_dtype=state_dtype, **kw)
                    for _ in range(30):
                        for w, o in ((w32, o32), (w8, o8)):
                            o.zero_grad()
                            ((a @ w - b) ** 2).mean().backward()
                            o.step()
                    l32, l8 = (((a @ w - b) ** 2).mean().item() for w in (w32, w8))
                    self.assertLess(l8, 0.9 * l0)
                    if state_dtype == "q8" or cls is SGD:
                        self.assertLess(abs(l8 - l32), 0.01 * (l0 - l32))
                        self.assertLess((w8 - w32).abs().max().item(), 0.05 * w32.abs().max().item())

    def test_q8_step_reads_and_writes_its_codes_exactly(self):
        # A step over 8-bit state is the float32 step over the decoded state (convert_to_f32, with
        # the unsigned map for the arrays nonneg_state() names), and its new codes and scales are the
        # encoding (convert_from_f32) of the float32 step's new state: bit for bit.
        cases = [(Adam, dict(lr=1e-2, amsgrad=True)), (RMSprop, dict(lr=1e-2, momentum=0.9, centered=True)),
                 (Adagrad, dict(lr=5e-2, initial_accumulator_value=0.1)), (SGD, dict(lr=1e-2, momentum=0.9))]
        for state_dtype in ("q8", "q8_linear"):
            for cls, kw in cases:
                with self.subTest(name(cls, kw), state_dtype=state_dtype):
                    _, p8 = make_params(torch.float32, shapes=[(300,), (3, 5)])
                    o8 = cls(p8, state_dtype=state_dtype, **kw)
                    gen = torch.Generator().manual_seed(17)
                    for _ in range(3):
                        set_grads(p8, p8, gen, torch.float32)
                        o8.step()
                    sd = copy.deepcopy(o8.state_dict())
                    arrays = dict(cls._state)
                    for s in sd["state"].values():
                        for key in [k for k in s if k in arrays and s[k] is not None]:
                            dec = rmsfuse.convert_to_f32(state_dtype, (s[key].numpy(), s.pop(key + "_scale").numpy()),
                                                         nonneg=rmsfuse.nonneg_state(arrays[key]))
                            s[key] = torch.from_numpy(dec)
                    for g in sd["param_groups"]:
                        g["state_dtype"] = torch.float32
                    p32 = [x.detach().clone().requires_grad_() for x in p8]
                    o32 = cls(p32, **kw)
                    o32.load_state_dict(sd)
                    set_grads(p8, p32, gen, torch.float32)
                    o8.step()
                    o32.step()
                    for x, y in zip(p8, p32):
                        self.assert_bits(x, y, "param")
                        for key, array in cls._state:
                            if o8.state[x].get(key) is None:
                                continue
                            codes, scale = rmsfuse.convert_from_f32(state_dtype, o32.state[y][key].numpy(),
                                                                    nonneg=rmsfuse.nonneg_state(array))
                            self.assertTrue(np.array_equal(codes, o8.state[x][key].numpy()), key)
                            self.assertTrue(np.array_equal(scale.view(np.uint32),
                                                           o8.state[x][key + "_scale"].numpy().view(np.uint32)), key)

    def test_q8_state_of_float32_params_without_state_is_the_plain_step(self):
        # SGD without momentum has no state: state_dtype="q8" is accepted and changes nothing.
        pa, pb = make_params(torch.float32)
        oa, ob = SGD(pa, lr=0.1), SGD(pb, lr=0.1, state_dtype="q8")
        gen = torch.Generator().manual_seed(8)
        for _ in range(3):
            set_grads(pa, pb, gen, torch.float32)
            oa.step()
            ob.step()
        for x, y in zip(pa, pb):
            self.assert_bits(x, y, "param")
            self.assertEqual(ob.state[y], {"momentum_buffer": None})

    def test_state_converted_when_state_dtype_changes(self):
        # A float32 state (e.g. a state_dict of torch.optim) in a group that asks for bf16 or 8-bit
        # state is converted with the library's rounding at the next step.
        for state_dtype in (torch.bfloat16, "q8"):
            with self.subTest(state_dtype=state_dtype):
                pa, pb = make_params(torch.float32, shapes=[(600,)])
                ref = torch.optim.Adam(pa, lr=1e-2)
                gen = torch.Generator().manual_seed(9)
                set_grads(pa, pb, gen, torch.float32)
                ref.step()
                opt = Adam(pb, lr=1e-2, state_dtype=state_dtype)
                with torch.no_grad():
                    pb[0].copy_(pa[0])
                opt.load_state_dict(copy.deepcopy(ref.state_dict()))
                self.assertEqual(opt.param_groups[0]["state_dtype"], state_dtype)
                self.assertEqual(opt.state[pb[0]]["exp_avg"].dtype, torch.float32)  # converted at the step
                set_grads(pa, pb, gen, torch.float32)
                opt.step()
                s = opt.state[pb[0]]
                want = torch.bfloat16 if state_dtype is torch.bfloat16 else torch.uint8
                self.assertEqual(s["exp_avg"].dtype, want)
                self.assertEqual("exp_avg_scale" in s, state_dtype == "q8")


OPTIONS = [  # (param dtype, options): every storage option of the drop-ins
    (torch.bfloat16, dict()),
    (torch.bfloat16, dict(master_weights="split")),
    (torch.bfloat16, dict(master_weights=None)),
    (torch.bfloat16, dict(master_weights=None, stochastic_rounding=True, seed=3)),
    (torch.bfloat16, dict(stochastic_rounding=True, state_dtype=torch.bfloat16)),
    (torch.float16, dict(state_dtype="q8")),
    (torch.float16, dict(master_weights=None, stochastic_rounding=True, state_dtype="q8_linear")),
    (torch.float32, dict(state_dtype=torch.bfloat16)),
    (torch.float32, dict(state_dtype="q8")),
    (torch.bfloat16, dict(master_weights="split", state_dtype="q8_linear")),
]


class TestStateDict(TorchCase):
    def test_round_trip_continues_bit_for_bit(self):
        for dtype, opts in OPTIONS:
            for cls, kw in CASES:
                with self.subTest(name(cls, kw), dtype=dtype, **opts):
                    _, pa = make_params(dtype, shapes=[(37, 11), (300,)])
                    oa = cls(pa, **kw, **opts)
                    gen = torch.Generator().manual_seed(10)
                    for _ in range(3):
                        set_grads(pa, pa, gen, dtype)
                        oa.step()
                    buf = io.BytesIO()
                    torch.save(oa.state_dict(), buf)
                    pb = [x.detach().clone().requires_grad_() for x in pa]
                    ob = cls(pb, **kw)  # the storage options come back with the param_groups
                    buf.seek(0)
                    ob.load_state_dict(torch.load(buf))
                    for x, y in zip(pa, pb):
                        self.assert_state_bits(oa.state[x], ob.state[y], "loaded")
                    for _ in range(3):
                        set_grads(pa, pb, gen, dtype)
                        oa.step()
                        ob.step()
                    for x, y in zip(pa, pb):
                        self.assert_bits(x, y, "param")
                        self.assert_state_bits(oa.state[x], ob.state[y], "continued")
                    keys = set(oa.state[pa[0]])
                    mode = opts.get("master_weights", "fp32")
                    if dtype is not torch.float32:
                        self.assertEqual("master" in keys, mode == "fp32")
                        self.assertEqual("trail" in keys, mode == "split")

    def test_state_dict_moves_to_torch(self):
        # A bf16 run's state_dict loads into torch.optim (which ignores master and casts the state
        # to the parameters' dtype), and torch's into the drop-in (the master made from the param).
        _, pa = make_params(torch.bfloat16, shapes=[(64,)])
        ours = Adam(pa, lr=1e-2)
        gen = torch.Generator().manual_seed(11)
        set_grads(pa, pa, gen, torch.bfloat16)
        ours.step()
        ref = torch.optim.Adam([p.detach().clone().requires_grad_() for p in pa], lr=1e-2)
        ref.load_state_dict(copy.deepcopy(ours.state_dict()))
        p2 = [p.detach().clone().requires_grad_() for p in pa]
        back = Adam(p2, lr=1e-2)
        back.load_state_dict(copy.deepcopy(ref.state_dict()))
        set_grads(p2, p2, gen, torch.bfloat16)
        back.step()
        self.assertEqual(back.state[p2[0]]["exp_avg"].dtype, torch.float32)
        self.assertEqual(back.state[p2[0]]["master"].dtype, torch.float32)


class TestStochasticRounding(TorchCase):
    def run_sr(self, seed, dtype=torch.bfloat16, steps=3, **kw):
        gen = torch.Generator().manual_seed(12)
        base = torch.randn(4096, generator=gen)
        p = [base.to(dtype).requires_grad_(), base.to(dtype).requires_grad_()]  # equal values, streams 0, 1
        opt = SGD(p, lr=1e-3, master_weights=None, stochastic_rounding=True, seed=seed, **kw)
        for _ in range(steps):
            g = torch.randn(4096, generator=gen).to(dtype)
            for x in p:
                x.grad = g.clone()
            opt.step()
        return p, opt

    def test_deterministic_per_seed_and_stream(self):
        for dtype in (torch.bfloat16, torch.float16):
            with self.subTest(dtype=dtype):
                a, oa = self.run_sr(1, dtype)
                b, _ = self.run_sr(1, dtype)
                c, _ = self.run_sr(2, dtype)
                for x, y in zip(a, b):
                    self.assert_bits(x, y, "same seed")
                self.assertFalse(same_bits(a[0], c[0]), "another seed gave the same bits")
                self.assertFalse(same_bits(a[0], a[1]), "two parameters (streams) gave the same bits")
                self.assertEqual(oa.state[a[0]]["step"], 3)  # SGD counts steps for the rounding
                self.assertNotIn("master", oa.state[a[0]])

    def test_unbiased_against_round_to_nearest(self):
        # Many small updates: with round to nearest each one is lost (below half an ulp); with
        # stochastic rounding the parameter moves by their sum on average.
        p_rn = [torch.ones(20000, dtype=torch.bfloat16, requires_grad=True)]
        p_sr = [torch.ones(20000, dtype=torch.bfloat16, requires_grad=True)]
        o_rn = SGD(p_rn, lr=1.0, master_weights=None)
        o_sr = SGD(p_sr, lr=1.0, master_weights=None, stochastic_rounding=True)
        for _ in range(16):
            for p in (p_rn[0], p_sr[0]):
                p.grad = torch.full_like(p, -2.0 ** -10)  # an eighth of bf16's ulp at 1 (2^-7)
            o_rn.step()
            o_sr.step()
        self.assertTrue(torch.all(p_rn[0] == 1))
        mean = p_sr[0].float().mean().item()
        self.assertAlmostEqual(mean, 1 + 16 * 2.0 ** -10, delta=4e-4)  # about 5 sigma

    def test_with_master_weights_the_master_is_exact(self):
        pa, pb = make_params(torch.bfloat16, shapes=[(500,)])
        oa, ob = Adam(pa, lr=1e-2), Adam(pb, lr=1e-2, stochastic_rounding=True, seed=5)
        gen = torch.Generator().manual_seed(13)
        for _ in range(STEPS):
            set_grads(pa, pb, gen, torch.bfloat16)
            oa.step()
            ob.step()
        m = ob.state[pb[0]]["master"]
        self.assert_bits(m, pa[0], "master")
        lo = m.to(torch.bfloat16).float()
        self.assertTrue(torch.all((pb[0].float() - m).abs() <= (lo - m).abs() + m.abs() * 2.0 ** -7))
        self.assertFalse(same_bits(pb[0], m.to(torch.bfloat16)), "no element was rounded another way")


class TestThreadsAndRefusals(TorchCase):
    @unittest.skipUnless(rmsfuse.pool_available(), "librmsfuse_pool not found")
    def test_threads_bit_identical(self):
        for dtype, opts in OPTIONS[::2]:
            with self.subTest(dtype=dtype, **opts):
                _, pa = make_params(dtype, shapes=[(257, 33), (1000,), (5,)])
                pb = [x.detach().clone().requires_grad_() for x in pa]
                oa, ob = Adam(pa, lr=1e-2, **opts), Adam(pb, lr=1e-2, threads=3, **opts)
                ob._pool.set_chunk(300)  # ranges cut inside tensors (8-bit state: at block boundaries)
                gen = torch.Generator().manual_seed(14)
                for _ in range(3):
                    set_grads(pa, pb, gen, dtype)
                    oa.step()
                    ob.step()
                for x, y in zip(pa, pb):
                    self.assert_bits(x, y, "param")
                    self.assert_state_bits(oa.state[x], ob.state[y])
                ob.close()

    def test_refusals(self):
        p16 = [torch.zeros(4, dtype=torch.float16, requires_grad=True)]
        pbf = [torch.zeros(4, dtype=torch.bfloat16, requires_grad=True)]
        with self.assertRaisesRegex(ValueError, "split.*bfloat16 parameters.*float16"):
            Adam(p16, master_weights="split")
        with self.assertRaisesRegex(ValueError, "stochastic_rounding.*split"):
            Adam(pbf, master_weights="split", stochastic_rounding=True)
        with self.assertRaisesRegex(ValueError, "master_weights must be"):
            SGD(pbf, lr=0.1, master_weights="fp64")
        with self.assertRaisesRegex(ValueError, "state_dtype must be"):
            RMSprop(pbf, state_dtype=torch.float16)
        with self.assertRaisesRegex(ValueError, "seed must be"):
            Adagrad(pbf, seed=-1)
        with self.assertRaisesRegex(ValueError, "stochastic_rounding must be"):
            Adagrad(pbf, stochastic_rounding="yes")
        opt = Adam(pbf, lr=0.1)
        with self.assertRaisesRegex(ValueError, "split.*bfloat16 parameters.*float16"):
            opt.add_param_group(dict(params=p16, master_weights="split"))
        # a float16 parameter in a split group at step() (its dtype changed after construction)
        q = torch.zeros(4, dtype=torch.bfloat16, requires_grad=True)
        opt = Adam([q], lr=0.1, master_weights="split")
        q.data = q.data.to(torch.float16)
        q.grad = torch.ones(4, dtype=torch.float16)
        with self.assertRaisesRegex(ValueError, "split.*bfloat16"):
            opt.step()
        self.assertEqual(len(opt.state), 0)
        # float64 still refused, with the message of before
        d = [torch.zeros(3, dtype=torch.float64, requires_grad=True)]
        d[0].grad = torch.ones(3, dtype=torch.float64)
        with self.assertRaisesRegex(TypeError, "float32 tensors only.*float64"):
            Adam(d).step()

    def test_bad_state_refused_and_nothing_changes(self):
        _, p = make_params(torch.bfloat16, shapes=[(300,)])
        opt = Adam(p, lr=1e-2, state_dtype="q8")
        gen = torch.Generator().manual_seed(15)
        set_grads(p, p, gen, torch.bfloat16)
        opt.step()
        before = copy.deepcopy(opt.state_dict()), p[0].detach().clone()
        cases = [("exp_avg_scale", torch.zeros(1), "block scales"),  # one scale for 2 blocks
                 ("master", torch.zeros(300, dtype=torch.int32), "master weights"),
                 ("master", torch.zeros(299), "master weights"),
                 ("exp_avg", torch.zeros(300, dtype=torch.int32), "exp_avg")]
        for key, bad, text in cases:
            with self.subTest(key):
                good = opt.state[p[0]][key]
                opt.state[p[0]][key] = bad
                with self.assertRaisesRegex(TypeError, text):
                    opt.step()
                opt.state[p[0]][key] = good
                self.assertTrue(same_bits(p[0], before[1]))
                self.assert_state_bits(opt.state_dict()["state"][0], before[0]["state"][0], "unchanged")

    def test_grad_sumsq_of_typed_gradients(self):
        from rmsfuse.torch import grad_sumsq
        pa, pb = make_params(torch.bfloat16, shapes=[(5000,), (7,)])
        set_grads(pa, pb, torch.Generator().manual_seed(16), torch.bfloat16)
        self.assertEqual(grad_sumsq(pa, grad_scale=4.0), grad_sumsq(pb, grad_scale=4.0))


class TestNumpy(unittest.TestCase):
    def test_storage_object(self):
        s = rmsfuse.Storage("bf16", master_weights=True)
        self.assertEqual((s.param, s.grad, s.state, s.flags), ("bf16", "bf16", "f32", rmsfuse.MASTER_WEIGHTS))
        self.assertEqual(rmsfuse.Storage(rmsfuse.SPLIT_BF16).grad, "bf16")
        self.assertEqual(s.replace(param="f16").grad, "f16")
        self.assertEqual(rmsfuse.Storage("float16", "float32", "Q8_LINEAR").state, "q8_linear")
        c, lib = rmsfuse.Storage()._c(), rmsfuse._L.rmsfuse_storage_f32()
        self.assertEqual([getattr(c, f) for f, _ in c._fields_], [getattr(lib, f) for f, _ in lib._fields_])
        with self.assertRaisesRegex(ValueError, "cannot be q8"):
            rmsfuse.Storage(param="q8")
        with self.assertRaisesRegex(ValueError, "unknown storage type"):
            rmsfuse.Storage(state="int4")

    def test_step_typed_against_step(self):
        rng = np.random.default_rng(0)
        n = 700
        x = rmsfuse.convert_to_f32("bf16", rmsfuse.convert_from_f32("bf16", rng.standard_normal(n, np.float32)))
        g = rmsfuse.convert_to_f32("bf16", rmsfuse.convert_from_f32("bf16", rng.standard_normal(n, np.float32)))
        cfg = rmsfuse.Config.pytorch(lr=1e-2).replace(momentum=0.9, centered=True)
        p32, s32 = x.copy(), [np.zeros(n, np.float32) for _ in range(3)]
        rmsfuse.step(cfg, p32, g, *s32)
        # master weights, bf16 grads: the master is the float32 param
        pb, master = rmsfuse.convert_from_f32("bf16", x), x.copy()
        st = [np.zeros(n, np.float32) for _ in range(3)]
        rmsfuse.step_typed(cfg, rmsfuse.Storage("bf16", master_weights=True), pb, rmsfuse.convert_from_f32("bf16", g),
                           *st, param_extra=master)
        self.assertTrue(np.array_equal(master.view(np.uint32), p32.view(np.uint32)))
        self.assertTrue(np.array_equal(pb, rmsfuse.convert_from_f32("bf16", p32)))
        # split: exact
        hi, lo = rmsfuse.convert_from_f32("split_bf16", x)
        rmsfuse.step_typed(cfg, rmsfuse.Storage("split_bf16"), hi, rmsfuse.convert_from_f32("bf16", g),
                           *[np.zeros(n, np.float32) for _ in range(3)], param_extra=lo)
        self.assertTrue(np.array_equal(rmsfuse.convert_to_f32("split_bf16", (hi, lo)).view(np.uint32),
                                       p32.view(np.uint32)))
        # 8-bit state in a plan, run block by block, and step_multi_typed with a dict entry
        p1, p2 = x.copy(), x.copy()
        q1 = [rmsfuse.typed_zeros("q8", n) for _ in range(3)]
        q2 = [rmsfuse.typed_zeros("q8", n) for _ in range(3)]
        storage = rmsfuse.Storage(state="q8")
        with rmsfuse.Plan(cfg, [(p1, g, *q1)], storage=storage) as plan:
            self.assertEqual(plan.cut(1), 256)
            with self.assertRaises(rmsfuse.RmsfuseError) as e:
                plan.run(0, 100)
            self.assertEqual(e.exception.status, rmsfuse.E_BLOCK)
            plan.run(0, 512)
            plan.run(512)
        rmsfuse.step_multi_typed(cfg, storage, [dict(param=p2, grad=g, square_avg=q2[0], momentum_buf=q2[1],
                                                     grad_avg=q2[2], stream=7)])
        self.assertTrue(np.array_equal(p1, p2))
        for a, b in zip(q1, q2):
            self.assertTrue(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]))
        self.assertLess(np.abs(p1 - p32).max(), 0.01 * np.abs(p32).max())

    def test_typed_list_layouts(self):
        # Typed tensor lists are rows of 64-bit words on 64-bit machines, else ctypes structs: both
        # give the library the same list.
        import ctypes
        if ctypes.sizeof(ctypes.c_void_p) == 8:
            self.assertTrue(rmsfuse._TT_FLAT, "rmsfuse_typed_tensor is not 13 words on this 64-bit machine")
        results = []
        for flat in (True, False):
            saved, rmsfuse._TT_FLAT = rmsfuse._TT_FLAT, flat and rmsfuse._TT_FLAT
            try:
                ps = [np.linspace(-1, 1, n, dtype=np.float32) for n in (300, 5, 0, 1000)]
                qs = [[rmsfuse.typed_zeros("q8", p.size) for _ in range(2)] for p in ps]
                rmsfuse.step_multi_typed(rmsfuse.AdamConfig.pytorch(), rmsfuse.Storage(state="q8"),
                                         [(p, p * 0.5, *q) for p, q in zip(ps, qs)])
                results.append(ps)
            finally:
                rmsfuse._TT_FLAT = saved
        for a, b in zip(*results):
            self.assertTrue(np.array_equal(a, b) and (a.size == 0 or np.any(a != np.linspace(-1, 1, a.size))))

    def test_refusals_change_nothing(self):
        n = 300
        p, g = np.ones(n, np.float32), np.ones(n, np.float32)
        cfg = rmsfuse.AdamConfig.pytorch()
        q = [rmsfuse.typed_zeros("q8", n) for _ in range(2)]
        s = rmsfuse.Storage(state="q8")
        with self.assertRaisesRegex(TypeError, "pair"):
            rmsfuse.step_typed(cfg, s, p, g, np.zeros(n, np.float32), q[1])
        with self.assertRaisesRegex(ValueError, "scales must be a float32 array of ceil"):
            rmsfuse.step_typed(cfg, s, p, g, q[0], (q[1][0], np.zeros(1, np.float32)))
        with self.assertRaisesRegex(TypeError, "param must have dtype uint16"):
            rmsfuse.step_typed(cfg, rmsfuse.Storage("bf16"), p, g, *q)
        with self.assertRaisesRegex(TypeError, "param_extra is given"):
            rmsfuse.step_typed(cfg, s, p, g, *q, param_extra=p.copy())
        with self.assertRaises(rmsfuse.RmsfuseError) as e:
            rmsfuse.step_typed(cfg, rmsfuse.Storage(state="q8", master_weights=True), p, g, *q)
        self.assertEqual(e.exception.status, rmsfuse.E_STORAGE)
        self.assertEqual(rmsfuse.check_typed(cfg, s, p, g, *q), 0)
        self.assertTrue(np.all(p == 1) and all(not c.any() and not sc.any() for c, sc in q))

    def test_conversions(self):
        x = np.array([1.0, -2.5, 1e-3, 65519.0, 65520.0, np.inf, 0.0], np.float32)
        b = rmsfuse.convert_from_f32("bf16", x)
        self.assertTrue(np.array_equal(b.view(np.int16), torch.from_numpy(x).to(torch.bfloat16).view(torch.int16)
                                       .numpy()))
        h = rmsfuse.convert_from_f32(rmsfuse.F16, x)
        with np.errstate(over="ignore"):  # 65520 rounds to infinity in NumPy's cast too
            h16 = x.astype(np.float16)
        self.assertTrue(np.array_equal(h, h16.view(np.uint16)))
        self.assertTrue(np.array_equal(rmsfuse.convert_to_f32("f16", h), h16.astype(np.float32)))
        codes, scales = rmsfuse.convert_from_f32("q8", np.abs(x[:3]), nonneg=True)
        self.assertEqual((codes.dtype, scales.dtype, scales.shape), (np.uint8, np.float32, (1,)))
        self.assertEqual(scales[0], 2.5)
        back = rmsfuse.convert_to_f32("q8", (codes, scales), nonneg=True)
        self.assertTrue(np.all(np.abs(back - np.abs(x[:3])) <= 0.07 * np.abs(x[:3])))


class TestDocs(unittest.TestCase):
    def test_docs_section_snippets(self):
        # The ```py blocks of docs/python.md's "Storage types" section run as written.
        from test_numpy import run_snippet
        with open(os.path.join(REPO, "docs", "python.md")) as f:
            text = f.read()
        section = text.split("\n## Storage types\n", 1)[1].split("\n## ", 1)[0]
        blocks = [b.split("```")[0] for b in section.split("```py\n")[1:]]
        self.assertEqual(len(blocks), 2)
        for code in blocks:
            run_snippet(code)


if __name__ == "__main__":
    unittest.main()
