"""rmsfuse.torch.RMSprop as a drop-in torch.optim.RMSprop (the README's PyTorch example).

    PYTHONPATH=python /usr/bin/python3 examples/python_torch.py
"""
import torch

from rmsfuse.torch import RMSprop

torch.manual_seed(0)
x = torch.randn(256, 8)
y = x.sum(dim=1, keepdim=True)
model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))

opt = RMSprop(model.parameters(), lr=1e-3, momentum=0.9)  # was: torch.optim.RMSprop(...)
for step in range(200):
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    if step == 0:
        print(f"loss at the start: {loss.item():.4f}")
    loss.backward()
    opt.step()  # one fused C call for all four parameter tensors
print(f"loss after 200 steps: {loss.item():.4f}")
print(f"state of the first weight: {sorted(opt.state[model[0].weight])}, step {opt.state[model[0].weight]['step']}")
