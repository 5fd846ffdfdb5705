"""What examples/train_digits.py and examples/train_charlm.py share: the curves' comparison and
smoothing, and the CPU's name for the tables."""
import numpy as np


def rel_diff(a, b):
    """The largest relative difference of two curves."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))


def smooth(v, k):
    """Running mean over the last k values (k at most len(v))."""
    c = np.cumsum(np.insert(np.asarray(v, dtype=np.float64), 0, 0.0))
    i = np.arange(1, len(v) + 1)
    lo = np.maximum(i - k, 0)
    return (c[i] - c[lo]) / (i - lo)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"
