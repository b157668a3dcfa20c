#!/usr/bin/env python3
"""Concurrent readers for t50-stress.sh (standard library only).

  stress.py run STORE SRC MNT WORKERS SECONDS SEED
      Start WORKERS reader processes on the mount MNT of STORE (packed from
      SRC) for SECONDS each. They mix random-offset, random-length reads
      with whole-file reads over every file of the tree, and check every
      byte: source/ against SRC, step_N/batches/ against the batch files of
      SRC, and every file against the content rebuilt from the store's own
      indexes and shards (storemodel.py). Prints the totals.
"""
import json
import os
import random
import sys
import time
from multiprocessing import Process, Queue

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from storemodel import Store  # noqa: E402


def expected_contents(store_path, src, mnt):
    store = Store(store_path)
    expected = {}
    for path in store.files:
        expected[path] = store.file_bytes(path)
    problems = []
    # the rebuilt content must itself match the originals
    for path, data in expected.items():
        if path.startswith(b"source/"):
            with open(os.path.join(os.fsencode(src), path[len(b"source/"):]), "rb") as f:
                if f.read() != data:
                    problems.append("%r: the store's content differs from the source" % path)
    batches = {}
    for dirpath, _, names in os.walk(os.fsencode(src)):
        for name in names:
            if name.startswith(b"batch_"):
                with open(os.path.join(dirpath, name), "rb") as f:
                    batches.setdefault(name, set()).add(f.read())
    for path, data in expected.items():
        parts = path.split(b"/")
        if len(parts) >= 3 and parts[-2] == b"batches" and data not in batches.get(parts[-1], ()):
            problems.append("%r: no batch file of the source holds these bytes" % path)
    return expected, problems


def worker(number, mnt, expected, seconds, seed, out):
    rng = random.Random(seed * 1000 + number)
    names = sorted(expected)
    reads = checked = 0
    problems = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(problems) < 5:
        path = rng.choice(names)
        data = expected[path]
        full = os.path.join(os.fsencode(mnt), path)
        try:
            with open(full, "rb") as f:
                # drop the file's cached pages now and then, so reads reach
                # the daemon (and its small frame cache) instead of the kernel
                if rng.random() < 0.5:
                    os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
                if rng.random() < 0.25 or not data:
                    got = f.read()
                    want = data
                else:
                    for _ in range(rng.randrange(1, 20)):
                        offset = rng.randrange(len(data) + 16)
                        length = rng.choice([1, 3, 100, 4095, 4096, 65536, 200000, rng.randrange(1, 1 << 20)])
                        f.seek(offset)
                        got = f.read(length)
                        want = data[offset:offset + length]
                        reads += 1
                        checked += len(got)
                        if got != want:
                            problems.append("worker %d: %r offset %d length %d differs" % (number, path, offset, length))
                            break
                    continue
        except OSError as e:
            problems.append("worker %d: %r: %s" % (number, path, e))
            continue
        reads += 1
        checked += len(got)
        if got != want:
            problems.append("worker %d: %r whole-file read differs" % (number, path))
    out.put((reads, checked, problems))


def run(store_path, src, mnt, workers, seconds, seed):
    expected, problems = expected_contents(store_path, src, mnt)
    queue = Queue()
    procs = [Process(target=worker, args=(i, mnt, expected, seconds, seed, queue)) for i in range(workers)]
    for p in procs:
        p.start()
    reads = checked = 0
    for _ in procs:
        r, c, pr = queue.get(timeout=seconds + 300)
        reads += r
        checked += c
        problems += pr
    for p in procs:
        p.join()
    print("%d readers for %gs: %d reads, %d bytes checked over %d files, %d problems"
          % (workers, seconds, reads, checked, len(expected), len(problems)))
    for p in problems[:20]:
        print("FAILED: " + p)
    return 1 if problems or reads == 0 else 0


if __name__ == "__main__":
    if sys.argv[1] == "run":
        sys.exit(run(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]),
                     float(sys.argv[6]), int(sys.argv[7])))
    sys.exit(__doc__)
