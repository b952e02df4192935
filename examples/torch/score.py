"""The evaluator dfwe calls: a merged checkpoint's dev accuracy (its score) and loss on the
target. `score.py DATA TASK MODEL` prints one JSON line; `score.py DATA TASK --serve` loads the
data once and answers one line per request. The protocol is examples/dfwe_eval.py's."""
import os
import sys

# examples/dfwe_eval.py, one directory up; in your project, copy it beside your scorer.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from dfwe_eval import main  # noqa: E402

from common import accuracy_and_loss, load_model, load_split  # noqa: E402

data, task = sys.argv[1], sys.argv[2]
x, y = load_split(data, task, 'dev')


def score(path):
    acc, loss = accuracy_and_loss(load_model(path), x, y, task)
    return {'score': round(acc, 4), 'loss': round(loss, 6)}


main(score)
