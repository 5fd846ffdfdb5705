"""The generated ABI tables (python/rmsfuse/_abi.py) against the loaded library.

Run: /usr/bin/python3 tests/python/run.py test_abi   (ctest: python_abi; python_abi_uptodate
checks that the committed file is what scripts/gen_python_abi.py generates from the headers)

The generator reads the headers; these tests check that the library agrees:
every status code's name and text, every flag mask, and the layout of every
config and tensor struct, field by field, through calls whose answer depends
on where the library reads each field.
"""

import ctypes
import unittest

import numpy as np

import rmsfuse
from rmsfuse import _abi, _lib

L = _lib.lib

# For every config field: a value the library refuses, and the status it refuses it with.
# A field that is not here fails test_every_config_field_is_read_where_the_binding_writes_it:
# add it (and the library's rule for it) when a header gains a field.
BAD_FIELD = {
    "lr": (-1.0, "RMSFUSE_E_LR"),
    "alpha": (1.5, "RMSFUSE_E_ALPHA"),
    "eps": (-1.0, "RMSFUSE_E_EPS"),
    "weight_decay": (-1.0, "RMSFUSE_E_WEIGHT_DECAY"),
    "momentum": (-1.0, "RMSFUSE_E_MOMENTUM"),
    "lr_decay": (-1.0, "RMSFUSE_E_LR_DECAY"),
    "beta1": (1.0, "RMSFUSE_E_BETA1"),
    "beta2": (1.0, "RMSFUSE_E_BETA2"),
    "dampening": (1.5, "RMSFUSE_E_DAMPENING"),
    "step": (0, "RMSFUSE_E_STEP"),
    "flags": (1 << 30, "RMSFUSE_E_FLAGS"),
}
# The NULL status of each array when the configuration uses it.
NULL_STATUS = {"momentum_buf": "RMSFUSE_E_NULL_MOMENTUM_BUF", "grad_avg": "RMSFUSE_E_NULL_GRAD_AVG"}
STATUS = {name: value for name, value, _ in _abi.STATUS}


def preset(rule):
    """The rule's first preset, as a ctypes struct from the library."""
    return getattr(L, _abi.RULES[rule]["presets"][0][2])(0.01)


def using_every_array(rule):
    """A config (ctypes) of `rule` that uses every array of the rule."""
    c = preset(rule)
    if hasattr(c, "momentum"):
        c.momentum = 0.5
    c.flags |= {"rmsprop": rmsfuse.CENTERED, "adam": rmsfuse.AMSGRAD}.get(rule, 0)
    assert getattr(L, f"rmsfuse_{rule}_check_config")(ctypes.byref(c)) == 0, rule
    return c


class TestStatus(unittest.TestCase):
    def test_every_code_has_the_librarys_name_and_text(self):
        self.assertGreater(len(_abi.STATUS), 20)
        for name, value, text in _abi.STATUS:
            with self.subTest(name=name):
                self.assertEqual(L.rmsfuse_status_name(value).decode(), name)
                self.assertEqual(L.rmsfuse_strerror(value).decode(), text)
                self.assertEqual(rmsfuse.status_name(value), name)
                self.assertEqual(getattr(rmsfuse, name[len("RMSFUSE_"):]), value)
        below = min(v for _, v, _ in _abi.STATUS) - 1
        self.assertIsNone(L.rmsfuse_status_name(below), "the library knows a code the header table lacks")
        above = max(v for _, v, _ in _abi.STATUS) + 1
        self.assertIsNone(L.rmsfuse_status_name(above), "the library knows a code the header table lacks")

    def test_error_carries_the_generated_name(self):
        e = rmsfuse.RmsfuseError(STATUS["RMSFUSE_E_BETA2"])
        self.assertEqual((e.name, str(e)), ("RMSFUSE_E_BETA2", "RMSFUSE_E_BETA2: beta2 is outside [0, 1)"))


class TestFlags(unittest.TestCase):
    def test_public_names(self):
        flags = {n: v for n, v, _ in _abi.FLAGS}
        self.assertEqual((rmsfuse.CENTERED, rmsfuse.EPS_IN_SQRT, rmsfuse.LR_IN_MOMENTUM, rmsfuse.MAXIMIZE),
                         (1, 2, 4, 8))
        for n, v in flags.items():
            self.assertEqual(getattr(rmsfuse, n), v)
        self.assertEqual(rmsfuse.ALL_FLAGS, rmsfuse.RMSPROP_FLAGS)

    def test_each_rule_accepts_exactly_its_mask(self):
        # A bit outside the rule's mask is refused with E_FLAGS; a bit inside may be refused
        # only for another reason (NESTEROV without momentum, ...), never as unknown.
        for rule, spec in _abi.RULES.items():
            check = getattr(L, f"rmsfuse_{rule}_check_config")
            for bit in range(32):
                c = preset(rule)
                c.flags = 1 << bit
                st = check(ctypes.byref(c))
                with self.subTest(rule=rule, bit=bit):
                    if spec["flags"] & (1 << bit):
                        self.assertNotEqual(st, STATUS["RMSFUSE_E_FLAGS"])
                    else:
                        self.assertEqual(st, STATUS["RMSFUSE_E_FLAGS"])


class TestStructs(unittest.TestCase):
    def test_presets_return_through_the_generated_struct(self):
        # By-value returns: the struct's size and layout decide what ctypes reads.  Every preset
        # also sets FLUSH_SUBNORMAL (docs/math.md).
        fl = rmsfuse.FLUSH_SUBNORMAL
        want = {"rmsfuse_adam_pytorch": dict(lr=0.25, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, step=1,
                                             flags=fl),
                "rmsfuse_adamw_keras": dict(lr=0.25, eps=1e-7, weight_decay=0.004, step=1,
                                            flags=rmsfuse.EPS_HAT | rmsfuse.DECOUPLED_DECAY | fl),
                "rmsfuse_adagrad_keras": dict(lr=0.25, lr_decay=0.0, eps=1e-7, step=1,
                                              flags=rmsfuse.EPS_IN_SQRT | fl),
                "rmsfuse_sgd_keras": dict(lr=0.25, momentum=0.0, dampening=0.0, flags=rmsfuse.LR_IN_MOMENTUM | fl),
                "rmsfuse_rmsprop_tensorflow": dict(lr=0.25, alpha=0.9, eps=1e-10, momentum=0.0,
                                                   flags=rmsfuse.EPS_IN_SQRT | rmsfuse.LR_IN_MOMENTUM | fl)}
        for fn, fields in want.items():
            c = getattr(L, fn)(0.25)
            self.assertEqual({k: getattr(c, k) for k in fields}, fields, fn)
        for rule, spec in _abi.RULES.items():
            for _, _, fn, _ in spec["presets"]:
                self.assertTrue(getattr(L, fn)(0.25).flags & fl, f"{fn} does not set FLUSH_SUBNORMAL")

    def test_every_config_field_is_read_where_the_binding_writes_it(self):
        for rule, spec in _abi.RULES.items():
            check = getattr(L, f"rmsfuse_{rule}_check_config")
            for field, _ in spec["config"]._fields_:
                self.assertIn(field, BAD_FIELD, f"{rule}: no probe for the field {field!r}")
                c = preset(rule)
                value, status = BAD_FIELD[field]
                setattr(c, field, value)
                with self.subTest(rule=rule, field=field):
                    self.assertEqual(rmsfuse.status_name(check(ctypes.byref(c))), status)

    def test_tensor_struct_size_through_a_plan(self):
        # A plan over several tensors counts sum(n): the library reads each n at its stride.
        for rule, spec in _abi.RULES.items():
            T = spec["tensor"]
            sizes = (3, 5, 11, 2)
            arrays = [[np.zeros(n, np.float32) for _ in spec["arrays"]] for n in sizes]
            lst = (T * len(sizes))(*[T(*[a.ctypes.data for a in arrs], n) for arrs, n in zip(arrays, sizes)])
            c = using_every_array(rule)
            h = ctypes.c_void_p()
            st = getattr(L, f"rmsfuse_{rule}_plan")(ctypes.byref(c), lst, len(sizes), ctypes.byref(h))
            self.assertEqual(st, 0, rule)
            try:
                self.assertEqual(L.rmsfuse_plan_elements(h), sum(sizes), rule)
                self.assertEqual(L.rmsfuse_plan_run(h, 0, sum(sizes)), 0)
            finally:
                L.rmsfuse_plan_free(h)

    def test_every_tensor_field_is_read_where_the_binding_writes_it(self):
        # NULL in one array field (the others valid) is reported as that array's NULL status;
        # param's address in it is an overlap; and the same through step() with the fields
        # as arguments, in the order of the generated parameter names.
        for rule, spec in _abi.RULES.items():
            T = spec["tensor"]
            names = [n for n, _ in spec["arrays"]]
            c = using_every_array(rule)
            multi = getattr(L, f"rmsfuse_{rule}_check_multi")
            single = getattr(L, f"rmsfuse_{rule}_check")
            self.assertEqual(list(_abi.FUNCTIONS[f"rmsfuse_{rule}_check"][3]), ["cfg"] + names + ["n"])
            arrays = [np.zeros(8, np.float32) for _ in names]
            for i, name in enumerate(names):
                ptrs = [a.ctypes.data for a in arrays]
                ptrs[i] = None
                want = NULL_STATUS.get(name, "RMSFUSE_E_NULL_ARRAY")
                with self.subTest(rule=rule, field=name):
                    t = T(*ptrs, 8)
                    self.assertEqual(rmsfuse.status_name(multi(ctypes.byref(c), ctypes.byref(t), 1)), want)
                    self.assertEqual(rmsfuse.status_name(single(ctypes.byref(c), *ptrs, 8)), want)
                    if i > 0:
                        ptrs[i] = arrays[0].ctypes.data
                        t = T(*ptrs, 8)
                        self.assertEqual(rmsfuse.status_name(multi(ctypes.byref(c), ctypes.byref(t), 1)),
                                         "RMSFUSE_E_OVERLAP")

    def test_rows_are_the_struct_layout(self):
        # The binding passes tensor lists as rows of words: the generated Structure's layout.
        for rule, spec in _abi.RULES.items():
            T = spec["tensor"]
            self.assertEqual(ctypes.sizeof(T), ctypes.sizeof(ctypes.c_void_p) * len(T._fields_))


if __name__ == "__main__":
    unittest.main()
