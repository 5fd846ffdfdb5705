"""bench/python_bench.py runs every drop-in (--quick: the first 20 tensors of ResNet-50) and writes its report.

It checks that the benchmark works, not how fast anything is (scripts/bench.sh measures).
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import rmsfuse

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class TestBench(unittest.TestCase):
    def test_quick_run_writes_json_and_markdown(self):
        with tempfile.TemporaryDirectory() as out:
            env = dict(os.environ, RMSFUSE_LIBRARY=rmsfuse.library_path)
            r = subprocess.run([sys.executable, os.path.join(REPO, "bench", "python_bench.py"), "--quick",
                                "--out", out], env=env, capture_output=True, text=True, timeout=600)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(os.path.join(out, "python_bench.json")) as f:
                data = json.load(f)
            with open(os.path.join(out, "python.md")) as f:
                md = f.read()
        rows = data["results"]
        # Every drop-in, and the traffic bounds derived pass by pass (torch 1.13's loop / fused):
        # Adam 80/28, AdamW with weight decay 88/28, Adagrad 44/20, SGD with momentum 32/20.
        bytes_ = {r["config"]: (r["optimizer"], r["bytes_torch"], r["bytes_fused"]) for r in rows}
        self.assertEqual(bytes_, {"rmsprop": ("RMSprop", 52, 20), "rmsprop momentum": ("RMSprop", 72, 28),
                                  "adagrad": ("Adagrad", 44, 20), "sgd momentum": ("SGD", 32, 20),
                                  "adam": ("Adam", 80, 28), "adamw wd": ("AdamW", 88, 28)})
        for row in rows:
            self.assertEqual(set(row["median"]), {"rmsfuse", "torch loop", "torch foreach"})
            self.assertTrue(all(t > 0 for t in row["median"].values()))
            self.assertIn(f"| {row['bytes_torch']}/{row['bytes_fused']} = {row['bound']:.2f}x |", md)
        self.assertIn("| ResNet-50 (torchvision): 20 tensors", md)
        self.assertIn(md.strip(), r.stdout)


if __name__ == "__main__":
    unittest.main()
