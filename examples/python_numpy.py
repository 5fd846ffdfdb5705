"""RMSProp steps on NumPy float32 arrays with rmsfuse (the README's Python example).

Run from a clone after building the library (cmake -S . -B build/release && cmake --build build/release):
    PYTHONPATH=python /usr/bin/python3 examples/python_numpy.py
"""
import numpy as np

import rmsfuse

param = np.array([1.0, -2.0, 0.5, 3.0], dtype=np.float32)
grad = np.array([0.1, -0.2, 0.3, 0.0], dtype=np.float32)
square_avg = np.zeros_like(param)  # optimizer state starts at zero

cfg = rmsfuse.Config.pytorch(lr=0.01)  # torch.optim.RMSprop(lr=0.01)
rmsfuse.step(cfg, param, grad, square_avg)  # in place, one pass
print(f"ISA {rmsfuse.active_isa()}, param after one step: {param}")

# Keras RMSprop, centred, with momentum: two tensors in one call.
cfg = rmsfuse.Config.keras(lr=1e-3)
cfg.momentum, cfg.centered = 0.9, True
weights = np.ones((3, 2), dtype=np.float32)
weights_grad = np.full((3, 2), 0.5, dtype=np.float32)
state = {name: [np.zeros_like(a) for _ in range(3)] for name, a in (("param", param), ("weights", weights))}
rmsfuse.step_multi(cfg, [(param, grad, *state["param"]),  # (param, grad, square_avg, momentum_buf, grad_avg)
                         (weights, weights_grad, *state["weights"])])
print(f"weights after a centred Keras step: {weights[0]}")

# Bad input raises and changes nothing.
try:
    rmsfuse.step(cfg, param, grad.astype(np.float64), *state["param"])
except TypeError as e:
    print(f"refused: {e}")
