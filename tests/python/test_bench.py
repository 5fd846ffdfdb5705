"""bench/python_bench.py runs every drop-in (--quick: the first 20 tensors of ResNet-50) and writes its report;
its sparse-gradients mode runs too (--quick --sparse-only, one configuration), its training-step
mode (--quick --train-only, two configurations) and its bf16-model mode (--quick --storage-only, two
configurations).

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
    def run_bench(self, *args):
        """bench/python_bench.py --quick with args: the finished process, its JSON and its Markdown."""
        with tempfile.TemporaryDirectory() as out:
            env = dict(os.environ, RMSFUSE_LIBRARY=rmsfuse.library_path)
            r = subprocess.run([sys.executable, os.path.join(REPO, "bench", "python_bench.py"), "--quick", *args,
                                "--out", out], env=env, capture_output=True, text=True, timeout=600)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(os.path.join(out, "python_bench.json")) as f:
                data = json.load(f)
            with open(os.path.join(out, "python.md")) as f:
                md = f.read()
        return r, data, md

    def test_quick_run_writes_json_and_markdown(self):
        r, data, md = self.run_bench()
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

    def test_quick_sparse_run(self):
        # The sparse-gradients mode (--sparse-only here; scripts/bench.sh passes --sparse): one
        # configuration, 0 and 50 % zeros, the quick sizes (a warm-up of at most 200 steps); every
        # implementation timed, slowdowns against the 0 % rows; records in bench/report.py's format.
        r, data, md = self.run_bench("--sparse-only", "--sparse-configs", "rmsprop momentum", "--sparse-zeros", "0,50")
        self.assertEqual(data["results"], [])
        recs = data["sparse"]
        impls = ["drop-in", "drop-in exact", "torch loop", "torch loop FTZ"]
        self.assertEqual(len(recs), 2 * 2 * 4)  # shares x sizes x implementations
        self.assertEqual({(x["size"], x["elements"]) for x in recs}, {("quick, small", 8192), ("quick, larger", 32768)})
        for x in recs:
            # bench/report.py's fields (load_python_sparse)
            self.assertEqual((x["rule"], x["optimizer"]), ("rmsprop", "RMSprop"))
            self.assertIn(x["impl"], impls)
            self.assertIn(x["zero_pct"], (0, 50))
            self.assertTrue(x["best"] > 0 and x["median"] >= x["best"])
            self.assertNotIn("ns_per_elem", x)  # the report takes best or median, as its statistic
            self.assertGreater(x["warmup_steps"], 0)
            if x["impl"] in ("drop-in", "torch loop FTZ"):
                self.assertEqual(x["subnormal_share"], 0.0)
            if x["zero_pct"] == 0:
                self.assertEqual((x["slowdown_best"], x["slowdown_median"]), (1.0, 1.0))
        self.assertRegex(md, r"^## PyTorch drop-ins: sparse gradients\n")
        self.assertIn("| quick, larger: 2 × 16,384 | rmsprop momentum (`RMSprop(momentum=0.9)`) | 50% |", md)
        self.assertIn(md.strip(), r.stdout)
    def test_quick_storage_run(self):
        # The bf16-model mode (--storage-only; scripts/bench.sh passes --storage): two configurations,
        # every implementation timed at each thread count, the speed-ups and each optimizer's state
        # bytes per parameter (bf16 state 2 per array; float32 master 4 plus 4 per array; 8-bit
        # state 1 + 4/256 per array; torch's master loop also keeps the masters' float32 gradients).
        r, data, md = self.run_bench("--storage-only", "--storage-configs", "rmsprop momentum,adamw wd")
        self.assertEqual(data["results"], [])
        rows = data["storage"]
        self.assertEqual({x["config"] for x in rows}, {"rmsprop momentum", "adamw wd"})
        impls = {"rmsfuse bf16", "torch bf16 loop", "torch bf16 foreach", "rmsfuse fp32 master",
                 "torch fp32 master", "rmsfuse fp32 master + q8"}
        for x in rows:
            self.assertEqual(set(x["median"]), impls)
            self.assertTrue(all(t > 0 for t in x["median"].values()))
            self.assertEqual(len(x["speedup"]), 4)
            mem = x["state_bytes_per_param"]
            self.assertAlmostEqual(mem["rmsfuse bf16"], 4.0)
            self.assertAlmostEqual(mem["torch bf16 loop"], 4.0)
            self.assertAlmostEqual(mem["rmsfuse fp32 master"], 12.0)
            self.assertAlmostEqual(mem["torch fp32 master"], 16.0)
            self.assertGreater(mem["rmsfuse fp32 master + q8"], 6.0)
            self.assertLess(mem["rmsfuse fp32 master + q8"], 6.1)
        self.assertRegex(md, r"^## PyTorch drop-ins: a bf16 model\n")
        self.assertIn("| ResNet-50 (torchvision): 20 tensors", md)
        self.assertIn(md.strip(), r.stdout)

    def test_quick_train_run(self):
        # The training-step mode (--train-only; scripts/bench.sh passes --train): two configurations,
        # every implementation timed, the traffic bounds (torch's sequence adds 20 bytes per element,
        # rmsfuse's the norm's 4) in the JSON and the Markdown.
        r, data, md = self.run_bench("--train-only", "--configs", "adam,sgd momentum")
        self.assertEqual(data["results"], [])
        rows = data["train"]
        self.assertEqual({x["config"] for x in rows}, {"adam", "sgd momentum"})
        want = {"adam": (100, 32, 28), "sgd momentum": (52, 24, 20)}
        for x in rows:
            self.assertEqual(set(x["median"]), {"rmsfuse train", "rmsfuse step", "torch loop", "torch foreach"})
            self.assertTrue(all(t > 0 for t in x["median"].values()))
            self.assertEqual((x["bytes_torch_train"], x["bytes_fused_train"], x["bytes_fused_step"]),
                             want[x["config"]])
            bt, bf = x["bytes_torch_train"], x["bytes_fused_train"]
            self.assertIn(f"| {bt}/{bf} = {bt / bf:.2f}x |", md)
        self.assertRegex(md, r"^## PyTorch drop-ins: the training step\n")
        self.assertIn(md.strip(), r.stdout)


if __name__ == "__main__":
    unittest.main()
