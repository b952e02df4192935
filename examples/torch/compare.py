"""The paper's kind of table: the target's test accuracy, baseline against DFWE."""
import json
import sys

baseline, dfwe = (json.load(open(p))['accuracy'] for p in sys.argv[1:3])
print(f'| task | baseline | DFWE | delta |\n|---|---:|---:|---:|\n| t0 | {baseline:.2f} | {dfwe:.2f} | {dfwe - baseline:+.2f} |')
