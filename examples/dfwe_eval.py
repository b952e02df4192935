"""Helpers for an evaluator that dfwe's merge-search calls: copy this file beside your scorer.

    from dfwe_eval import load_checkpoint, main

    def score(path):                      # path: the candidate checkpoint dfwe wrote
        tensors = load_checkpoint(path)   # {name: numpy array}, or torch tensors with framework='pt'
        ...
        return {'score': accuracy, 'loss': loss}   # or just a number: the score

    main(score)   # `python score.py --serve`: one answer per request; `python score.py PATH`: one line

load_checkpoint reads the three layouts dfwe reads and writes: a .safetensors file; a directory
holding one (a single-file model's candidate is a directory with that one file, as is Hugging
Face's model.safetensors beside config.json); and shards listed by model.safetensors.index.json.
It needs numpy only (torch for framework='pt'), and reads the format from its description:
an 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets}},
then the raw little-endian tensor bytes.
"""
import json
import os
import struct
import sys
import traceback

_NUMPY = {'F64': '<f8', 'F32': '<f4', 'F16': '<f2', 'I64': '<i8', 'I32': '<i4', 'I16': '<i2', 'I8': 'i1', 'U8': 'u1', 'BOOL': '?'}


def _files(path):
    """The safetensors files of a checkpoint, in order."""
    if os.path.isfile(path):
        return [path]
    index = os.path.join(path, 'model.safetensors.index.json')
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)['weight_map']
        return [os.path.join(path, name) for name in sorted(set(weight_map.values()))]
    found = sorted(n for n in os.listdir(path) if n.endswith('.safetensors'))
    if len(found) != 1:
        raise ValueError(f'{path}: expected one .safetensors file or model.safetensors.index.json, found {found or "none"}')
    return [os.path.join(path, found[0])]


def _read(file, framework):
    with open(file, 'rb') as f:
        data = f.read()
    (n,) = struct.unpack('<Q', data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, h in header.items():
        if name == '__metadata__':
            continue
        begin, end = h['data_offsets']
        raw = data[8 + n + begin:8 + n + end]
        if framework == 'pt':
            import torch
            dtypes = {'F64': torch.float64, 'F32': torch.float32, 'F16': torch.float16, 'BF16': torch.bfloat16, 'I64': torch.int64, 'I32': torch.int32, 'I16': torch.int16, 'I8': torch.int8, 'U8': torch.uint8, 'BOOL': torch.bool}
            out[name] = torch.frombuffer(bytearray(raw), dtype=dtypes[h['dtype']]).reshape(h['shape'])
            continue
        import numpy as np
        if h['dtype'] == 'BF16':
            # numpy has no bfloat16: its bits are the top half of a float32's.
            out[name] = (np.frombuffer(raw, dtype='<u2').astype(np.uint32) << 16).view(np.float32).reshape(h['shape'])
        else:
            out[name] = np.frombuffer(raw, dtype=_NUMPY[h['dtype']]).reshape(h['shape'])
    return out


def load_checkpoint(path, framework='np'):
    """Every tensor of a checkpoint, by name: numpy arrays (BF16 as float32), or torch tensors with framework='pt'."""
    tensors = {}
    for file in _files(path):
        tensors.update(_read(file, framework))
    return tensors


def _answer(result):
    if isinstance(result, (int, float)):
        result = {'score': result}
    return json.dumps({k: float(v) for k, v in result.items()})


def serve(score):
    """dfwe's server protocol: one request {"model": PATH, "candidate": N} per line on stdin, one
    JSON answer per request on stdout. Anything else you print goes to stderr, the node's log."""
    for line in sys.stdin:
        request = json.loads(line)
        try:
            answer = _answer(score(request['model']))
        except Exception:
            # No answer is a failed search, said with this traceback: never a wrong score.
            traceback.print_exc()
            sys.exit(1)
        print(answer, flush=True)


def main(score):
    """`--serve` (as score_server) answers each request; else the checkpoint named last on the
    command line (or in $DFWE_MODEL, as score: runs it) gets one line."""
    if '--serve' in sys.argv[1:]:
        serve(score)
    else:
        path = sys.argv[-1] if len(sys.argv) > 1 else os.environ['DFWE_MODEL']
        print(_answer(score(path)), flush=True)
