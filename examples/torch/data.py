"""Four binary classification tasks over one input space, seeded. t0 is the few-shot target;
t1 and t3 share most of its structure (their label directions are close to t0's), t2 does not."""
import argparse

import numpy as np

p = argparse.ArgumentParser()
p.add_argument('--seed', type=int, default=0)
p.add_argument('--out', required=True)
args = p.parse_args()

rng = np.random.default_rng(args.seed)
dims, feats = 16, 24
features = rng.normal(size=(feats, dims)) / np.sqrt(dims)
base = rng.normal(size=feats)
directions = {
    't0': base,
    't1': base + 0.4 * rng.normal(size=feats),
    't2': rng.normal(size=feats),
    't3': base + 0.5 * rng.normal(size=feats),
}
sizes = {'t0': {'train': 40, 'dev': 200, 'test': 2000}}
arrays = {}
for task, w in directions.items():
    for split, n in sizes.get(task, {'train': 1000, 'dev': 200, 'test': 200}).items():
        x = rng.normal(size=(n, dims)).astype(np.float32)
        y = (np.tanh(x @ features.T) @ w > 0).astype(np.int64)
        arrays[f'{task}.{split}.x'] = x
        arrays[f'{task}.{split}.y'] = y
np.savez(args.out, **arrays)
