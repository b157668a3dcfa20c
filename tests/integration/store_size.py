#!/usr/bin/env python3
"""store_size.py CACHE STORE: the step shards of a current-layout store
against one `zstd -3` stream over each step's batch files concatenated in
seq order. Exits 1 when the shards are more than 10% larger.

store_size.py --content CACHE STORE: the content of every shard (before
compression) against the bytes of the cache's files, for layouts whose
rows sit inside larger files (monolithic, per-step): exits 1 when the
shards hold more than 2% + 64 KiB over the files, that is when some row
text is stored twice."""
import glob
import json
import os
import subprocess
import sys

if sys.argv[1] == "--content":
    cache, store = sys.argv[2], sys.argv[3]
    doc = json.load(open(os.path.join(store, "store.json")))
    content = sum(s["content_bytes"] for s in doc["shards"])
    files = sum(os.lstat(os.path.join(d, f)).st_size for d, _, fs in os.walk(cache) for f in fs
                if os.path.isfile(os.path.join(d, f)) and not os.path.islink(os.path.join(d, f)))
    print("shard content %d bytes, cache files %d bytes, ratio %.3f, format %s" %
          (content, files, content / files, doc["format_version"]))
    sys.exit(0 if content <= files * 1.02 + 65536 else 1)

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
