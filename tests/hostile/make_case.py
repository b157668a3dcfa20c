#!/usr/bin/env python3
"""Build one input of the hostile corpus (tests/hostile/cases.txt) at test time.

  make_case.py NAME SRC OUTSIDE   write case NAME as a cache folder SRC;
                                  OUTSIDE is a folder beside it that links
                                  and paths of the case may point into
  make_case.py --list             print the names this script knows

Every case starts from the same small current-layout cache (two steps, two
batches each) and changes one thing. Inputs are generated rather than
committed: some are large (a 100 MB string), some cannot live in git (FIFOs,
devices, names that are not UTF-8).
"""
import json
import os
import socket
import stat
import sys

PIPELINE = "hostile"
PSIG = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c"
ESIG = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4"
STEP_SIGS = ["5165cca74ecbc52b2c17111d53bf984d34af28fe", "9692da529b21026a20e09413c8e4aa1fcfac4ddc"]
OUTSIDE_MARK = "OUTSIDE-THE-CACHE-7f3a9c"

ROWS = [b'{"id":0,"text":"caf\\u00e9 r\\u00e9sum\\u00e9","score":0.5}',
        b'{"id":1,"text":"plain ascii","score":null,"tags":["a","b"]}',
        b'{"id":2,"text":"\xe6\x9d\xb1\xe4\xba\xac","score":1e-7}']


def batch_text(step, seq, rows, last=False):
    return (b'{"seq_no":%d,"step_name":%s,"last_batch":%s,"data_hash":"4cf5c60466e321d8",'
            b'"accumulated":false,"created_from":{},"batch_routed_to":[],"size":%d,'
            b'"data":[[%s]],"type_info":{"module":"distilabel.pipeline.batch","name":"_Batch"}}'
            % (seq, json.dumps(step).encode(), b"true" if last else b"false", len(rows),
               b",".join(rows)))


class Cache:
    """The base cache, written by write(); cases change its fields first."""

    def __init__(self, root, steps=("load_data", "embed")):
        self.root = root
        self.steps = list(steps)
        self.batches = {}     # step -> list of batch file bytes
        for i, step in enumerate(self.steps):
            self.batches[step] = [batch_text(step, seq, ROWS, seq == 1) for seq in range(2)]
        self.manager_steps = None  # override for batch_manager.json "steps"
        self.yaml_steps = None

    @property
    def execution(self):
        return os.path.join(self.root, "pipelines", PIPELINE, PSIG, "executions", ESIG)

    def step_dir(self, index):
        return os.path.join(self.root, "pipelines", PIPELINE, "steps_data",
                            "%s_%s" % (self.steps[index], STEP_SIGS[index]))

    def batch_path(self, index, seq):
        return os.path.join(self.step_dir(index), "batch_%d.json" % seq)

    def write(self):
        ex = self.execution
        os.makedirs(ex, exist_ok=True)
        steps = self.manager_steps
        if steps is None:
            steps = {s: os.path.join("/home/user/.cache/distilabel/pipelines", PIPELINE, PSIG,
                                     "executions", ESIG, "batch_manager_steps", s,
                                     "batch_manager_step.json") for s in self.steps}
        with open(os.path.join(ex, "batch_manager.json"), "w") as f:
            json.dump({"steps": steps, "last_batch_received": {}, "last_batch_sent": {},
                       "last_batch_flag_sent_to": [], "received_batch_seq_nos": {},
                       "type_info": {"module": "distilabel.pipeline.batch_manager",
                                     "name": "_BatchManager"}}, f)
        names = self.yaml_steps if self.yaml_steps is not None else self.steps
        with open(os.path.join(ex, "pipeline.yaml"), "w") as f:
            f.write("distilabel:\n  version: 1.4.0\npipeline:\n  name: %s\n  steps:\n" % PIPELINE)
            for name in names:
                f.write("  - step:\n      name: %s\n    name: %s\n" % (json.dumps(name), json.dumps(name)))
        for i, step in enumerate(self.steps):
            d = os.path.join(ex, "batch_manager_steps", step)
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "batch_manager_step.json"), "w") as f:
                json.dump({"step_name": step, "accumulate": False, "input_batch_size": 50,
                           "data": {}, "built_batches": [], "seq_no": 2,
                           "step_signature": STEP_SIGS[i], "use_cache": True,
                           "type_info": {"module": "distilabel.pipeline.batch_manager",
                                         "name": "_BatchManagerStep"}}, f)
            os.makedirs(self.step_dir(i), exist_ok=True)
            for seq, text in enumerate(self.batches[step]):
                with open(self.batch_path(i, seq), "wb") as f:
                    f.write(text)
        with open(os.path.join(ex, "pipeline.log"), "w") as f:
            f.write("[2024-05-01 10:00:00] INFO pipeline started\n")


def with_row(row):
    """A case whose first batch of the first step holds `row` as its first row."""
    def make(cache):
        cache.batches[cache.steps[0]][0] = batch_text(cache.steps[0], 0, [row] + ROWS[1:])
    return make


def with_batch(text):
    def make(cache):
        cache.batches[cache.steps[0]][0] = text
    return make


def truncated_at(where):
    """The first batch cut at byte `where` (negative: from the end)."""
    def make(cache):
        text = cache.batches[cache.steps[0]][0]
        cache.batches[cache.steps[0]][0] = text[:where]
    return make


def truncated_before(marker, extra=0):
    def make(cache):
        text = cache.batches[cache.steps[0]][0]
        cache.batches[cache.steps[0]][0] = text[:text.index(marker) + extra]
    return make


def nested(depth):
    return with_row(b'{"id":9,"deep":' + b"[" * depth + b"]" * depth + b"}")


def with_steps(names):
    def make(cache):
        cache.steps = list(names)
        cache.batches = {s: [batch_text(s, seq, ROWS, seq == 1) for seq in range(2)] for s in names}
    return make


def after_write(action):
    """Run action(cache, outside) once the base cache is on disk."""
    action.after_write = True
    return action


@after_write
def fifo(cache, outside):
    os.mkfifo(os.path.join(cache.execution, "progress.fifo"))


@after_write
def char_device(cache, outside):
    os.mknod(os.path.join(cache.execution, "null-device"), stat.S_IFCHR | 0o600, os.makedev(1, 3))


@after_write
def block_device(cache, outside):
    os.mknod(os.path.join(cache.execution, "loop-device"), stat.S_IFBLK | 0o600, os.makedev(7, 200))


@after_write
def unix_socket(cache, outside):
    here = os.getcwd()
    os.chdir(cache.execution)  # a socket path is limited to 107 bytes
    try:
        s = socket.socket(socket.AF_UNIX)
        s.bind("s.sock")
        s.close()
    finally:
        os.chdir(here)


@after_write
def unreadable_file(cache, outside):
    path = os.path.join(cache.execution, "secret.log")
    with open(path, "w") as f:
        f.write("not for the packer\n")
    os.chmod(path, 0)


@after_write
def unreadable_folder(cache, outside):
    path = os.path.join(cache.execution, "locked")
    os.mkdir(path)
    with open(os.path.join(path, "inside.txt"), "w") as f:
        f.write("x\n")
    os.chmod(path, 0)


def outside_secret(outside):
    os.makedirs(outside, exist_ok=True)
    path = os.path.join(outside, "secret.json")
    with open(path, "w") as f:
        f.write('{"secret": "%s"}\n' % OUTSIDE_MARK)
    sub = os.path.join(outside, "folder")
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, "inner.txt"), "w") as f:
        f.write(OUTSIDE_MARK + "\n")
    return path


@after_write
def symlink_outside_file(cache, outside):
    os.symlink(outside_secret(outside), os.path.join(cache.execution, "link-to-outside.json"))


@after_write
def symlink_outside_folder(cache, outside):
    outside_secret(outside)
    os.symlink(os.path.join(outside, "folder"), os.path.join(cache.execution, "link-to-folder"))


@after_write
def symlink_relative_escape(cache, outside):
    outside_secret(outside)
    depth = os.path.relpath(outside, cache.execution)
    os.symlink(os.path.join(depth, "secret.json"), os.path.join(cache.execution, "dotdot-link"))


@after_write
def symlink_loop(cache, outside):
    os.symlink("loop-b", os.path.join(cache.execution, "loop-a"))
    os.symlink("loop-a", os.path.join(cache.execution, "loop-b"))
    os.symlink("self", os.path.join(cache.execution, "self"))


@after_write
def symlink_as_batch(cache, outside):
    """A batch file that is a symlink to a batch outside the cache."""
    outside_secret(outside)
    target = os.path.join(outside, "batch_outside.json")
    with open(target, "wb") as f:
        f.write(batch_text(cache.steps[0], 1, [b'{"secret":"%s"}' % OUTSIDE_MARK.encode()], True))
    os.unlink(cache.batch_path(0, 1))
    os.symlink(target, cache.batch_path(0, 1))


@after_write
def symlink_dangling(cache, outside):
    os.symlink("/nonexistent/stepfs/target", os.path.join(cache.execution, "dangling"))


@after_write
def steps_outside(cache, outside):
    """batch_manager.json names step files by absolute paths outside the cache."""
    secret = outside_secret(outside)
    path = os.path.join(cache.execution, "batch_manager.json")
    doc = json.load(open(path))
    doc["steps"] = {s: secret for s in cache.steps}
    doc["steps"]["etc"] = "/etc/passwd"
    json.dump(doc, open(path, "w"))


@after_write
def steps_missing_after(cache, outside):
    path = os.path.join(cache.execution, "batch_manager.json")
    doc = json.load(open(path))
    doc["steps"]["ghost_step"] = "/home/user/.cache/ghost_step/batch_manager_step.json"
    json.dump(doc, open(path, "w"))


@after_write
def missing_batch(cache, outside):
    """A step folder missing entirely (its batches were deleted)."""
    import shutil
    shutil.rmtree(cache.step_dir(1))


@after_write
def name_newline(cache, outside):
    d = cache.execution
    with open(os.path.join(d, "line\nbreak.txt"), "w") as f:
        f.write("a name with a newline\n")
    os.mkdir(os.path.join(d, "folder\nwith newline"))
    with open(os.path.join(d, "folder\nwith newline", "x"), "w") as f:
        f.write("x")


@after_write
def name_invalid_utf8(cache, outside):
    d = os.fsencode(cache.execution)
    with open(os.path.join(d, b"bad-\xff\xfe-name.bin"), "wb") as f:
        f.write(b"\x00\x01\x02")
    os.mkdir(os.path.join(d, b"dir-\xc3\x28"))
    with open(os.path.join(d, b"dir-\xc3\x28", b"\xed\xa0\x80.txt"), "wb") as f:
        f.write(b"surrogate bytes in a name\n")
    os.symlink(b"target-\xff", os.path.join(d, b"link-\xfe"))


@after_write
def name_odd_bytes(cache, outside):
    d = cache.execution
    for name in ["tab\there", "back\\slash", 'quote"s', "per%cent", "%2E%2E", " lead", "trail ",
                 "-dash", "\x01control", "x" * 255, "\u00e9\u6771\U0001f600"]:
        with open(os.path.join(d, name), "w") as f:
            f.write(name + "\n")


@after_write
def empty_and_sparse(cache, outside):
    d = cache.execution
    open(os.path.join(d, "empty.bin"), "w").close()
    os.mkdir(os.path.join(d, "empty-folder"))
    with open(os.path.join(d, "sparse.bin"), "wb") as f:
        f.truncate(40 << 20)
        f.seek(20 << 20)
        f.write(b"middle")
    os.link(os.path.join(d, "pipeline.log"), os.path.join(d, "hardlink.log"))
    os.chmod(os.path.join(d, "empty.bin"), 0o640)


@after_write
def deep_folders(cache, outside):
    d = cache.execution
    for i in range(100):
        d = os.path.join(d, "d%d" % i)
    os.makedirs(d)
    with open(os.path.join(d, "leaf.txt"), "w") as f:
        f.write("deep\n")


@after_write
def huge_string(cache, outside):
    """A row holding one 100 MB string (written in pieces, never in memory twice)."""
    path = cache.batch_path(0, 0)
    piece = b"0123456789abcdefghijklmnopqrstuvwxyz \\u00e9\\n ABCDEFGHIJ" * 1024
    total = 100 << 20
    head, tail = batch_text(cache.steps[0], 0, [b"@ROW@"] + ROWS[1:]).split(b"@ROW@")
    with open(path, "wb") as f:
        f.write(head)
        f.write(b'{"id":0,"text":"')
        written = 0
        while written < total:
            f.write(piece)
            written += len(piece)
        f.write(b'"}')
        f.write(tail)


@after_write
def pipeline_yaml_bad(cache, outside):
    with open(os.path.join(cache.execution, "pipeline.yaml"), "w") as f:
        f.write("pipeline: [unclosed\n  steps: {\n")


@after_write
def batch_manager_bad(cache, outside):
    with open(os.path.join(cache.execution, "batch_manager.json"), "w") as f:
        f.write('{"steps": {"load_data": ')


@after_write
def plain_folder(cache, outside):
    import shutil
    shutil.rmtree(os.path.join(cache.root, "pipelines"))
    os.makedirs(os.path.join(cache.root, "notes", "sub"))
    with open(os.path.join(cache.root, "notes", "a.txt"), "w") as f:
        f.write("not a cache\n")
    with open(os.path.join(cache.root, "notes", "sub", "b.json"), "w") as f:
        f.write('{"broken": ')


@after_write
def empty_cache(cache, outside):
    import shutil
    shutil.rmtree(os.path.join(cache.root, "pipelines"))


def bad_escape_in_key(cache):
    with_batch(batch_text(cache.steps[0], 0, ROWS).replace(b'"seq_no"', b'"seq\\x_no"'))(cache)


CASES = {
    # truncated batch JSON at many points
    "trunc-1-byte": truncated_at(1),
    "trunc-in-key": truncated_at(7),
    "trunc-after-colon": truncated_before(b'"last_batch"', len(b'"last_batch":')),
    "trunc-in-literal": truncated_before(b'"last_batch"', len(b'"last_batch":fa')),
    "trunc-in-data": truncated_before(b'"data"', len(b'"data":[[')),
    "trunc-in-row-string": truncated_before(b'caf', 2),
    "trunc-in-escape": truncated_before(b'\\u00e9', 3),
    "trunc-in-number": truncated_before(b'1e-7', 2),
    "trunc-after-comma": truncated_before(b'{"id":1', 0),
    "trunc-last-byte": truncated_at(-1),
    "empty-batch": with_batch(b""),
    "whitespace-batch": with_batch(b"  \n\t "),
    # syntax
    "bad-escape": with_row(b'{"id":0,"text":"bad \\q escape"}'),
    "bad-escape-in-key": bad_escape_in_key,
    "bad-unicode-escape": with_row(b'{"id":0,"text":"\\u12G4"}'),
    "raw-control-char": with_row(b'{"id":0,"text":"tab\x01here"}'),
    "raw-newline-in-string": with_row(b'{"id":0,"text":"line\nbreak"}'),
    "trailing-garbage": with_batch(batch_text("load_data", 0, ROWS) + b" }"),
    "trailing-comma": with_row(b'{"id":0,"text":"x",}'),
    "single-quotes": with_row(b"{'id':0}"),
    "leading-zero": with_row(b'{"id":007}'),
    "duplicate-key-in-row": with_row(b'{"id":0,"text":"a","text":"b"}'),
    "duplicate-key-in-batch": with_batch(batch_text("load_data", 0, ROWS).replace(b'"size":', b'"seq_no":5,"size":')),
    # encoding
    "invalid-utf8": with_row(b'{"id":0,"text":"bad \xff byte"}'),
    "overlong-utf8": with_row(b'{"id":0,"text":"\xc0\xaf"}'),
    "utf8-encoded-surrogate": with_row(b'{"id":0,"text":"\xed\xa0\x80"}'),
    "truncated-utf8": with_row(b'{"id":0,"text":"\xe6\x9d"}'),
    "utf8-bom": with_batch(b"\xef\xbb\xbf" + batch_text("load_data", 0, ROWS)),
    "lone-surrogate-escape": with_row(b'{"id":0,"text":"\\udc80 and \\ud800"}'),
    "surrogate-pair-escape": with_row(b'{"id":0,"text":"\\ud83d\\ude00"}'),
    "nul-escape": with_row(b'{"id":0,"text":"nul \\u0000 inside"}'),
    # size and depth
    "nesting-100000": nested(100000),
    "nesting-1000": nested(1000),
    "number-10000-digits": with_row(b'{"id":0,"big":' + b"9" * 10000 + b',"neg":-' + b"1" * 5000 + b".5e-999999}"),
    "nan-infinity": with_row(b'{"id":0,"a":NaN,"b":Infinity,"c":-Infinity,"d":[NaN]}'),
    "huge-string-100mb": huge_string,
    "many-empty-values": with_row(b'{"":"","e":{},"l":[],"n":null,"t":true,"f":false}'),
    # references and paths
    "steps-outside-cache": steps_outside,
    "step-missing": steps_missing_after,
    "step-folder-missing": missing_batch,
    "step-name-dotdot": with_steps(["../../etc", "embed"]),
    "step-name-slash": with_steps(["a/b", "c"]),
    "step-name-dots": with_steps([".", ".."]),
    "step-name-control": with_steps(["tab\tand\nnewline", "per%cent"]),
    # file system objects
    "fifo": fifo,
    "char-device": char_device,
    "block-device": block_device,
    "unix-socket": unix_socket,
    "unreadable-file": unreadable_file,
    "unreadable-folder": unreadable_folder,
    "symlink-outside-file": symlink_outside_file,
    "symlink-outside-folder": symlink_outside_folder,
    "symlink-relative-escape": symlink_relative_escape,
    "symlink-loop": symlink_loop,
    "symlink-as-batch": symlink_as_batch,
    "symlink-dangling": symlink_dangling,
    "name-newline": name_newline,
    "name-invalid-utf8": name_invalid_utf8,
    "name-odd-bytes": name_odd_bytes,
    "empty-sparse-hardlink": empty_and_sparse,
    "deep-folders": deep_folders,
    # other documents
    "pipeline-yaml-invalid": pipeline_yaml_bad,
    "batch-manager-invalid": batch_manager_bad,
    "plain-folder": plain_folder,
    "empty-folder": empty_cache,
}


def main(argv):
    if argv[1:] == ["--list"]:
        print("\n".join(CASES))
        return 0
    name, root, outside = argv[1], argv[2], argv[3]
    make = CASES[name]
    cache = Cache(root)
    if not getattr(make, "after_write", False):
        make(cache)
        cache.write()
    else:
        cache.write()
        make(cache, outside)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
