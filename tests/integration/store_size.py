#!/usr/bin/env python3
"""store_size.py CACHE STORE: the step shards of a current-layout store
against one `zstd -3` stream over each step's batch files concatenated in
seq order. Exits 1 when the shards are more than 10% larger."""
import glob
import json
import os
import subprocess
import sys

cache, store = sys.argv[1], sys.argv[2]
doc = json.load(open(os.path.join(store, "store.json")))
level = doc["compression"]["level"]
shards = sum(s["compressed_bytes"] for s in doc["shards"] if s["kind"] == "step")
stream = 0
for d in sorted(glob.glob(os.path.join(cache, "pipelines", "*", "steps_data", "*"))):
    files = sorted(glob.glob(os.path.join(d, "batch_*.json")), key=lambda p: int(p.rsplit("_", 1)[1][:-5]))
    data = b"".join(open(f, "rb").read() for f in files)
    stream += len(subprocess.run(["zstd", "-%d" % level, "-c"], input=data, capture_output=True, check=True).stdout)
ratio = shards / stream
print("step shards %d bytes, zstd -%d stream %d bytes, ratio %.3f" % (shards, level, stream, ratio))
sys.exit(0 if ratio <= 1.10 else 1)
