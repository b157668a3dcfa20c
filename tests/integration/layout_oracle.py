#!/usr/bin/env python3
"""What a mounted store must show for a cache, computed independently from
the cache itself (standard library only), per docs/VIEWS.md.

  layout_oracle.py check CACHE MOUNT

Checks, for every execution the cache holds: manager_meta.json is valid JSON
listing every step; step_N/rows.jsonl equals, row for row (parsed), the rows
of that step's batches in seq_no order; every file in step_N/batches/ is
valid JSON whose exact bytes appear in the source and that equals one of
the step's batches; the batch count matches.
"""
import json
import os
import re
import sys


def load(path):
    with open(path, "rb") as f:
        return json.loads(f.read().decode("utf-8"))


def batch_rows(batch):
    rows = []
    for inner in batch.get("data") or []:
        rows.extend(inner)
    return rows


def seq_of(name):
    m = re.match(r"batch_(\d+)", name)
    return int(m.group(1)) if m else 0


class Step:
    def __init__(self):
        self.batches = []  # (seq, order, object, rows)


def executions(cache):
    """Folders holding a batch_manager.json, with their layout."""
    found = []
    for dirpath, dirnames, filenames in os.walk(cache):
        dirnames.sort()
        if ("manager_meta.json" in filenames and "batch_manager.json" not in filenames
                and any(re.match(r"step_\d+_data\.", n) for n in filenames)):
            found.append((dirpath, "split"))
            continue
        if "batch_manager.json" not in filenames:
            continue
        rel = os.path.relpath(dirpath, cache)
        parts = [] if rel == "." else rel.split(os.sep)
        steps_dir = os.path.join(dirpath, "batch_manager_steps")
        if len(parts) >= 3 and parts[-2] == "executions":
            layout = "current"
        elif os.path.isdir(steps_dir):
            layout = "per-step"
            for name in os.listdir(steps_dir):
                if os.path.isfile(os.path.join(steps_dir, name, "batch_manager_step.json")):
                    layout = "per-batch"
        else:
            layout = "monolithic"
        found.append((dirpath, layout))
    return found


def step_data(cache, exec_dir, layout):
    steps = {}
    order = [0]

    def add(step, seq, obj, rows):
        steps.setdefault(step, Step()).batches.append((seq, order[0], obj, rows))
        order[0] += 1

    steps_dir = os.path.join(exec_dir, "batch_manager_steps")
    if layout == "current":
        pipeline_dir = os.path.dirname(os.path.dirname(os.path.dirname(exec_dir)))
        for step in sorted(os.listdir(steps_dir)) if os.path.isdir(steps_dir) else []:
            sig = load(os.path.join(steps_dir, step, "batch_manager_step.json")).get("step_signature")
            files = []
            data_dir = os.path.join(pipeline_dir, "steps_data", "%s_%s" % (step, sig))
            if os.path.isdir(data_dir):
                files += [(seq_of(n), os.path.join(data_dir, n)) for n in os.listdir(data_dir)
                          if re.match(r"batch_\d+\.json$", n)]
            built = os.path.join(steps_dir, step, "built_batches")
            if os.path.isdir(built):
                files += [(seq_of(n), os.path.join(built, n)) for n in os.listdir(built) if n.endswith(".json")]
            for seq, path in sorted(files):
                obj = load(path)
                add(step, obj["seq_no"], obj, batch_rows(obj))
    elif layout == "per-batch":
        files = []
        for step in os.listdir(steps_dir):
            for sub in os.listdir(os.path.join(steps_dir, step)):
                d = os.path.join(steps_dir, step, sub)
                if os.path.isdir(d):
                    files += [(step, seq_of(n), os.path.join(d, n)) for n in os.listdir(d)
                              if n.startswith("batch_") and n.endswith(".json")]
        for step, seq, path in sorted(files, key=lambda t: (t[0], t[1], t[2])):
            obj = load(path)
            add(step, obj["seq_no"], obj, batch_rows(obj))
    elif layout == "per-step":
        manager = load(os.path.join(exec_dir, "batch_manager.json"))
        for key in ("last_batch_received", "last_batch_sent"):
            for step, batch in (manager.get(key) or {}).items():
                if isinstance(batch, dict) and "data" in batch:
                    add(step, batch["seq_no"], batch, batch_rows(batch))
        for name in sorted(os.listdir(steps_dir)):
            if not name.endswith(".json"):
                continue
            step = name[:-5]
            state = load(os.path.join(steps_dir, name))
            for pred, batches in (state.get("data") or {}).items():
                for batch in batches:
                    if isinstance(batch, dict) and "data" in batch:
                        add(step, batch["seq_no"], batch, batch_rows(batch))
            for batch in state.get("built_batches") or []:
                if isinstance(batch, dict) and "data" in batch:
                    add(step, batch["seq_no"], batch, batch_rows(batch))
    elif layout == "split":
        meta = load(os.path.join(exec_dir, "manager_meta.json"))
        names = {s["index"]: s["name"] for s in meta["steps"]}
        for name in sorted(os.listdir(exec_dir)):
            m = re.match(r"step_(\d+)_data\.(json|jsonl)$", name)
            if not m:
                continue
            step = names.get(int(m.group(1)), "step_" + m.group(1))
            path = os.path.join(exec_dir, name)
            if m.group(2) == "json":
                rows = load(path)
                add(step, 0, rows, list(rows))
            else:
                with open(path, "rb") as f:
                    rows = [json.loads(line) for line in f.read().decode("utf-8").split("\n") if line]
                add(step, 0, None, rows)
    else:
        manager = load(os.path.join(exec_dir, "batch_manager.json"))
        for step, state in manager.items():
            if step == "type_info" or not isinstance(state, dict):
                continue
            for pred, rows in (state.get("data") or {}).items():
                add(step, 0, rows, list(rows))
    return steps


def canon(value):
    return json.dumps(value, sort_keys=True)


def check(cache, mount):
    execs = executions(cache)
    if not execs:
        sys.exit("no execution found in %s" % cache)
    checked_rows = checked_batches = 0
    for exec_dir, layout in execs:
        if len(execs) == 1:
            view = mount
        else:
            meta = load(os.path.join(mount, "manager_meta.json"))
            rel = os.path.relpath(exec_dir, cache)
            matches = [e["path"] for e in meta["executions"] if rel.endswith(e["execution"])]
            if len(matches) != 1:
                sys.exit("no view for execution %s" % rel)
            view = os.path.join(mount, matches[0])
        meta = load(os.path.join(view, "manager_meta.json"))
        if meta["layout"] != layout:
            sys.exit("%s: layout %s, expected %s" % (view, meta["layout"], layout))
        steps = step_data(cache, exec_dir, layout)
        listed = {s["name"]: s for s in meta["steps"]}
        for name in steps:
            if name not in listed:
                sys.exit("%s: step %r missing from manager_meta.json" % (view, name))
        sources = {}
        for s in meta["steps"]:
            step_dir = os.path.join(view, s["path"] if len(execs) == 1 else os.path.basename(s["path"]))
            expected = steps.get(s["name"], Step())
            ordered = sorted(expected.batches, key=lambda b: (b[0], b[1]))
            want_rows = [r for b in ordered for r in b[3]]
            got_rows = []
            with open(os.path.join(step_dir, "rows.jsonl"), "rb") as f:
                for number, line in enumerate(f, 1):
                    if not line.endswith(b"\n") or b"\n" in line[:-1]:
                        sys.exit("%s/rows.jsonl line %d is not one line" % (step_dir, number))
                    got_rows.append(json.loads(line.decode("utf-8")))
            if len(got_rows) != len(want_rows):
                sys.exit("%s: %d rows, expected %d" % (step_dir, len(got_rows), len(want_rows)))
            for i, (g, w) in enumerate(zip(got_rows, want_rows)):
                if canon(g) != canon(w):
                    sys.exit("%s: row %d differs" % (step_dir, i))
            checked_rows += len(got_rows)
            if layout == "split":
                # step.json: the exact bytes of this step's object in manager_meta.json
                with open(os.path.join(exec_dir, "manager_meta.json"), "rb") as f:
                    source_meta = f.read()
                own = [o for o in json.loads(source_meta)["steps"] if o.get("name") == s["name"]]
                step_json = os.path.join(step_dir, "step.json")
                if own:
                    with open(step_json, "rb") as f:
                        raw = f.read()
                    if raw not in source_meta or json.loads(raw) != own[0]:
                        sys.exit("%s: step.json is not the step's object of manager_meta.json" % step_dir)
            if s["rows"] != len(want_rows) or s["batches"] != len(expected.batches):
                sys.exit("%s: manager_meta says %d batches / %d rows, expected %d / %d"
                         % (step_dir, s["batches"], s["rows"], len(expected.batches), len(want_rows)))
            want = [canon(b[2]) for b in expected.batches if b[2] is not None]
            got = []
            for dirpath, _, filenames in os.walk(os.path.join(step_dir, "batches")):
                for n in filenames:
                    with open(os.path.join(dirpath, n), "rb") as f:
                        raw = f.read()
                    got.append(canon(json.loads(raw.decode("utf-8"))))
                    if not any(raw in data for data in source_bytes(cache, sources)):
                        sys.exit("%s: its bytes are not in the source" % os.path.join(dirpath, n))
            if sorted(got) != sorted(want):
                sys.exit("%s/batches: %d files do not match the %d batches" % (step_dir, len(got), len(want)))
            checked_batches += len(got)
    print("%d rows and %d batches checked in %d executions" % (checked_rows, checked_batches, len(execs)))


def source_bytes(cache, memo):
    if not memo:
        for dirpath, _, filenames in os.walk(cache):
            for n in filenames:
                if n.endswith(".json"):
                    with open(os.path.join(dirpath, n), "rb") as f:
                        memo[os.path.join(dirpath, n)] = f.read()
    return memo.values()


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "check":
        sys.exit(__doc__)
    check(sys.argv[2], sys.argv[3])
