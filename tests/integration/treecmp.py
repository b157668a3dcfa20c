#!/usr/bin/env python3
"""Tree comparisons for t30-hostile.sh (standard library only).

  treecmp.py same A B        A and B hold the same names (as bytes), types,
                             symlink targets, file bytes, permission bits
                             and modification times; nothing is followed
  treecmp.py views MNT SRC   the views of a mount are sane: manager_meta.json
                             is JSON, every step_N/batches file equals a
                             batch file of SRC, by-name/ holds one safe
                             name per step, each a link to ../step_N
  treecmp.py snapshot DIR [SKIP...]
                             print a listing of DIR (path, type, size) without
                             the paths SKIP
  treecmp.py nomark STORE WORD...
                             no shard of STORE, decompressed, holds WORD
"""
import json
import os
import stat
import subprocess
import tempfile
import sys


def walk(top):
    """relative path (bytes) -> lstat, for everything below top."""
    top = os.fsencode(top)
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, top)] = os.lstat(path)
    return out


def same(a, b):
    ta, tb = walk(a), walk(b)
    problems = []
    for path in sorted(set(ta) | set(tb)):
        if path not in tb:
            problems.append("%r: missing in %s" % (path, b))
            continue
        if path not in ta:
            problems.append("%r: only in %s" % (path, b))
            continue
        sa, sb = ta[path], tb[path]
        if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode):
            problems.append("%r: type differs" % path)
            continue
        pa, pb = os.path.join(os.fsencode(a), path), os.path.join(os.fsencode(b), path)
        if stat.S_ISLNK(sa.st_mode):
            if os.readlink(pa) != os.readlink(pb):
                problems.append("%r: symlink target %r != %r" % (path, os.readlink(pa), os.readlink(pb)))
            continue
        if stat.S_IMODE(sa.st_mode) != stat.S_IMODE(sb.st_mode):
            problems.append("%r: mode %o != %o" % (path, stat.S_IMODE(sa.st_mode), stat.S_IMODE(sb.st_mode)))
        if sa.st_mtime_ns != sb.st_mtime_ns and not stat.S_ISDIR(sa.st_mode):
            problems.append("%r: mtime %d != %d" % (path, sa.st_mtime_ns, sb.st_mtime_ns))
        if stat.S_ISREG(sa.st_mode):
            if sa.st_size != sb.st_size:
                problems.append("%r: size %d != %d" % (path, sa.st_size, sb.st_size))
                continue
            with open(pa, "rb") as fa, open(pb, "rb") as fb:
                while True:
                    da, db = fa.read(1 << 20), fb.read(1 << 20)
                    if da != db:
                        problems.append("%r: content differs" % path)
                        break
                    if not da:
                        break
    for p in problems[:20]:
        print(p)
    print("%d entries compared" % len(ta))
    return 1 if problems else 0


def views(mnt, src):
    problems = []
    with open(os.path.join(mnt, "manager_meta.json"), "rb") as f:
        meta = json.loads(f.read().decode("utf-8"))
    by_content = {}
    for dirpath, _, filenames in os.walk(os.fsencode(src)):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if name.startswith(b"batch_") and os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    by_content.setdefault(f.read(), []).append(path)
    checked = 0
    roots = [mnt] + [os.path.join(mnt, x["path"]) for x in meta.get("executions", []) if "path" in x]
    for root in roots:
        for entry in sorted(os.listdir(root)):
            if not entry.startswith("step_"):
                continue
            batches = os.path.join(root, entry, "batches")
            for name in sorted(os.listdir(batches)) if os.path.isdir(batches) else []:
                with open(os.path.join(batches, name), "rb") as f:
                    if f.read() not in by_content:
                        problems.append("%s/%s: no batch file of the source holds these bytes" % (entry, name))
                checked += 1
            rows = os.path.join(root, entry, "rows.jsonl")
            if os.path.exists(rows):
                with open(rows, "rb") as f:
                    for number, line in enumerate(f, 1):
                        if not line.endswith(b"\n"):
                            problems.append("%s line %d: no newline" % (rows, number))
        by_name = os.path.join(root, "by-name")
        if os.path.isdir(by_name):
            for name in os.listdir(os.fsencode(by_name)):
                if b"/" in name or name in (b".", b".."):
                    problems.append("by-name entry %r is not a safe name" % name)
                target = os.readlink(os.path.join(os.fsencode(by_name), name))
                if not target.startswith(b"../step_") or b"/" in target[len(b"../"):]:
                    problems.append("by-name/%r -> %r" % (name, target))
    for p in problems[:20]:
        print(p)
    print("%d batch views checked" % checked)
    return 1 if problems else 0


def snapshot(top, skip):
    skip = {os.fsencode(os.path.abspath(s)) for s in skip}
    for dirpath, dirnames, filenames in os.walk(os.fsencode(os.path.abspath(top))):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in skip]
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            if path in skip:
                continue
            st = os.lstat(path)
            size = st.st_size if stat.S_ISREG(st.st_mode) else 0
            print(repr(path), stat.S_IFMT(st.st_mode), size)
    return 0


def nomark(store, words):
    found = 0
    shards = os.path.join(store, "shards")
    for name in sorted(os.listdir(shards)):
        if not name.endswith(".zst") or name.endswith(".dict.zst"):
            continue
        dictionary = os.path.join(shards, name[:-4] + ".dict")
        extra = ["-D", dictionary] if os.path.exists(dictionary) else []
        if os.path.exists(dictionary + ".zst"):
            plain = subprocess.run(["zstd", "-q", "-d", "-c", dictionary + ".zst"], check=True,
                                   stdout=subprocess.PIPE).stdout
            held = tempfile.NamedTemporaryFile(prefix="stepfs-dict.", suffix=".dict")
            held.write(plain)
            held.flush()
            extra = ["-D", held.name]
        data = subprocess.run(["zstd", "-q", "-d", "-c"] + extra + [os.path.join(shards, name)],
                              check=True, stdout=subprocess.PIPE).stdout
        for word in words:
            if word.encode() in data:
                print("%s holds %r" % (name, word))
                found += 1
    return 1 if found else 0


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "same":
        sys.exit(same(sys.argv[2], sys.argv[3]))
    if cmd == "views":
        sys.exit(views(sys.argv[2], sys.argv[3]))
    if cmd == "snapshot":
        sys.exit(snapshot(sys.argv[2], sys.argv[3:]))
    if cmd == "nomark":
        sys.exit(nomark(sys.argv[2], sys.argv[3:]))
    sys.exit(__doc__)
