#!/usr/bin/env python3
"""An independent model of a store, for the reliability tests (standard
library only, plus the `zstd` command to decompress whole shards).

It reads store.json, the index documents and the seek tables itself, so the
tests can say which files a damaged frame, shard or index touches, and what
every file of the tree must contain, without asking the code under test.
"""
import json
import os
import struct
import subprocess

SEEK_FOOTER = 9
SEEK_HEADER = 8
SEEK_ENTRY = 12
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def sanitizer_report(text):
    """The first line of a sanitizer report in text, or None."""
    for line in text.splitlines():
        if any(mark in line for mark in SANITIZER_MARKS):
            return line
    return None


def seek_layout(path):
    """Frames of a shard: list of (compressed_offset, compressed_size,
    content_offset, content_size), and the byte where the seek table starts."""
    with open(path, "rb") as f:
        data = f.read()
    count = struct.unpack("<I", data[-SEEK_FOOTER:-SEEK_FOOTER + 4])[0]
    table = len(data) - (SEEK_HEADER + SEEK_ENTRY * count + SEEK_FOOTER)
    frames = []
    comp = content = 0
    for i in range(count):
        entry = table + SEEK_HEADER + SEEK_ENTRY * i
        csize, dsize = struct.unpack("<II", data[entry:entry + 8])
        frames.append((comp, csize, content, dsize))
        comp += csize
        content += dsize
    return frames, table


def _v2_bytes(value):
    if isinstance(value, list):
        return bytes.fromhex(value[0])
    return value.encode("utf-8", "surrogateescape")


def flatten_v2(entries):
    """The entries of a 2.0 index (docs/FORMAT.md) in the 1.0 shape:
    full relative paths as "path_hex", absolute times and offsets."""
    out = []
    state = {"time": 0, "cursor": 0}

    def when(value, parent_time):
        if value is None:
            return parent_time
        if isinstance(value, list):
            state["time"] = value[0] * 10**9 + value[1]
        else:
            state["time"] += value
        return state["time"]

    def walk(items, prefix, parent_time):
        for item in items:
            kind, name = item[0], _v2_bytes(item[1])
            path = prefix + name
            entry = {"path_hex": path.hex()}
            if kind == "l":
                t = when(item[2], parent_time)
                entry.update(type="symlink", mtime=[t // 10**9, t % 10**9])
                entry["target_hex"] = _v2_bytes(item[3]).hex()
                out.append(entry)
                continue
            t = when(item[3], parent_time)
            entry.update(mode=item[2], mtime=[t // 10**9, t % 10**9])
            if kind == "f":
                flat, segs = item[4], []
                for i in range(0, len(flat), 4):
                    offset = state["cursor"] + flat[i + 1]
                    segs.append([flat[i], offset, flat[i + 2], flat[i + 3]])
                    state["cursor"] = offset + flat[i + 2]
                entry.update(type="file", segments=segs, size=sum(s[2] for s in segs))
                if len(item) > 5:
                    entry["xxh64"] = item[5]
                out.append(entry)
            else:
                entry["type"] = "dir"
                out.append(entry)
                if isinstance(item[4], list):
                    walk(item[4], path + b"/", t)
                else:
                    entry["index"] = item[4]

    walk(entries, b"", 0)
    return out



def plain_dictionary(path):
    """The dictionary of a .dict.zst file, decompressed into a temporary file
    that lives as long as the process."""
    import tempfile
    if path not in _PLAIN_DICTS:
        out = tempfile.NamedTemporaryFile(prefix="stepfs-dict.", suffix=".dict")
        out.write(subprocess.run(["zstd", "-q", "-d", "-c", path], check=True,
                                 stdout=subprocess.PIPE).stdout)
        out.flush()
        _PLAIN_DICTS[path] = out
    return _PLAIN_DICTS[path].name


_PLAIN_DICTS = {}

class Store:
    def __init__(self, path):
        self.path = path
        with open(os.path.join(path, "store.json"), "rb") as f:
            self.doc = json.load(f)
        self.shards = [s["file"] for s in self.doc["shards"]]
        self.indexes = [i["file"] for i in self.doc["indexes"]]
        # tree path -> entry (with "index_of": the index it comes from)
        self.files, self.dirs, self.symlinks = {}, {}, {}
        self._load(self.doc["root_index"], b"")
        self._content = {}
        self._layout = {}

    def _load(self, index_id, prefix):
        with open(os.path.join(self.path, self.indexes[index_id]), "rb") as f:
            raw = f.read()
        if self.doc["format_version"][0] >= 2:
            text = subprocess.run(["zstd", "-q", "-d", "-c"], input=raw, check=True,
                                  stdout=subprocess.PIPE).stdout
            entries = flatten_v2(json.loads(text)["entries"])
        else:
            entries = json.loads(raw)["entries"]
        for entry in entries:
            if "path" in entry:
                rel = entry["path"].encode("utf-8", "surrogateescape")
            else:
                rel = bytes.fromhex(entry["path_hex"])
            path = prefix + rel
            entry["index_of"] = index_id
            if entry["type"] == "file":
                self.files[path] = entry
            elif entry["type"] == "symlink":
                self.symlinks[path] = entry
            else:
                self.dirs[path] = entry
                if "index" in entry:
                    self._load(entry["index"], path + b"/")

    def shard_path(self, shard):
        return os.path.join(self.path, self.shards[shard])

    def zstd_args(self, shard):
        """zstd options to decode a shard: -D its dictionary when it has one
        (a .dict.zst, format 2.2, is decompressed to a file beside the test's
        temporary files first)."""
        dictionary = self.doc["shards"][shard].get("dictionary", {}).get("file")
        if not dictionary:
            return []
        path = os.path.join(self.path, dictionary)
        if path.endswith(".dict.zst"):
            plain = plain_dictionary(path)
            return ["-D", plain]
        return ["-D", path]

    def layout(self, shard):
        if shard not in self._layout:
            self._layout[shard] = seek_layout(self.shard_path(shard))
        return self._layout[shard]

    def content(self, shard):
        """A shard's whole decompressed content (zstd checks every frame)."""
        if shard not in self._content:
            self._content[shard] = subprocess.run(
                ["zstd", "-q", "-d", "-c"] + self.zstd_args(shard) + [self.shard_path(shard)],
                check=True, stdout=subprocess.PIPE).stdout
        return self._content[shard]

    def file_bytes(self, path):
        out = []
        for shard, offset, length, subst in self.files[path]["segments"]:
            piece = self.content(shard)[offset:offset + length]
            if subst == 1:
                piece = piece.replace(b"\n", b",")
            elif subst == 2:
                piece = piece.replace(b"\n", b" ")
            out.append(piece)
        return b"".join(out)

    def frame_at(self, shard, compressed_offset):
        """(frame index, None) for a byte in a frame, (None, entry) for a
        byte in the seek table (entry: the table entry it belongs to, or
        None for the header and footer)."""
        frames, table = self.layout(shard)
        if compressed_offset >= table:
            rel = compressed_offset - table - SEEK_HEADER
            if 0 <= rel < SEEK_ENTRY * len(frames):
                return None, rel // SEEK_ENTRY
            return None, None
        for i, (comp, csize, _, _) in enumerate(frames):
            if comp <= compressed_offset < comp + csize:
                return i, None
        raise ValueError("offset %d outside every frame" % compressed_offset)

    def damaged_ranges(self, path, shard, frame=None):
        """File byte ranges [a, b) of path served from the shard (or from
        one frame of it)."""
        if frame is None:
            lo, hi = 0, 1 << 62
        else:
            _, _, lo, size = self.layout(shard)[0][frame]
            hi = lo + size
        ranges, file_offset = [], 0
        for s, offset, length, _ in self.files[path]["segments"]:
            if s == shard:
                a, b = max(offset, lo), min(offset + length, hi)
                if a < b:
                    ranges.append((file_offset + a - offset, file_offset + b - offset))
            file_offset += length
        return ranges

    def under_index(self, path, index_id):
        """True when path is described by index_id or by an index below it."""
        entry = self.files.get(path) or self.dirs.get(path) or self.symlinks.get(path)
        seen = entry["index_of"]
        while True:
            if seen == index_id:
                return True
            parent = self._index_parent(seen)
            if parent is None:
                return False
            seen = parent

    def _index_parent(self, index_id):
        for entry in self.dirs.values():
            if entry.get("index") == index_id:
                return entry["index_of"]
        return None
