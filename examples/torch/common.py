"""What the example's scripts share: the model, its directory layout, the data."""
import json
import os

import numpy as np

# Deterministic cuBLAS needs this set before CUDA starts (only read on a GPU).
os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
import torch  # noqa: E402

from safetensors_io import load, save  # noqa: E402

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

# A stage given a GPU (resources: { gpu: 1 }) sees only its own in CUDA_VISIBLE_DEVICES: cuda:0.
DEVICE = torch.device('cuda' if torch.cuda.is_available() else 'cpu')


class Model(torch.nn.Module):
    """An encoder shared by every task and one linear head per task, as DFWE's experts have."""

    def __init__(self, dims, hidden, tasks):
        super().__init__()
        self.encoder = torch.nn.Sequential(torch.nn.Linear(dims, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, hidden), torch.nn.Tanh())
        self.heads = torch.nn.ModuleDict({t: torch.nn.Linear(hidden, 2) for t in tasks})

    def forward(self, x, task):
        return self.heads[task](self.encoder(x))


def save_model(model, out):
    """A Hugging Face style directory: config.json beside model.safetensors."""
    os.makedirs(out, exist_ok=True)
    config = {'dims': model.encoder[0].in_features, 'hidden': model.encoder[0].out_features, 'tasks': sorted(model.heads)}
    with open(os.path.join(out, 'config.json'), 'w') as f:
        json.dump(config, f, indent=2, sort_keys=True)
    save(os.path.join(out, 'model.safetensors'), model.state_dict(), {'format': 'pt'})


def load_model(path):
    with open(os.path.join(path, 'config.json')) as f:
        config = json.load(f)
    model = Model(config['dims'], config['hidden'], config['tasks'])
    model.load_state_dict(load(os.path.join(path, 'model.safetensors')))
    return model


def load_split(data, task, split):
    d = np.load(data)
    return torch.from_numpy(d[f'{task}.{split}.x']), torch.from_numpy(d[f'{task}.{split}.y'])


def accuracy_and_loss(model, x, y, task):
    with torch.no_grad():
        logits = model(x, task)
        return (logits.argmax(1) == y).float().mean().item() * 100, torch.nn.functional.cross_entropy(logits, y).item()
