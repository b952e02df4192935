"""The evaluator dfwe calls: a merged checkpoint's dev accuracy (its score) and loss on the
target. `score.py DATA TASK MODEL` prints one JSON line; `score.py DATA TASK --serve` loads the
data once and answers one line per {"model": PATH} line read from stdin."""
import json
import sys

from common import accuracy_and_loss, load_model, load_split

data, task = sys.argv[1], sys.argv[2]
x, y = load_split(data, task, 'dev')


def score(path):
    acc, loss = accuracy_and_loss(load_model(path), x, y, task)
    return json.dumps({'score': round(acc, 4), 'loss': round(loss, 6)})


if sys.argv[3] == '--serve':
    for line in sys.stdin:
        print(score(json.loads(line)['model']), flush=True)
else:
    print(score(sys.argv[3]))
