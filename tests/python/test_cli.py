"""The command line (python/rmsfuse/cli.py): python3 -m rmsfuse info / selftest / bench.

Run: /usr/bin/python3 tests/python/run.py test_cli   (ctest: python_cli)
"""

import contextlib
import ctypes
import importlib.util
import io
import json
import os
import subprocess
import sys
import unittest
from unittest import mock

import numpy as np

import rmsfuse
from rmsfuse import cli

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(rmsfuse.__file__)))


def run_cli(*args, **env):
    """`python3 -m rmsfuse ARGS` in a child process with this package and library: (status, stdout, stderr)."""
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([PKG_PARENT] + ([e["PYTHONPATH"]] if e.get("PYTHONPATH") else []))
    e.setdefault("RMSFUSE_LIBRARY", rmsfuse.library_path)
    e.pop("RMSFUSE_ISA", None)
    e.update(env)
    r = subprocess.run([sys.executable, "-m", "rmsfuse"] + list(args), capture_output=True, text=True, env=e,
                       timeout=120)
    return r.returncode, r.stdout, r.stderr


def call(*args):
    """cli.main(ARGS) in this process: (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(list(args))
    return status, out.getvalue(), err.getvalue()


def f32(*bits):
    return np.array(bits, dtype=np.uint32).view(np.float32)


class TestCompare(unittest.TestCase):
    """bit_differences: the selftest's comparison, as the C tests compare."""

    def test_flags_every_difference_but_nan_against_nan(self):
        one = f32(0x3f800000)
        cases = [
            (one, f32(0x3f800001), True),                    # one ulp
            (f32(0x7fc00000), one, True),                    # NaN vs a number
            (one, f32(0x7fc00000), True),
            (f32(0x00000000), f32(0x80000000), True),        # +0 vs -0
            (f32(0x7f800000), f32(0xff800000), True),        # +Inf vs -Inf
            (f32(0x7f800000), f32(0x7fc00000), True),        # Inf vs NaN
            (f32(0x00000001), f32(0x00000000), True),        # a subnormal vs 0
            (f32(0x7fc00000), f32(0xffc00000), False),       # NaN vs NaN, either sign or payload
            (f32(0x7fc00000), f32(0x7f800001), False),
            (f32(0x7fc00001), f32(0x7fc00000), False),
            (one, one.copy(), False),
        ]
        for ref, got, flagged in cases:
            with self.subTest(ref=hex(ref.view(np.uint32)[0]), got=hex(got.view(np.uint32)[0])):
                self.assertEqual(len(cli.bit_differences(ref, got)) > 0, flagged)

    def test_indices(self):
        ref = np.linspace(-3, 3, 1001).astype(np.float32)
        got = ref.copy()
        got[[5, 500, 999]] = [np.nextafter(got[5], np.float32(9)), -got[500], np.nan]
        ref[7] = got[7] = np.nan
        self.assertEqual(cli.bit_differences(ref, got).tolist(), [5, 500, 999])  # 500: 0 -> -0
        self.assertEqual(len(cli.bit_differences(ref, ref.copy())), 0)
        self.assertEqual(len(cli.bit_differences(np.zeros(0, np.float32), np.zeros(0, np.float32))), 0)
        with self.assertRaises(ValueError):
            cli.bit_differences(ref, got[:3])


class TestInfo(unittest.TestCase):
    def test_text(self):
        status, out, err = run_cli("info")
        self.assertEqual(status, 0, err)
        self.assertEqual(err, "")
        self.assertIn(f"rmsfuse {rmsfuse.version()}", out)
        self.assertIn(f"ISA in use: {rmsfuse.active_isa()}", out)
        self.assertRegex(out, r"why: detection: ")
        for name in rmsfuse.isa_names():
            self.assertIn(name + " (", out)
        for var in cli.ENV_VARS:
            self.assertIn(var, out)
        self.assertRegex(out, "Thread pool: (not )?available")

    def test_json(self):
        status, out, err = run_cli("info", "--json")
        self.assertEqual(status, 0, err)
        d = json.loads(out)
        self.assertEqual(set(d), {"rmsfuse", "isa", "cpu", "topology", "environment", "python"})
        self.assertEqual(d["rmsfuse"]["version"], rmsfuse.version())
        self.assertEqual(os.path.realpath(d["rmsfuse"]["library"]), os.path.realpath(rmsfuse.library_path))
        self.assertEqual(d["rmsfuse"]["pool_available"], rmsfuse.pool_available())
        isa = d["isa"]
        self.assertEqual([c["name"] for c in isa["compiled"]], rmsfuse.isa_names())
        self.assertEqual([c["usable"] for c in isa["compiled"]],
                         [rmsfuse.isa_supported(n) for n in rmsfuse.isa_names()])
        self.assertEqual([c["name"] for c in isa["compiled"] if c["active"]], [isa["active"]])
        self.assertEqual(isa["how"], "detection")
        self.assertEqual(isa["env_status"]["name"], "RMSFUSE_OK")
        self.assertEqual(set(d["environment"]), set(cli.ENV_VARS))
        self.assertIsNone(d["environment"]["RMSFUSE_ISA"])
        t = d["topology"]
        self.assertEqual(t["os_cpus"], os.cpu_count())
        if t["source"]:  # hwloc or sysfs
            self.assertGreaterEqual(t["cores"], 1)
            self.assertGreaterEqual(t["pus"], t["cores"])
            for c in t["caches"]:
                self.assertIn(c["level"], range(1, 6))
                self.assertGreater(c["size"], 0)
        if rmsfuse.pool_available():
            self.assertEqual(t["source"], "hwloc")
            self.assertEqual(t["usable_cores"], rmsfuse.machine_cores())
        self.assertIn("machine", d["cpu"])

    def test_hwloc_and_sysfs_agree(self):
        hw = cli._topology_hwloc()
        fs = cli._topology_sysfs()
        if hw is None or fs is None:
            self.skipTest("needs the pool library and Linux sysfs")
        self.assertEqual((hw["cores"], hw["pus"]), (fs["cores"], fs["pus"]))
        if 0 not in os.sched_getaffinity(0):  # hwloc's caches are the first usable core's, sysfs' cpu0's
            return
        if not fs["caches"]:  # a VM whose sysfs has no cpu0/cache (seen on a Zen 5 KVM); hwloc reads CPUID
            return
        levels = {c["level"] for c in hw["caches"]}
        self.assertEqual({c["level"]: c["size"] for c in hw["caches"]},
                         {c["level"]: c["size"] for c in fs["caches"] if c["level"] in levels})

    def test_why_the_isa(self):
        usable = [n for n in rmsfuse.isa_names() if rmsfuse.isa_supported(n)]
        forced = usable[0]
        d = json.loads(run_cli("info", "--json", RMSFUSE_ISA=forced)[1])
        self.assertEqual((d["isa"]["active"], d["isa"]["how"]), (forced, "forced"))
        self.assertEqual(d["environment"]["RMSFUSE_ISA"], forced)
        self.assertIn(f"forced by RMSFUSE_ISA={forced}", d["isa"]["reason"])
        d = json.loads(run_cli("info", "--json", RMSFUSE_ISA="bogus")[1])
        self.assertEqual(d["isa"]["how"], "env-ignored")
        self.assertEqual(d["isa"]["env_status"]["name"], "RMSFUSE_E_UNKNOWN_ISA")
        self.assertIn("RMSFUSE_ISA='bogus' was ignored (RMSFUSE_E_UNKNOWN_ISA", d["isa"]["reason"])
        unusable = [n for n in rmsfuse.isa_names() if not rmsfuse.isa_supported(n)]
        if unusable:
            d = json.loads(run_cli("info", "--json", RMSFUSE_ISA=unusable[0])[1])
            self.assertEqual(d["isa"]["env_status"]["name"], "RMSFUSE_E_ISA_UNSUPPORTED")


class TestSelftest(unittest.TestCase):
    def tearDown(self):
        rmsfuse.set_isa("auto")

    def simd(self):
        simd = [n for n in rmsfuse.isa_names() if n != "scalar" and rmsfuse.isa_supported(n)]
        if not simd:
            self.skipTest("no SIMD path is usable here")
        return simd

    def test_quick(self):
        status, out, err = run_cli("selftest", "--quick")
        self.assertEqual(status, 0, out + err)
        simd = self.simd()
        self.assertRegex(out, rf"^selftest: 4 rules x \d+ configurations x {len(simd)} ISAs? \({', '.join(simd)}\), "
                              r"16,384 elements each: all bit-identical to scalar\n")

    def test_restores_the_active_isa(self):
        simd = self.simd()
        rmsfuse.set_isa(simd[0])
        status, out, _ = call("selftest", "--quick", "--quiet", "--elements", "300")
        self.assertEqual(status, 0, out)
        self.assertEqual(rmsfuse.active_isa(), simd[0])

    def test_catches_a_difference(self):
        # The library's step, with one element of one SIMD path's output one ulp off: exit 1, the rule,
        # configuration, ISA, array, element and both values printed.
        simd = self.simd()
        rule = rmsfuse._RULES["adam"]
        real = rule.step_multi

        def off_by_one_ulp(cfg, rows_addr, n):
            status = real(cfg, rows_addr, n)
            if rmsfuse.active_isa() == simd[-1] and n:
                words = len(rule.arrays) + 1
                rows = np.ctypeslib.as_array(ctypes.cast(rows_addr, ctypes.POINTER(ctypes.c_size_t)),
                                             shape=(n * words,)).reshape(n, words)
                t = int(np.argmax(rows[:, -1] >= 10))
                p = np.ctypeslib.as_array(ctypes.cast(int(rows[t, 0]), ctypes.POINTER(ctypes.c_uint32)), shape=(10,))
                p[9] ^= 1  # param, element 9 of the first tensor with 10 elements or more
            return status
        before = rmsfuse.active_isa()
        with mock.patch.object(rule, "step_multi", off_by_one_ulp):
            status, out, _ = call("selftest", "--quiet", "--elements", "2000", "--isa", simd[-1])
        self.assertEqual(status, 1, out)
        self.assertRegex(out, rf"selftest: DIFFERENCE adam AdamConfig\(.*\), 2 step\(s\), ISA {simd[-1]}: "
                              r"param\[tensor \d+ \(n=\d+\) element 9\]: scalar 0x[0-9a-f]{8} .*, "
                              rf"{simd[-1]} 0x[0-9a-f]{{8}} .*; inputs: param=.*grad=")
        self.assertRegex(out, r"DIFFERENCE\(S\) from scalar")
        self.assertEqual(rmsfuse.active_isa(), before)

    def test_every_flag_on_and_off(self):
        for rule in rmsfuse.RULES:
            cfgs = cli.rule_configurations(rule)
            mask = rmsfuse._RULES[rule].flag_mask
            on = {b for c in cfgs for b in range(32) if c.flags >> b & 1}
            self.assertEqual(sum(1 << b for b in on), mask, rule)
            self.assertTrue(any(c.flags == 0 for c in cfgs))
            for c in cfgs:
                c.validate()

    def test_layout_covers_heads_and_tails(self):
        sizes = cli.tensor_sizes(200000, np.random.default_rng(0))
        self.assertEqual(int(sizes.sum()), 200000)
        self.assertTrue(set(range(65)) <= set(sizes.tolist()))
        self.assertGreaterEqual(int(sizes.max()), 65536)

    def test_bad_isa(self):
        self.assertEqual(call("selftest", "--isa", "avx9000")[0], 2)


@unittest.skipIf(importlib.util.find_spec("torch") is None, "needs PyTorch")
class TestBench(unittest.TestCase):
    def test_quick(self):
        status, out, err = run_cli("bench", "--quick")
        self.assertEqual(status, 0, out + err)
        self.assertRegex(out, r"config +threads +rmsfuse +torch loop +torch foreach +vs loop +vs foreach +bound")
        for cname in cli.BENCH_DEFAULT.split(","):
            self.assertRegex(out, rf"\n{cname} +1 +[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+x +[\d.]+x +\d+/\d+ = [\d.]+x")

    def test_without_torch(self):
        with mock.patch.dict(sys.modules, {"torch": None}):
            status, out, err = call("bench", "--quick")
        self.assertEqual(status, 2)
        self.assertIn("needs PyTorch", err)

    def test_unknown_config(self):
        status, _, err = call("bench", "--configs", "adam,lion")
        self.assertEqual(status, 2)
        self.assertIn("lion", err)


class TestUsage(unittest.TestCase):
    def test_help_and_errors(self):
        for cmd in ([], ["info"], ["selftest"], ["bench"]):
            status, out, _ = call(*cmd, "--help")
            self.assertEqual(status, 0)
            self.assertIn("usage:", out)
        status, _, err = call("frobnicate")
        self.assertEqual(status, 2)
        self.assertIn("usage:", err)
        self.assertIn("invalid choice", err)
        status, _, err = call()
        self.assertEqual(status, 2)
        self.assertIn("usage:", err)
        self.assertEqual(call("selftest", "--elements", "0")[0], 2)

    def test_module_entry_point(self):
        status, out, err = run_cli("nonsense")
        self.assertEqual(status, 2)
        self.assertIn("usage: python3 -m rmsfuse", err)


if __name__ == "__main__":
    unittest.main()
