#!/usr/bin/env python3
"""Runs one Python test module with unittest, for ctest.

usage: run.py MODULE [unittest options]     e.g. run.py test_numpy -v

The repository's python/ folder comes first on sys.path, so the package under
test is the clone's.  The library is found as the package finds it
(RMSFUSE_LIBRARY, which ctest sets to the build tree's, then the build folders;
docs/python.md).  Exit status: 0 passed, 1 failed, 77 skipped (NumPy, or for
the torch tests PyTorch, is not installed: Debian python3-numpy, python3-torch).
"""
import importlib.util
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
NEEDS = {"test_numpy": ["numpy"], "test_abi": ["numpy"], "test_torch": ["numpy", "torch"],
         "test_accuracy": ["numpy", "torch"], "test_examples": ["numpy", "torch"], "test_bench": ["numpy", "torch"],
         "test_subnormal": ["numpy", "torch"], "test_grad": ["numpy", "torch"], "test_distributed": ["numpy", "torch"],
         "test_cli": ["numpy", "torch"], "test_storage_numpy": ["numpy"], "test_storage_torch": ["numpy", "torch"],
         "test_training_examples": ["numpy", "torch", "sklearn", "matplotlib"]}


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in NEEDS:
        sys.exit(f"usage: run.py {{{','.join(NEEDS)}}} [unittest options]")
    module = sys.argv[1]
    missing = [m for m in NEEDS[module] if importlib.util.find_spec(m) is None]
    if missing:
        print(f"{module}: skipped, not installed: {', '.join(missing)} "
              f"(Debian: {' '.join('python3-' + m for m in missing)})")
        sys.exit(77)
    sys.path[:0] = [os.path.join(REPO, "python"), HERE]
    prog = unittest.main(module=module, argv=[f"run.py {module}"] + sys.argv[2:], exit=False)
    sys.exit(0 if prog.result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
