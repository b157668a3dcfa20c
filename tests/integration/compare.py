#!/usr/bin/env python3
"""Byte-level comparisons for the integration tests (standard library only).

  compare.py randread A B COUNT SEED   COUNT reads at random offsets and sizes
                                       of random files, A/x against B/x
  compare.py rows STEPDIR SOURCEDIR    step_N/rows.jsonl against the rows of
                                       the batch files in SOURCEDIR, in seq order
"""
import json
import os
import random
import re
import sys


def files_under(top):
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if os.path.isfile(path) and not os.path.islink(path):
                out.append(os.path.relpath(path, top))
    return out


def randread(a, b, count, seed):
    rng = random.Random(seed)
    names = [n for n in files_under(a) if os.path.getsize(os.path.join(a, n)) > 0]
    if not names:
        sys.exit("no files under %s" % a)
    for i in range(count):
        name = rng.choice(names)
        size = os.path.getsize(os.path.join(a, name))
        offset = rng.randrange(size)
        length = rng.choice([1, 7, 512, 4096, 65536, 300000, size])
        with open(os.path.join(a, name), "rb") as fa, open(os.path.join(b, name), "rb") as fb:
            fa.seek(offset)
            fb.seek(offset)
            da, db = fa.read(length), fb.read(length)
        if da != db:
            sys.exit("read %d: %s offset %d length %d differs" % (i, name, offset, length))
    print("%d random reads matched" % count)


def batch_rows(path):
    with open(path, "rb") as f:
        doc = json.loads(f.read().decode("utf-8"))
    rows = []
    for inner in doc["data"]:
        rows.extend(inner)
    return rows


def rows(stepdir, sourcedir):
    def seq(name):
        return int(re.match(r"batch_(\d+)", name).group(1))

    names = sorted((n for n in os.listdir(sourcedir) if re.match(r"batch_\d+\.json$", n)), key=seq)
    expected = []
    for name in names:
        expected.extend(batch_rows(os.path.join(sourcedir, name)))
    got = []
    with open(os.path.join(stepdir, "rows.jsonl"), "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.endswith(b"\n"):
                sys.exit("rows.jsonl line %d has no newline" % number)
            got.append(json.loads(line.decode("utf-8")))
    if len(got) != len(expected):
        sys.exit("rows.jsonl has %d rows, the batches hold %d" % (len(got), len(expected)))
    for i, (g, e) in enumerate(zip(got, expected)):
        if json.dumps(g, sort_keys=True) != json.dumps(e, sort_keys=True):
            sys.exit("row %d differs" % i)
    print("%d rows matched" % len(got))


if __name__ == "__main__":
    if sys.argv[1] == "randread":
        randread(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    elif sys.argv[1] == "rows":
        rows(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
