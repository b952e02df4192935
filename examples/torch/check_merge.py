"""Checks dfwe's merged checkpoint from the Python side, with a reader written from the format's
description: every tensor is Σ αᵢ θᵢ of the finetuned models, with the α the search chose."""
import json
import os
import sys

import torch

from safetensors_io import load

search, merged, out, models = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
with open(search) as f:
    alpha = json.load(f)['weights'][0]
thetas = [load(os.path.join(m, 'model.safetensors')) for m in models]
result = load(os.path.join(merged, 'model.safetensors'))
worst = 0.0
for name, tensor in result.items():
    expected = sum(a * t[name].double() for a, t in zip(alpha, thetas))
    worst = max(worst, (tensor.double() - expected).abs().max().item())
assert worst < 1e-6, f'merged tensors differ from sum(alpha_i theta_i) by up to {worst}'
assert json.load(open(os.path.join(merged, 'config.json'))) == json.load(open(os.path.join(models[0], 'config.json'))), 'config.json copied'
with open(out, 'w') as f:
    f.write(f'merged = sum(alpha_i theta_i) for {len(result)} tensors (largest difference {worst:.2e}); alpha = {[round(a, 4) for a in alpha]}\n')
