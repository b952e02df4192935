"""Train from a model on one or several tasks (Adam, full batches, every task's loss summed).
A head the model lacks is initialised from (seed, task) alone. --keep saves only the encoder and
these heads: finetuned experts must share one architecture to be merged."""
import argparse
import zlib

import torch

from common import DEVICE, load_model, load_split, save_model

p = argparse.ArgumentParser()
p.add_argument('--data', required=True)
p.add_argument('--init', required=True)
p.add_argument('--tasks', required=True, nargs='+')
p.add_argument('--keep', nargs='+', help='heads to keep in the saved model (default: all)')
p.add_argument('--steps', type=int, default=300)
p.add_argument('--lr', type=float, default=0.01)
p.add_argument('--seed', type=int, default=0)
p.add_argument('--out', required=True)
args = p.parse_args()

tasks = args.tasks
model = load_model(args.init)
for t in tasks:
    if t not in model.heads:
        torch.manual_seed(args.seed * 1000 + zlib.crc32(t.encode()))
        model.heads[t] = torch.nn.Linear(model.encoder[0].out_features, 2)
model.to(DEVICE)
data = {t: tuple(a.to(DEVICE) for a in load_split(args.data, t, 'train')) for t in tasks}
torch.manual_seed(args.seed)
opt = torch.optim.Adam(model.parameters(), lr=args.lr)
for step in range(args.steps):
    opt.zero_grad()
    loss = sum(torch.nn.functional.cross_entropy(model(x, t), y) for t, (x, y) in data.items())
    loss.backward()
    opt.step()
if args.keep:
    keep = set(args.keep)
    model.heads = torch.nn.ModuleDict({t: h for t, h in model.heads.items() if t in keep})
save_model(model, args.out)
print(f'trained on {",".join(tasks)} on {DEVICE}: loss {loss.item():.4f}')
