#!/usr/bin/env python3
"""Fault injection for t20-damage.sh (standard library only).

  damage.py flips STORE STEPSTORE COUNT SEED [tables]
      Flip one bit at COUNT random offsets across all shards (with
      "tables": across the shards' seek tables only) of a copy of
      STORE, one at a time; after each flip `stepstore verify` must exit 1
      naming the shard, the frame (or the seek table) and exactly the files
      that touch the damage. A flip verify does not notice is accepted only
      when the shard still decompresses to the same content (a bit the zstd
      decoder ignores); such flips are listed.
  damage.py pick STORE COUNT SEED
      Print COUNT "shard offset bit frame" lines: random bits inside frames
      of distinct (shard, frame) pairs, for the mount checks.
  damage.py toggle FILE OFFSET BIT
      Flip one bit of FILE in place (twice restores it).
  damage.py checkmount STORE SRC MNT [--frame S:F] [--shard S] [--index I]...
      Compare every file of the mounted (damaged) copy of STORE (STORE is
      the intact original) with its expected content: files the damage does
      not touch must read back byte-exact (source/ also against SRC), reads
      inside the damage must fail with EIO, and no read may return wrong
      bytes.
"""
import errno
import os
import random
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from storemodel import Store, sanitizer_report  # noqa: E402

PAGE = 4096


def toggle(path, offset, bit):
    with open(path, "r+b") as f:
        f.seek(offset)
        old = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([old ^ (1 << bit)]))


def touching(store, shard, frame=None):
    return {p for p in store.files if store.damaged_ranges(p, shard, frame)}


AFFECTED = re.compile(rb"^stepstore: file '(.*)' is affected: ", re.M)


def flips(store_path, stepstore, count, seed, tables_only=False):
    store = Store(store_path)
    work = store_path.rstrip("/") + ".flips"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(store_path, work)
    sizes = [os.path.getsize(store.shard_path(i)) for i in range(len(store.shards))]
    starts = [0] * len(sizes)
    if tables_only:
        starts = [store.layout(i)[1] for i in range(len(sizes))]
        sizes = [size - start for size, start in zip(sizes, starts)]
    rng = random.Random(seed)
    failures, ignored, in_table = [], [], 0
    for n in range(count):
        pos = rng.randrange(sum(sizes))
        shard = 0
        while pos >= sizes[shard]:
            pos -= sizes[shard]
            shard += 1
        pos += starts[shard]
        bit = rng.randrange(8)
        name = store.shards[shard]
        target = os.path.join(work, name)
        frame, entry = store.frame_at(shard, pos)
        toggle(target, pos, bit)
        try:
            r = subprocess.run([stepstore, "verify", work], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=120)
            if r.returncode == 0:
                # Not noticed: only acceptable when nothing changed.
                z = subprocess.run(["zstd", "-q", "-d", "-c"] + store.zstd_args(shard) + [target], stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL)
                where = "frame %d" % frame if frame is not None else "seek table"
                if z.returncode == 0 and z.stdout == store.content(shard):
                    ignored.append("%s byte %d bit %d (%s)" % (name, pos, bit, where))
                else:
                    failures.append("%s byte %d bit %d (%s): verify passed a changed shard"
                                    % (name, pos, bit, where))
                continue
        finally:
            toggle(target, pos, bit)
        why = check_verify_output(store, r, shard, frame, entry)
        if frame is None:
            in_table += 1
        if why:
            failures.append("%s byte %d bit %d: %s\n%s" % (
                name, pos, bit, why, r.stderr.decode("utf-8", "replace")[:1500]))
    shutil.rmtree(work)
    print("%d flips: %d detected (%d in seek tables), %d in bits the decoder ignores, %d failures"
          % (count, count - len(ignored) - len(failures), in_table, len(ignored), len(failures)))
    for line in ignored:
        print("ignored: " + line)
    for line in failures:
        print("FAILED: " + line)
    return 1 if failures else 0


def check_verify_output(store, r, shard, frame, entry):
    err = r.stderr
    report = sanitizer_report(err.decode("utf-8", "replace"))
    if report:
        return "sanitizer: " + report
    if r.returncode != 1:
        return "verify exited %d, expected 1" % r.returncode
    name = store.shards[shard].encode()
    first = err.splitlines()[0] if err else b""
    if name not in first:
        return "the first message does not name %s" % store.shards[shard]
    named = set(AFFECTED.findall(err))
    if frame is not None:
        if not re.search(rb"frame %d\b" % frame, first):
            return "the first message does not name frame %d" % frame
        expected = touching(store, shard, frame)
    elif entry is not None and re.search(rb"frame %d\b.*checksum mismatch" % entry, first):
        # the checksum field of a table entry: that one frame is refused
        expected = touching(store, shard, entry)
    elif b"seek table" in first or b"seekable magic" in first or (entry is not None and re.search(rb"frame %d\b" % entry, first)):
        # the table cannot be trusted: every frame of the shard is refused
        expected = touching(store, shard)
    else:
        return "the first message names neither the seek table nor the frame"
    if named != expected:
        missing = sorted(expected - named)[:5]
        extra = sorted(named - expected)[:5]
        return "affected files named: %d, expected %d (missing %r, extra %r)" % (
            len(named), len(expected), missing, extra)
    return None


def pick(store_path, count, seed):
    store = Store(store_path)
    rng = random.Random(seed)
    candidates = [(s, f) for s in range(len(store.shards))
                  for f in range(len(store.layout(s)[0])) if touching(store, s, f)]
    rng.shuffle(candidates)
    for shard, frame in candidates[:count]:
        comp, csize, _, _ = store.layout(shard)[0][frame]
        # past the frame header (at most 18 bytes): in the compressed data
        # or the raw block, the content checksum, or the last block header
        offset = comp + min(18, csize - 1) + rng.randrange(max(1, csize - 18))
        offset = min(offset, comp + csize - 1)
        print(shard, offset, rng.randrange(8), frame)


def read_at(path, offset, length):
    fd = os.open(path, os.O_RDONLY)
    try:
        # no read-ahead: the kernel asks for the pages read and no others
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        return os.pread(fd, length, offset)
    finally:
        os.close(fd)


def checkmount(store_path, src, mnt, frames, shards, indexes):
    store = Store(store_path)
    mnt = os.fsencode(mnt)
    src = os.fsencode(src)
    problems = []
    counts = {"intact": 0, "eio": 0, "partial": 0}

    def expect_eio(path, offset):
        try:
            read_at(os.path.join(mnt, path), offset, 1)
        except OSError as e:
            if e.errno != errno.EIO:
                problems.append("%r byte %d: errno %d, expected EIO" % (path, offset, e.errno))
            else:
                counts["eio"] += 1
            return
        problems.append("%r byte %d: read succeeded inside the damage" % (path, offset))

    for path in sorted(store.files):
        full = os.path.join(mnt, path)
        if any(store.under_index(path, i) for i in indexes):
            try:
                os.stat(full)
                problems.append("%r: stat succeeded below a damaged index" % path)
            except OSError as e:
                if e.errno != errno.EIO:
                    problems.append("%r: stat errno %d, expected EIO" % (path, e.errno))
                else:
                    counts["eio"] += 1
            continue
        damaged = []
        for s in shards:
            damaged += store.damaged_ranges(path, s)
        for s, f in frames:
            damaged += store.damaged_ranges(path, s, f)
        expected = store.file_bytes(path)
        if not damaged:
            try:
                with open(full, "rb") as f:
                    got = f.read()
            except OSError as e:
                problems.append("%r: intact file unreadable: %s" % (path, e))
                continue
            if got != expected:
                problems.append("%r: intact file differs" % path)
            elif path.startswith(b"source/"):
                with open(os.path.join(src, path[len(b"source/"):]), "rb") as f:
                    if f.read() != got:
                        problems.append("%r: differs from the packed source" % path)
            counts["intact"] += 1
            continue
        for a, b in damaged:
            expect_eio(path, a)
            if b - 1 != a:
                expect_eio(path, b - 1)
        # pages wholly outside the damage still read back byte-exact
        for page in range(0, len(expected), PAGE):
            end = min(page + PAGE, len(expected))
            if any(a < end and page < b for a, b in damaged):
                continue
            try:
                got = read_at(full, page, end - page)
            except OSError as e:
                problems.append("%r: intact page at %d unreadable: %s" % (path, page, e))
                break
            if got != expected[page:end]:
                problems.append("%r: page at %d differs" % (path, page))
                break
        counts["partial"] += 1
    for path in sorted(store.dirs):
        if any(store.under_index(path, i) for i in indexes):
            continue  # the folder itself is described by a damaged index
        own_index_damaged = store.dirs[path].get("index") in indexes
        try:
            os.listdir(os.path.join(mnt, path))
            if own_index_damaged:
                problems.append("%r: listing a folder whose index is damaged succeeded" % path)
        except OSError as e:
            if not own_index_damaged:
                problems.append("%r: intact folder unlistable: %s" % (path, e))
            elif e.errno != errno.EIO:
                problems.append("%r: listing errno %d, expected EIO" % (path, e.errno))
    print("%d intact files byte-exact, %d partly damaged files, %d reads refused with EIO"
          % (counts["intact"], counts["partial"], counts["eio"]))
    for p in problems[:20]:
        print("FAILED: " + p)
    if counts["intact"] == 0:
        print("FAILED: no intact file was checked")
        return 1
    return 1 if problems else 0


def main(argv):
    cmd = argv[1]
    if cmd == "flips":
        return flips(argv[2], argv[3], int(argv[4]), int(argv[5]), argv[6:] == ["tables"])
    if cmd == "pick":
        return pick(argv[2], int(argv[3]), int(argv[4]))
    if cmd == "toggle":
        toggle(argv[2], int(argv[3]), int(argv[4]))
        return 0
    if cmd == "checkmount":
        frames, shards, indexes = [], [], []
        rest = argv[5:]
        while rest:
            opt, value = rest[0], rest[1]
            rest = rest[2:]
            if opt == "--frame":
                s, f = value.split(":")
                frames.append((int(s), int(f)))
            elif opt == "--shard":
                shards.append(int(value))
            elif opt == "--index":
                indexes.append(int(value))
        return checkmount(argv[2], argv[3], argv[4], frames, shards, indexes)
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
