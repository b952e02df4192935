"""The baseline dfwe's merge is measured against: load + weighted sum + save with torch, as
mergekit's linear does, on the same files and the same cores. Reads each safetensors file
memory-mapped (numpy), sums in float32 with in-place adds, converts to the input's dtype and
writes a safetensors file. argv: JSON {models, weights, out, threads}; prints {ms}."""
import json
import sys
import time

import numpy as np
import torch

job = json.loads(sys.argv[1])
torch.set_num_threads(job["threads"])
NP = {"F32": np.float32, "F16": np.float16, "BF16": np.int16}


def tensors(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    for name, h in header.items():
        if name == "__metadata__":
            continue
        b, e = h["data_offsets"]
        a = mm[8 + n + b : 8 + n + e].view(NP[h["dtype"]]).reshape(h["shape"])
        t = torch.from_numpy(a)
        yield name, h, (t.view(torch.bfloat16) if h["dtype"] == "BF16" else t)


t0 = time.perf_counter()
acc = {}
meta = {}
for w, path in zip(job["weights"], job["models"]):
    for name, h, t in tensors(path):
        meta[name] = h
        if name not in acc:
            acc[name] = torch.zeros(t.shape, dtype=torch.float32)
        acc[name].add_(t.float(), alpha=w)
header = {}
offset = 0
out = []
for name, h in meta.items():
    dtype = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}[h["dtype"]]
    t = acc.pop(name).to(dtype)
    raw = (t.view(torch.int16) if dtype == torch.bfloat16 else t).numpy().tobytes()
    header[name] = {"dtype": h["dtype"], "shape": h["shape"], "data_offsets": [offset, offset + len(raw)]}
    offset += len(raw)
    out.append(raw)
js = json.dumps(header).encode()
js += b" " * ((8 - (8 + len(js)) % 8) % 8)
with open(job["out"], "wb") as f:
    f.write(len(js).to_bytes(8, "little"))
    f.write(js)
    for raw in out:
        f.write(raw)
print(json.dumps({"ms": (time.perf_counter() - t0) * 1000}))
