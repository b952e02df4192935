"""Test accuracy of a model on the target, as a metrics file: {"TASK": {"score": ..., "loss": ...}}."""
import argparse
import json

from common import accuracy_and_loss, load_model, load_split

p = argparse.ArgumentParser()
p.add_argument('--data', required=True)
p.add_argument('--task', required=True)
p.add_argument('--model', required=True)
p.add_argument('--out', required=True)
args = p.parse_args()
x, y = load_split(args.data, args.task, 'test')
acc, loss = accuracy_and_loss(load_model(args.model), x, y, args.task)
with open(args.out, 'w') as f:
    json.dump({args.task: {'score': round(acc, 2), 'loss': round(loss, 4)}}, f)
