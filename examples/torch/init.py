"""The seeded base model every expert and the baseline start from (no task heads yet)."""
import argparse

import torch

from common import Model, save_model

p = argparse.ArgumentParser()
p.add_argument('--seed', type=int, default=0)
p.add_argument('--out', required=True)
args = p.parse_args()
torch.manual_seed(args.seed)
save_model(Model(16, 32, []), args.out)
