#!/usr/bin/env python3
r"""gen_cache.py - write synthetic distilabel pipeline caches for stepfs tests.

Standard library only (Python 3.11).  Output is deterministic for a given set
of options (``--seed``).  The generated trees reproduce, byte for byte in
their serialization conventions, the on-disk layouts that distilabel's own
cache writer produced over its history, plus one stepfs-native layout.

Usage
-----
    python3 scripts/gen_cache.py --layout current --out /tmp/c1
    python3 scripts/gen_cache.py --layout monolithic --out /tmp/big \
        --target-bytes 1073741824
    python3 scripts/gen_cache.py --layout per-batch --out /tmp/c2 \
        --interrupted --hostile-names

Options
-------
  --layout NAME        monolithic | per-step | per-batch | current | split
  --out DIR            output directory; must not exist or must be empty.
                       It plays the role of the writer's ``~/.cache/distilabel``
                       (distilabel's default cache_dir is that path plus
                       ``/pipelines``).
  --seed N             RNG seed (default 0).  Same options => identical bytes.
  --steps N            number of steps in the chain (default 3):
                       load_data -> embed -> annotate -> step_3 -> ...
  --step-names a,b,c   override the step names (count must equal --steps).
  --batches N          batches produced by the generator step (default 5).
  --batch-size N       rows per generator batch (default 10).  Step 1 uses
                       input_batch_size = N, steps >= 2 use 2N (or 3N/2 with
                       --interrupted so that batches are consumed partially).
  --embedding-dim N    length of the "embedding" float list (default 16).
  --text-bytes N       approximate UTF-8 length of text fields (default 80).
  --interrupted        the run was stopped part-way: the generator did not
                       send its last batch, steps keep unconsumed/partially
                       consumed batches in their input buffers and the last
                       batch built for each step is left in built_batches.
  --executions N       (current layout) N executions under one root; two
                       executions per pipeline name, the second one with a
                       changed signature for the last step (so steps_data is
                       shared for the unchanged steps).  Default 1.
  --target-bytes N     keep adding generator batches until the cache is about
                       N bytes (calibrated with two small trial runs, then
                       written in one streaming pass; memory stays bounded).
                       With --layout monolithic this models a run interrupted
                       while a global (accumulating) step held every row in
                       its input buffer, which is what makes that single JSON
                       file big.
  --hostile-names      step names that are not ordinary identifiers.  Layouts
                       that keep names only inside JSON (monolithic, split)
                       get "../x", "a/b", names with spaces, quotes,
                       backslashes and unicode.  Layouts that turn step names
                       into file names (per-step, per-batch, current) get
                       only names that are valid single path components
                       (spaces, unicode, quotes, backslash, leading dash, a
                       leading ".."), because distilabel's writer would
                       create nested or escaping paths for "/" and "..".
  --no-empty-dirs      do not create the empty directories distilabel
                       creates (built_batches/, per-predecessor batch dirs,
                       batch_input_data/).  Copies of caches made through
                       git lose those, e.g. /work/shared/samples/distilabel-pr766.
  --pipeline-name S    pipeline name (default "unicode-cache-test").

Conventions common to every distilabel layout
---------------------------------------------
Paths *inside* JSON files are absolute paths of the original writer
machine: ``/home/user/.cache/distilabel/pipelines/...``.  On disk the same
file is ``<out>/pipelines/...``: strip the prefix
``/home/user/.cache/distilabel/`` and resolve against the cache root; never
open the absolute path.

Two JSON serializers were used (verified in src/distilabel/utils/
serialization.py, ``write_json``):

* PY-JSON: ``json.dump(data, file, indent=2)`` - Python stdlib defaults:
  ensure_ascii=True (every non-ASCII char is a ``\uXXXX`` escape, astral
  chars as surrogate pairs), allow_nan=True (bare ``NaN``, ``Infinity``,
  ``-Infinity`` tokens can appear), floats printed with ``float.__repr__``
  (``1e-07``, ``1e+21``, ``-0.0``, ``0.1``), separators ``", "`` -> with
  indent the item separator is ``","`` + newline + indentation and the key
  separator is ``": "``; empty containers are ``[]`` / ``{}``; no trailing
  newline.  Used by every writer before PR #672 (May 2024).
* ORJSON: ``orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)`` written
  in binary mode (PR #672, "Reduce time required to execute `_cache`
  method", replaced json by orjson).  Compact (no whitespace at all), raw
  UTF-8 (only ``"``, ``\\`` and control chars < 0x20 are escaped: ``\n``
  ``\t`` ``\r`` ``\b`` ``\f`` and ``\u00XX`` lowercase), NaN/Infinity are
  written as ``null``, floats are shortest round-trip digits formatted like
  Rust's ryu: ``1e-7``, ``1e21``, ``1e16``, ``0.00001``,
  ``1000000000000000.0``, ``-0.0``, ``0.3333333333333333``; no trailing
  newline.  Checked against the sample cache.

``type_info`` is appended *last* by ``_Serializable.dump()``:
``{"module": <python module>, "name": <class name>}``.

A batch's rows are always ``"data": [[row, row, ...]]``: a list with one
inner list per predecessor step whose rows were merged into the batch.
Output batches of a step (what steps send) always have exactly one inner
list.  In a linear chain (what this generator writes) every batch has one
inner list; parsers must still accept several, and ``[]`` (a batch whose
data was taken entirely with ``get_data()``).

``data_hash`` (layouts per-batch and current) is
``hashlib.sha1(str(batch.data).encode()).hexdigest()`` - the SHA-1 of the
Python ``repr`` of the data, recomputed whenever rows are taken out of the
batch (``_Batch._update_data_hash``).  A batch whose rows were all consumed
has ``data == [[]]`` and hash ``1376774b81b43f6e0e269cb3187301b22cff8b7e``
(seen in the sample).  A batch built by the batch manager (input batch of a
step) is created without a hash: ``"data_hash": null`` and ``"size": 0``.

Row content (all layouts): a row is a JSON object.  Keys and value kinds
produced here: ints, unicode strings (accents, CJK, Arabic, Hebrew, emoji and
ZWJ sequences, U+200B, combining marks, U+2028, quotes, backslashes, tabs,
newlines), floats (0.1, 1e-07, -0.0, 1e+21, 1e16, 5e-324,
1.7976931348623157e+308, ...), NaN/Infinity (rendered per serializer),
null, booleans, nested lists and dicts, and an "embedding" list of floats.

Layout 1: monolithic  (distilabel pre-1.0.0 development code)
--------------------------------------------------------------
Source: src/distilabel/pipeline/base.py of the era when ``BasePipeline``
had ``_cache_filenames`` and ``_BatchManager.__init__(self, steps)``:
``_BatchManager`` had no ``save`` override, so ``_Serializable.save()``
wrote the whole ``dump()`` to one file with PY-JSON (issue #487, Mar 2024:
"we're dumping the whole _BatchManager in a JSON file"; replaced by PR #496
before 1.0.0 was released).  Tree::

    <out>/pipelines/<pipeline_sig>/
        pipeline.yaml
        batch_manager.json          PY-JSON, can be GBs
        data.jsonl                  leaf rows, one json.dumps(row) per line
                                    (its writer was not examined: treat it
                                    as opaque; empty if the run stopped)

(``folder = cache_dir / signature`` - no pipeline name level.)
batch_manager.json::

    {
      "<step name>": {                      one entry per NON-generator
        "step_name": "<step name>",         step, in DAG order
        "accumulate": false,                true for a global step
        "input_batch_size": 50,             or null
        "data": {                           predecessor -> FLAT list of rows
          "<predecessor>": [row, row, ...]  (not batches, no [[ ]] nesting)
        },
        "seq_no": 3,
        "last_batch_received": ["<predecessor>", ...],
        "type_info": {"module": "distilabel.pipeline.base",
                      "name": "_BatchManagerStep"}
      },
      ...,
      "type_info": {"module": "distilabel.pipeline.base",
                    "name": "_BatchManager"}
    }

Step names are object keys at the top level next to ``type_info``.  The
step entries are ``dataclasses.asdict`` output (field order above).  With
--target-bytes (or --interrupted) the run is modelled as stopped while the
step at index 2 (index 1 if there are two steps) is a global step
(``"accumulate": true``) holding every row produced upstream in
``data[<predecessor>]``; that single array is what grows, written
incrementally here.

Layout 2: per-step  (distilabel 1.0.0 - 1.1.1)
-----------------------------------------------
Source: base.py with ``_BatchManager.save()`` override (PR #496, Apr 2024):
``filename = path.parent / f"batch_manager_steps/{step_name}.json"``;
serializer PY-JSON for every file.  ``_cache_location``:
``folder = cache_dir / name / signature``.  Tree::

    <out>/pipelines/<name>/<pipeline_sig>/
        pipeline.yaml
        pipeline.log
        batch_manager.json
        batch_manager_steps/<step>.json     one per NON-generator step
        data/<leaf step>/00001.parquet ...  _WriteBuffer output (opaque)

batch_manager.json::

    {
      "steps": {"<step>": "/home/user/.cache/distilabel/pipelines/<name>/
                           <sig>/batch_manager_steps/<step>.json", ...},
               (order = Python set iteration order: arbitrary)
      "last_batch_received": {"<step>": BATCH | null, ...},  all steps,
      "last_batch_sent":     {"<step>": BATCH | null, ...},  DAG order
      "last_batch_flag_sent_to": ["<step>", ...],
      "type_info": {"module": "distilabel.pipeline.base",
                    "name": "_BatchManager"}
    }

BATCH here is ``dataclasses.asdict(_Batch)`` + type_info, WITH rows::

    {"seq_no": 4, "step_name": "embed", "last_batch": true,
     "data": [[row, ...]], "accumulated": false,
     "created_from": {"<predecessor>": [seq_no, seq_no, ...]},
     "batch_routed_to": [],
     "type_info": {"module": "distilabel.pipeline.base", "name": "_Batch"}}

(``created_from`` values are lists of plain ints: the seq_no of each
predecessor batch used.)  The batch sent to a generator step is a request
with ``"data": []``.

batch_manager_steps/<step>.json (``asdict(_BatchManagerStep)`` +
type_info; nested batches are plain asdict dicts WITHOUT type_info)::

    {"step_name": ..., "accumulate": false, "input_batch_size": 10,
     "data": {"<predecessor>": [NESTED_BATCH, ...]},   pending input
     "seq_no": 5, "last_batch_received": ["<predecessor>"],
     "convergence_step": false,
     "next_expected_created_from_batch_seq_no": 0,
     "type_info": {"module": "distilabel.pipeline.base",
                   "name": "_BatchManagerStep"}}

NESTED_BATCH = BATCH minus "type_info"; its "data" holds the rows not yet
consumed (1.0/1.1 slice ``batch.data[0]`` on partial consumption and drop a
fully consumed batch from the buffer without touching its data, so a
``last_batch_received`` entry still shows all its rows).  These versions
have no built_batches: with --interrupted the batch that was being
processed when the run stopped exists only as ``last_batch_sent``.

Layout 3: per-batch  (distilabel 1.2 - 1.3)
--------------------------------------------
Source: ``_BatchManager.cache(path)`` (PR #672): each buffered ``_Batch``
saved once as ``batch_{seq_no}_{data_hash}.json`` and referenced by path;
``dump(include_batch_data=False)`` elsewhere; serializer ORJSON.
``_cache_location`` (1.3-era base.py): pipeline.yaml, batch_manager.json,
data, batch_input_data, pipeline.log, stages.json under
``cache_dir / name / signature``.  Tree::

    <out>/pipelines/<name>/<pipeline_sig>/
        pipeline.yaml
        pipeline.log
        batch_manager.json
        stages.json
        batch_input_data/                   (empty here; fs-passed batches)
        data/steps_outputs/<leaf>/00001.parquet ...
        batch_manager_steps/<step>/         one per NON-generator step
            batch_manager_step.json
            built_batches/batch_<seq>_<hash>.json
            <predecessor>/batch_<seq>_<hash>.json

``<hash>`` is ``str(data_hash)``: for built batches it is null in the JSON
and the file name is literally ``batch_<seq>_None.json``.  Directories are
created even when empty.

batch_manager.json::

    {"steps": {"<step>": "<abs path>/batch_manager_steps/<step>/
                          batch_manager_step.json", ...},  (set order)
     "last_batch_received": {"<step>": META | null, ...},  all steps
     "last_batch_sent": {"<step>": META | null, ...},
     "last_batch_flag_sent_to": [...],
     "type_info": {"module": "distilabel.pipeline.batch_manager",
                   "name": "_BatchManager"}}

META (``_Batch._model_dump`` with include_batch_data=False)::

    {"seq_no":3,"step_name":"embed","last_batch":false,
     "data_hash":"<sha1>"|null,"accumulated":false,
     "created_from":{"<pred>":[[seq_no,size],...]},
     "batch_routed_to":[],"size":10,
     "type_info":{"module":"distilabel.pipeline.batch","name":"_Batch"}}

batch_manager_step.json::

    {"step_name":...,"accumulate":false,"input_batch_size":20,
     "data":{"<pred>":["<abs path of batch file>",...]},
     "built_batches":["<abs path of built batch file>",...],
     "seq_no":2,"last_batch_received":["<pred>"],"convergence_step":false,
     "convergence_step_batches_consumed":{},
     "next_expected_created_from_batch_seq_no":0,
     "next_expected_seq_no":{"<pred>":[a,b]},
     "step_signature":"<sha1>",
     "type_info":{"module":"distilabel.pipeline.batch_manager",
                  "name":"_BatchManagerStep"}}

(1.2 wrote the same minus built_batches, next_expected_seq_no and
step_signature; treat keys as optional.)  Batch file = META followed by the
rows, i.e. key order ``seq_no, step_name, last_batch, data_hash,
accumulated, created_from, batch_routed_to, size, type_info, data`` -
``"data"`` comes AFTER ``type_info`` because ``save_batch`` adds it to the
already dumped dict.  stages.json: ``{"current_stage":0,
"stages_last_batch":[["<leaf>",...]]}`` (``[[]]`` when interrupted).

Layout 4: current  (distilabel 1.4 - 1.5.3; matches the sample cache)
----------------------------------------------------------------------
Source: src/distilabel/pipeline/batch_manager.py with
``cache(self, path, steps_data_path)``, ``write_batch_data`` and
``load_from_cache(dag, batch_manager_path, steps_data_path)``; serializer
ORJSON.  Tree (sample: /work/shared/samples/distilabel-pr766)::

    <out>/pipelines/<name>/
        <pipeline_sig>/executions/<execution_sig>/
            pipeline.yaml
            pipeline.log
            batch_manager.json
            stages.json
            batch_manager_steps/<step>/     one per step, generators too
                batch_manager_step.json
                built_batches/              mkdir'ed always; files only
                    batch_<seq>_<hash>.json   when a run was interrupted
            data/steps_outputs/<leaf>/00001.parquet ...
        steps_data/<step>_<step_sig>/batch_<seq>.json
              every output batch of every step, written once when
              received (``write_batch_data``: skipped if the file exists,
              so it is shared by all executions of the pipeline)

``pipeline_sig`` = sha1(",".join(step names + ["<from>-<to>-<to>", ...]))
(``BasePipeline.signature``; e.g. "load_data,embed,annotate,
load_data-embed,embed-annotate,annotate-" -> c33f1b66..., as in the sample).
batch_manager.json: same keys as per-batch (META batch dumps, no rows; the
``steps`` map in set order, e.g. embed, load_data, annotate in the sample).
``created_from`` entries are triples ``[seq_no, size, rows_used]`` in the
sample (the pre-release source examined used pairs ``[seq_no, rows_used]``);
a parser should accept 2 or 3 ints.

batch_manager_step.json::

    {"step_name":...,"accumulate":false,"input_batch_size":50|null,
     "data":{"<pred>":[META, ...]},   pending input batches WITHOUT rows:
                                      on load the rows are re-read from
                                      steps_data using step_offset
     "built_batches":["<abs path>/built_batches/batch_<seq>_<hash>.json"],
     "seq_no":20,"last_batch_received":["<pred>"],
     "convergence_step":false,"convergence_step_batches_consumed":{},
     "next_expected_created_from_batch_seq_no":0,
     "next_expected_seq_no":{"<pred>":[20,20]},
     "step_signature":"<sha1>","use_cache":true,
     "step_offset":{"<pred>":[last_seq_no_used, rows_used_of_it]},
     "type_info":{"module":"distilabel.pipeline.batch_manager",
                  "name":"_BatchManagerStep"}}

A generator step has ``"input_batch_size":null,"data":{}``,
``"convergence_step":true`` (``all()`` of no predecessors) and empty
``next_expected_seq_no``/``step_offset``.  steps_data batch files
(``batch.dump()`` with data): key order ``seq_no, step_name, last_batch,
data_hash, accumulated, created_from, batch_routed_to, size, data,
type_info`` - here ``"data"`` is BEFORE ``type_info``.  built_batches files
use the per-batch order (``type_info`` then ``data``).
``<step_sig>`` / ``step_signature`` is the step's own sha1; the directory
name is ``f"{step_name}_{step_signature}"``.  stages.json as in per-batch.

Layout 5: split  (stepfs-native)
--------------------------------
Defined by stepfs, not by distilabel.  Tree::

    <out>/manager_meta.json
    <out>/step_<n>_data.json       even n: JSON array of all output rows
    <out>/step_<n>_data.jsonl      odd n: one row per line, "\n"-terminated
    <out>/step_<n>_data.<ext>      opaque file, ext rotates parquet, pkl,
                                   msgpack over n

``n`` is the 0-based step index.  Row JSON in .json/.jsonl is ORJSON style
(compact, raw UTF-8, NaN -> null).  Split .jsonl on "\n" only: strings
may contain a raw U+2028 (orjson does not escape it), which
``str.splitlines()`` treats as a line break.  manager_meta.json is
``json.dumps(..., indent=2, ensure_ascii=False)`` + "\n"::

    {"format": "stepfs-split", "version": 1, "pipeline": "<name>",
     "interrupted": false,
     "steps": [{"index": 0, "name": "<any string>",
                "predecessors": ["<name>"], "input_batch_size": null,
                "batches": 5, "rows": 50,
                "files": [{"name": "step_0_data.json", "kind": "json"},
                          {"name": "step_0_data.parquet",
                           "kind": "parquet", "bytes": 1234}]}, ...]}
"""

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time

FAKE_ROOT = "/home/user/.cache/distilabel"
TI_BASE_BATCH = {"module": "distilabel.pipeline.base", "name": "_Batch"}
TI_BASE_STEP = {"module": "distilabel.pipeline.base", "name": "_BatchManagerStep"}
TI_BASE_BM = {"module": "distilabel.pipeline.base", "name": "_BatchManager"}
TI_BATCH = {"module": "distilabel.pipeline.batch", "name": "_Batch"}
TI_STEP = {"module": "distilabel.pipeline.batch_manager", "name": "_BatchManagerStep"}
TI_BM = {"module": "distilabel.pipeline.batch_manager", "name": "_BatchManager"}
WRITE_BUFFER_ROWS = 50

_enc_str_ascii = json.encoder.encode_basestring_ascii
_enc_str_utf8 = json.encoder.encode_basestring


# --------------------------------------------------------------------------
# Serializers
# --------------------------------------------------------------------------

def orjson_float(x):
    """Format a float the way orjson (Rust ryu ``format_finite``) does."""
    if x != x or x in (math.inf, -math.inf):
        return "null"
    r = repr(x)
    sign = ""
    if r[0] == "-":
        sign, r = "-", r[1:]
    if "e" in r:
        mant, e = r.split("e")
        e = int(e)
    else:
        mant, e = r, 0
    ip, _, fp = mant.partition(".")
    d = (ip + fp).lstrip("0")
    k = e - len(fp)
    if not d:
        return sign + "0.0"
    stripped = d.rstrip("0")
    k += len(d) - len(stripped)
    d = stripped
    n = len(d)
    kk = n + k
    if 0 <= k and kk <= 16:
        return sign + d + "0" * k + ".0"
    if 0 < kk <= 16:
        return sign + d[:kk] + "." + d[kk:]
    if -5 < kk <= 0:
        return sign + "0." + "0" * (-kk) + d
    if n == 1:
        return sign + d + "e" + str(kk - 1)
    return sign + d[0] + "." + d[1:] + "e" + str(kk - 1)


def py_float(x):
    if x != x:
        return "NaN"
    if x == math.inf:
        return "Infinity"
    if x == -math.inf:
        return "-Infinity"
    return float.__repr__(x)


def enc_compact(o):
    """orjson.dumps(o) equivalent for the value kinds used here."""
    if isinstance(o, str):
        return _enc_str_utf8(o)
    if o is None:
        return "null"
    if o is True:
        return "true"
    if o is False:
        return "false"
    if isinstance(o, int):
        return int.__repr__(o)
    if isinstance(o, float):
        return orjson_float(o)
    if isinstance(o, (list, tuple)):
        return "[" + ",".join([enc_compact(v) for v in o]) + "]"
    if isinstance(o, dict):
        return "{" + ",".join([_enc_str_utf8(k) + ":" + enc_compact(v)
                               for k, v in o.items()]) + "}"
    raise TypeError(type(o))


def enc_pretty(o, lvl=0):
    """json.dumps(o, indent=2) at indentation level ``lvl``."""
    if isinstance(o, str):
        return _enc_str_ascii(o)
    if o is None:
        return "null"
    if o is True:
        return "true"
    if o is False:
        return "false"
    if isinstance(o, int):
        return int.__repr__(o)
    if isinstance(o, float):
        return py_float(o)
    if isinstance(o, (list, tuple)):
        if not o:
            return "[]"
        ind = "\n" + "  " * (lvl + 1)
        return "[" + ind + ("," + ind).join([enc_pretty(v, lvl + 1) for v in o]) \
            + "\n" + "  " * lvl + "]"
    if isinstance(o, dict):
        if not o:
            return "{}"
        ind = "\n" + "  " * (lvl + 1)
        return "{" + ind + ("," + ind).join(
            [_enc_str_ascii(k) + ": " + enc_pretty(v, lvl + 1) for k, v in o.items()]) \
            + "\n" + "  " * lvl + "}"
    raise TypeError(type(o))


class Lazy:
    """A JSON array whose items come from an iterable, written incrementally."""

    def __init__(self, it):
        self.it = it


class Out:
    """Byte-counting text sink (UTF-8) with a write buffer."""

    def __init__(self, path):
        self.f = open(path, "w", encoding="utf-8", newline="")
        self.buf = []
        self.n = 0

    def write(self, s):
        self.buf.append(s)
        self.n += len(s)
        if self.n > 1 << 20:
            self.flush()

    def flush(self):
        self.f.write("".join(self.buf))
        self.buf, self.n = [], 0

    def close(self):
        self.flush()
        self.f.close()


def stream_json(out, o, pretty, lvl=0):
    """Write ``o`` (which may contain Lazy arrays) like json.dump/orjson."""
    if isinstance(o, Lazy):
        it = iter(o.it)
        first = next(it, _END)
        if first is _END:
            out.write("[]")
            return
        if pretty:
            ind = "\n" + "  " * (lvl + 1)
            out.write("[" + ind)
            stream_json(out, first, pretty, lvl + 1)
            for v in it:
                out.write("," + ind)
                stream_json(out, v, pretty, lvl + 1)
            out.write("\n" + "  " * lvl + "]")
        else:
            out.write("[")
            stream_json(out, first, pretty)
            for v in it:
                out.write(",")
                stream_json(out, v, pretty)
            out.write("]")
        return
    if isinstance(o, dict) and _has_lazy(o):
        if pretty:
            ind = "\n" + "  " * (lvl + 1)
            out.write("{")
            for i, (k, v) in enumerate(o.items()):
                out.write(("," if i else "") + ind + _enc_str_ascii(k) + ": ")
                stream_json(out, v, pretty, lvl + 1)
            out.write("\n" + "  " * lvl + "}")
        else:
            out.write("{")
            for i, (k, v) in enumerate(o.items()):
                out.write(("," if i else "") + _enc_str_utf8(k) + ":")
                stream_json(out, v, pretty)
            out.write("}")
        return
    out.write(enc_pretty(o, lvl) if pretty else enc_compact(o))


_END = object()


def _has_lazy(o):
    if isinstance(o, Lazy):
        return True
    if isinstance(o, dict):
        return any(_has_lazy(v) for v in o.values())
    return False


def write_json(path, o, pretty):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    out = Out(path)
    stream_json(out, o, pretty)
    out.close()


def write_bytes(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def sha1(s):
    return hashlib.sha1(s.encode()).hexdigest()


def data_hash(data):
    return sha1(str(data))


# --------------------------------------------------------------------------
# Row content
# --------------------------------------------------------------------------

WORDS = [
    "café", "naïveté", "résumé", "smörgåsbord", "jalapeño", "Zürich", "São Paulo",
    "Ångström", "ß", "ﬁ", "e\u0301", "東京", "北京", "数据", "日本語のテキスト", "한국어",
    "العربية", "עברית", "हिन्दी", "Ελληνικά", "Москва", "😀", "🎉", "🚀",
    "👩\u200d💻", "👨\u200d👩\u200d👧\u200d👦", "🏳️\u200d🌈", "zero\u200bwidth",
    "quote\"inside", "back\\slash", "tab\there", "new\nline", "cr\rlf",
    "line\u2028sep", "bell\x07char", "\u200fRTL", "ascii", "data", "pipeline",
    "step", "batch", "cache", "distilabel", "plain", "'single'", "{json}",
    "[brackets]", "<tag>", "100%", "a/b", "C:\\path",
]
SPECIAL_FLOATS = [
    0.1, 1e-07, -0.0, 1e21, 0.3333333333333333, 123456789.125, 2.5, 1e-05,
    0.0001, 1e16, 1e15, 5e-324, 1.7976931348623157e308, 12345678.901234567,
    math.pi, -2.718281828459045, 0.30000000000000004, 1e-300, 1e100, 100.0,
]
LABELS = ["positive", "négatif", "neutral", "混合", None]
SOURCES = ["wiki", "web", "书", "أخبار", "forum 💬"]


class Cfg:
    pass


def make_text(rng, nbytes):
    parts, size = [], 0
    while size < nbytes:
        w = rng.choice(WORDS)
        parts.append(w)
        size += len(w.encode()) + 1
    return " ".join(parts)


def gen_row(cfg, rid):
    rng = random.Random(f"{cfg.seed}/row/{rid}")
    m = rid % 7
    row = {
        "id": rid,
        "instruction": make_text(rng, cfg.text_bytes),
        "score": (None if m == 0 else SPECIAL_FLOATS[rid % len(SPECIAL_FLOATS)]
                  if m != 5 else [math.nan, math.inf, -math.inf][rid % 3]),
        "weight": round(rng.random(), 6),
        "long_double": rng.random() / 3.0,
        "tags": [rng.choice(["a", "b", "ü", "字", "🙂", ""]) for _ in range(rid % 4)],
        "meta": None if m == 2 else {
            "source": SOURCES[rid % len(SOURCES)],
            "rank": rid % 16,
            "nested": {"flags": [rid % 2 == 0, rid % 3 == 0], "ratio": rid / 7.0,
                       "path": ["root", {"k": None, "v": [1, -1, 0]}]},
        },
        "is_valid": rid % 5 != 0,
        "empty": {} if m == 3 else [],
    }
    return row


def step_transform(cfg, k, name, row):
    rid = row["id"]
    rng = random.Random(f"{cfg.seed}/{k}/{rid}")
    new = dict(row)
    if k == 1:
        emb = [round(rng.uniform(-1.0, 1.0), 7) for _ in range(cfg.embedding_dim)]
        if emb and rid % 3 == 0:
            emb[0] = 1e-07
        if len(emb) > 1 and rid % 4 == 0:
            emb[1] = -0.0
        new["embedding"] = emb
        new["norm"] = math.sqrt(sum(v * v for v in emb))
    elif k == 2:
        text = row["instruction"]
        new["generation"] = "Réponse: " + text[::-1][: max(8, cfg.text_bytes)] + " ✅"
        new["label"] = LABELS[rid % len(LABELS)]
        new["spans"] = [[i, i + 3] for i in range(rid % 3)]
        new["scores"] = {"relevance": round(rng.random(), 4), "toxicity": 1e-07 * (rid % 5)}
    else:
        new[f"{name}_out"] = {"k": k, "value": rng.random(), "ok": rid % 2 == 1,
                              "note": make_text(rng, max(8, cfg.text_bytes // 4))}
    return new


# --------------------------------------------------------------------------
# Pipeline simulation (linear chain), streaming
# --------------------------------------------------------------------------

class Batch:
    __slots__ = ("seq_no", "step_name", "last_batch", "rows", "size",
                 "created_from", "is_input", "legacy")

    def __init__(self, seq_no, step_name, last_batch, rows, created_from, is_input):
        self.seq_no = seq_no
        self.step_name = step_name
        self.last_batch = last_batch
        self.rows = rows
        self.legacy = rows   # data as distilabel 1.0/1.1 keeps it (see _try_build)
        self.size = len(rows)
        self.created_from = created_from  # {pred: [(seq, size, used), ...]}
        self.is_input = is_input

    def data(self):
        return [self.rows]

    def hash(self):
        return None if self.is_input else data_hash(self.data())


class StepState:
    def __init__(self, k, name, pred, ibs):
        self.k, self.name, self.pred, self.ibs = k, name, pred, ibs
        self.buffer = []
        self.seq_no = 0
        self.last_received = False
        self.next_expected = (0, 0)
        self.offset = (0, 0)
        self.pending = None
        self.built = []
        self.n_out = 0
        self.rows_out = 0


class Sim:
    """Runs the chain; calls on_output(k, batch) for every output batch."""

    def __init__(self, cfg, on_output):
        self.cfg = cfg
        self.on_output = on_output
        n = len(cfg.names)
        self.states = [None] + [
            StepState(k, cfg.names[k], cfg.names[k - 1], cfg.ibs[k]) for k in range(1, n)]
        self.last_received = [None] * n   # last output Batch of each step
        self.last_sent = [None] * n       # last input Batch built for each step
        self.gen_batches = 0

    def run(self):
        cfg = self.cfg
        rid = 0
        for g in range(cfg.batches):
            rows = [gen_row(cfg, rid + i) for i in range(cfg.batch_size)]
            rid += cfg.batch_size
            last = (g == cfg.batches - 1) and not cfg.interrupted
            self.gen_batches += 1
            self.last_sent[0] = Batch(g, cfg.names[0], False, [], {}, True)
            self._emit(0, Batch(g, cfg.names[0], last, rows, {}, False))
        if not cfg.interrupted:
            for k in range(1, len(cfg.names)):
                st = self.states[k]
                while st.pending is not None:
                    p, st.pending = st.pending, None
                    self._process(k, p)
                    self._try_build(k)
        else:
            for k in range(1, len(cfg.names)):
                st = self.states[k]
                if st.pending is not None:
                    st.built.append(st.pending)
                    st.pending = None

    def _emit(self, k, b):
        self.on_output(k, b)
        self.last_received[k] = b
        if k + 1 < len(self.states):
            st = self.states[k + 1]
            st.buffer.append(b)
            if b.last_batch:
                st.last_received = True
            self._try_build(k + 1)

    def _available(self, st):
        return sum(len(b.rows) for b in st.buffer)

    def _try_build(self, k):
        st = self.states[k]
        while True:
            avail = self._available(st)
            if avail >= st.ibs or (st.last_received and avail > 0):
                pass
            else:
                return
            remaining = st.ibs
            rows, used_list = [], []
            while remaining > 0 and st.buffer:
                b = st.buffer[0]
                take = b.rows[:remaining]
                if remaining < len(b.rows):
                    b.rows = b.rows[remaining:]
                    b.legacy = b.rows   # 1.0/1.1 slice data[0] on partial use
                else:
                    b.rows = []         # 1.0/1.1 drop the batch, data untouched
                rows.extend(take)
                remaining -= len(take)
                used_list.append((b.seq_no, b.size, len(take)))
                if not b.rows:
                    st.buffer.pop(0)
                    nxt = b.seq_no + 1
                else:
                    nxt = b.seq_no
            prev = st.next_expected
            st.next_expected = (nxt, max(nxt, prev[1]))
            pseq, poff = st.offset
            lseq, _, lused = used_list[-1]
            st.offset = (max(lseq, pseq), poff + lused if pseq == lseq else lused)
            last = st.last_received and not st.buffer
            inb = Batch(st.seq_no, st.name, last, rows, {st.pred: used_list}, True)
            st.seq_no += 1
            self.last_sent[k] = inb
            if st.pending is not None:
                p, st.pending = st.pending, inb
                self._process(k, p)
            else:
                st.pending = inb

    def _process(self, k, inb):
        cfg = self.cfg
        st = self.states[k]
        rows = [step_transform(cfg, k, st.name, r) for r in inb.rows]
        st.n_out += 1
        st.rows_out += len(rows)
        self._emit(k, Batch(inb.seq_no, st.name, inb.last_batch, rows,
                            inb.created_from, False))


# --------------------------------------------------------------------------
# Shared pieces: YAML, log, parquet, signatures
# --------------------------------------------------------------------------

def yaml_scalar(s):
    if s is None:
        return "null"
    if isinstance(s, bool):
        return "true" if s else "false"
    if isinstance(s, (int, float)):
        return repr(s)
    safe = s and all(c.isascii() and (c.isalnum() or c in "_-.") for c in s) \
        and s[0].isalpha() and s.lower() not in ("null", "true", "false", "yes", "no", "on", "off")
    if safe:
        return s
    out = ['"']
    for c in s:
        o = ord(c)
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif o < 0x20 or o == 0x7F:
            out.append("\\x%02X" % o)
        elif o > 0xFFFF:
            out.append("\\U%08X" % o)
        elif o > 0x7E:
            out.append("\\u%04X" % o)
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


RT_RESOURCES = """\
      - name: resources
        runtime_parameters_info:
        - name: replicas
          optional: true
          description: The number of replicas for the step.
        - name: cpus
          optional: true
          description: The number of CPUs assigned to each step replica.
        - name: gpus
          optional: true
          description: The number of GPUs assigned to each step replica.
        - name: memory
          optional: true
          description: The memory in bytes required for each step replica.
        - name: resources
          optional: true
          description: A dictionary containing names of custom resources and the number
            of those resources required for each step replica.
"""


def pipeline_yaml(cfg, version, names=None):
    names = names or cfg.names
    y = ["distilabel:", f"  version: {version}", "pipeline:",
         f"  name: {yaml_scalar(cfg.pipeline_name)}",
         f"  description: {yaml_scalar('Test pipeline for cache packing ✨')}",
         "  steps:"]
    for k, n in enumerate(names):
        y += ["  - step:", f"      name: {yaml_scalar(n)}", "      resources:",
              "        replicas: 1", "        cpus: null", "        gpus: null",
              "        memory: null", "        resources: null",
              "      input_mappings: {}", "      output_mappings: {}",
              "      use_cache: true"]
        if k == 0:
            y.append(f"      batch_size: {cfg.batch_size}")
        else:
            y.append(f"      input_batch_size: {cfg.ibs[k]}")
        y.append("      runtime_parameters_info:")
        y.append(RT_RESOURCES.rstrip("\n"))
        if k == 0:
            y += ["      - name: batch_size", "        optional: true",
                  "        description: The number of rows that will contain the batches generated by",
                  "          the step."]
        else:
            y += ["      - name: input_batch_size", "        optional: true",
                  "        description: The number of rows that will contain the batches processed by",
                  "          the step."]
        y += ["      type_info:",
              "        module: " + ("distilabel.steps.generators.data" if k == 0 else "dlsteps"),
              "        name: " + ("LoadDataFromDicts" if k == 0 else
                                  ["Embed", "Annotate"][k - 1] if k <= 2 else f"Extra{k}"),
              f"    name: {yaml_scalar(n)}"]
    y.append("  connections:")
    for k, n in enumerate(names):
        y.append(f"  - from: {yaml_scalar(n)}")
        if k + 1 < len(names):
            y += ["    to:", f"    - {yaml_scalar(names[k + 1])}"]
        else:
            y.append("    to: []")
    y += ["  routing_batch_functions: []", "  type_info:",
          "    module: distilabel.pipeline.local", "    name: Pipeline",
          "requirements: []", ""]
    return "\n".join(y)


class Log:
    """pipeline.log in distilabel's format ("[date] LEVEL    message")."""

    def __init__(self, path, cfg, data_dir):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.out = Out(path)
        self.t = 1700000000 + cfg.seed % 100000
        self.names = cfg.names
        self.line(f"📝 Pipeline data will be written to '{data_dir}'")
        stages = "".join(f"\n   - '{n}'" for n in cfg.names)
        self.line(f"⌛ The steps of the pipeline will be loaded in stages:\n * Stage 0:{stages}")
        self.line("⏳ Waiting for all the steps of stage 0 to load...")
        reps = "".join(f"\n * '{n}' replicas: 1/1" for n in cfg.names)
        self.line(f"⏳ Steps from stage 0 loaded: {len(cfg.names)}/{len(cfg.names)}{reps}")
        self.line("✅ All the steps from stage 0 have been loaded!")
        self.line(f"🧬 Starting yielding batches from generator step '{cfg.names[0]}'. Offset: 0")

    def line(self, msg, level="INFO"):
        ts = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.t))
        self.out.write(f"[{ts}] {level:<8} {msg}\n")

    def batch(self, k, b):
        self.t += 1
        if k > 0:
            self.line(f"📦 Processing batch {b.seq_no} in '{self.names[k]}' (replica ID: 0)")
        self.line(f"📨 Step '{self.names[k]}' sending batch {b.seq_no} to output queue")

    def close(self, interrupted):
        if interrupted:
            self.line("🛑 Stopping pipeline. Waiting for steps to finish processing batches...")
            for n in self.names:
                self.line(f"🛑 Stopped running step '{n}' (replica ID: 0)", "WARNING")
        else:
            for n in self.names:
                self.line(f"🏁 Finished running step '{n}' (replica ID: 0)")
        self.out.close()


class WriteBuffer:
    """Mimics _WriteBuffer: leaf rows -> data/.../<leaf>/0000N.parquet."""

    def __init__(self, cfg, base):
        self.cfg, self.base, self.rows, self.nfile = cfg, base, 0, 0
        self.rng = random.Random(f"{cfg.seed}/parquet/{os.path.basename(base)}")
        if not cfg.no_empty_dirs:
            os.makedirs(base, exist_ok=True)   # _WriteBuffer mkdirs leaf dirs

    def add(self, n):
        self.rows += n
        if self.rows >= WRITE_BUFFER_ROWS:
            self.flush()

    def flush(self):
        if not self.rows:
            return
        self.nfile += 1
        per_row = 2 * self.cfg.text_bytes + 5 * self.cfg.embedding_dim + 120
        write_bytes(os.path.join(self.base, f"{self.nfile:05d}.parquet"),
                    opaque(self.rng, b"PAR1", b"PAR1", self.rows * per_row))
        self.rows = 0


def opaque(rng, head, tail, size):
    size = max(size, len(head) + len(tail) + 4)
    body = size - len(head) - len(tail)
    return head + rng.randbytes(body) + tail


def sig_of(cfg, *parts):
    return sha1("/".join([str(cfg.seed)] + [str(p) for p in parts]))


def pipeline_signature(names):
    conns = [f"{n}-{names[i + 1]}" if i + 1 < len(names) else f"{n}-"
             for i, n in enumerate(names)]
    return sha1(",".join(list(names) + conns))


def set_order(cfg, names, salt):
    order = list(names)
    random.Random(f"{cfg.seed}/set/{salt}").shuffle(order)
    return order


# --------------------------------------------------------------------------
# Layout: monolithic
# --------------------------------------------------------------------------

def write_monolithic(cfg):
    names = cfg.names
    n = len(names)
    psig = sig_of(cfg, "monolithic", *names)
    folder = os.path.join(cfg.out, "pipelines", psig)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "pipeline.yaml"), "w", encoding="utf-8") as f:
        f.write(pipeline_yaml(cfg, "1.0.0"))
    stopped = cfg.interrupted or cfg.target_bytes
    B, G = cfg.batch_size, cfg.batches
    total = B * G
    gk = 2 if n >= 3 else 1   # index of the global (accumulating) step
    doc = {}
    jsonl = Out(os.path.join(folder, "data.jsonl"))

    def upstream_rows(k):
        """Rows produced by step k (k < gk), generated lazily."""
        for g in range(G):
            for i in range(B):
                r = gen_row(cfg, g * B + i)
                for j in range(1, k + 1):
                    r = step_transform(cfg, j, names[j], r)
                yield r

    for k in range(1, n):
        st = {"step_name": names[k], "accumulate": bool(stopped and k == gk),
              "input_batch_size": cfg.ibs[k]}
        pred = names[k - 1]
        if stopped:
            if k < gk:
                data, seq, lbr = [], G, []
            elif k == gk:
                data, seq, lbr = Lazy(upstream_rows(k - 1)), 0, []
            else:
                data, seq, lbr = [], 0, []
        else:
            data, lbr = [], [pred]
            seq = math.ceil(total / cfg.ibs[k]) if total else 0
        st["data"] = {pred: data}
        st["seq_no"] = seq
        st["last_batch_received"] = lbr
        st["type_info"] = TI_BASE_STEP
        doc[names[k]] = st
    doc["type_info"] = TI_BASE_BM
    write_json(os.path.join(folder, "batch_manager.json"), doc, pretty=True)
    if not stopped:
        for g in range(G):
            for i in range(B):
                r = gen_row(cfg, g * B + i)
                for j in range(1, n):
                    r = step_transform(cfg, j, names[j], r)
                jsonl.write(json.dumps(r) + "\n")
    jsonl.close()


# --------------------------------------------------------------------------
# Layout: per-step (1.0 - 1.1)
# --------------------------------------------------------------------------

def cf_ints(cf):
    return {p: [e[0] for e in v] for p, v in cf.items()}


def write_per_step(cfg):
    names = cfg.names
    psig = sig_of(cfg, "per-step", *names)
    folder = os.path.join(cfg.out, "pipelines", cfg.pipeline_name, psig)
    fake = f"{FAKE_ROOT}/pipelines/{cfg.pipeline_name}/{psig}"
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "pipeline.yaml"), "w", encoding="utf-8") as f:
        f.write(pipeline_yaml(cfg, "1.1.1"))
    log = Log(os.path.join(folder, "pipeline.log"), cfg, f"{fake}/data")
    leaf = len(names) - 1
    wb = WriteBuffer(cfg, os.path.join(folder, "data", names[leaf]))

    def on_output(k, b):
        log.batch(k, b)
        if k == leaf:
            wb.add(len(b.rows))

    sim = Sim(cfg, on_output)
    sim.run()
    wb.flush()
    log.close(cfg.interrupted)

    def dump_batch(b, with_ti=True):
        if b is None:
            return None
        if b.is_input and not b.rows:
            data = []
        else:
            data = [b.legacy]
        d = {"seq_no": b.seq_no, "step_name": b.step_name, "last_batch": b.last_batch,
             "data": data, "accumulated": False,
             "created_from": cf_ints(b.created_from), "batch_routed_to": []}
        if with_ti:
            d["type_info"] = TI_BASE_BATCH
        return d

    steps = {}
    for k in range(1, len(names)):
        st = sim.states[k]
        sd = {"step_name": st.name, "accumulate": False, "input_batch_size": st.ibs,
              "data": {st.pred: [dump_batch(b, False) for b in st.buffer]},
              "seq_no": st.seq_no,
              "last_batch_received": [st.pred] if st.last_received else [],
              "convergence_step": False,
              "next_expected_created_from_batch_seq_no": 0,
              "type_info": TI_BASE_STEP}
        rel = f"batch_manager_steps/{st.name}.json"
        write_json(os.path.join(folder, rel), sd, pretty=True)
        steps[st.name] = f"{fake}/{rel}"
    order = set_order(cfg, list(steps), "per-step")
    doc = {"steps": {s: steps[s] for s in order},
           "last_batch_received": {names[k]: dump_batch(sim.last_received[k])
                                   for k in range(len(names))},
           "last_batch_sent": {names[k]: dump_batch(sim.last_sent[k])
                               for k in range(len(names))},
           "last_batch_flag_sent_to": [],
           "type_info": TI_BASE_BM}
    write_json(os.path.join(folder, "batch_manager.json"), doc, pretty=True)


# --------------------------------------------------------------------------
# Layouts: per-batch (1.2 - 1.3) and current (1.4 - 1.5.3)
# --------------------------------------------------------------------------

def meta(b, cf_kind, hash_override=_END):
    h = b.hash() if hash_override is _END else hash_override
    if cf_kind == "pair":
        cf = {p: [[e[0], e[1]] for e in v] for p, v in b.created_from.items()}
    else:
        cf = {p: [list(e) for e in v] for p, v in b.created_from.items()}
    return {"seq_no": b.seq_no, "step_name": b.step_name, "last_batch": b.last_batch,
            "data_hash": h, "accumulated": False, "created_from": cf,
            "batch_routed_to": [], "size": 0 if b.is_input else b.size,
            "type_info": TI_BATCH}


def save_batch_file(dirpath, fakedir, b, cf_kind):
    """_BatchManager.cache.save_batch: META (+type_info) then "data"."""
    m = meta(b, cf_kind)
    fname = f"batch_{b.seq_no}_{m['data_hash']}.json"
    m["data"] = [b.rows]
    write_json(os.path.join(dirpath, fname), m, pretty=False)
    return f"{fakedir}/{fname}"


def write_bm_common(cfg, folder, fake, sim, names, cf_kind, with_generators,
                    step_sigs, current, salt):
    """batch_manager.json + batch_manager_steps/ for per-batch and current."""
    steps = {}
    first = 0 if with_generators else 1
    for k in range(first, len(names)):
        st = sim.states[k] if k else None
        name = names[k]
        sdir = os.path.join(folder, "batch_manager_steps", name)
        sfake = f"{fake}/batch_manager_steps/{name}"
        os.makedirs(sdir, exist_ok=True)
        bdir = os.path.join(sdir, "built_batches")
        if st and st.built or not cfg.no_empty_dirs:
            os.makedirs(bdir, exist_ok=True)
        built = [save_batch_file(bdir, f"{sfake}/built_batches", b, cf_kind)
                 for b in (st.built if st else [])]
        if st is None:
            data = {}
        elif current:
            data = {st.pred: [meta(b, cf_kind) for b in st.buffer]}
        else:
            pdir = os.path.join(sdir, st.pred)
            if st.buffer or not cfg.no_empty_dirs:
                os.makedirs(pdir, exist_ok=True)
            data = {st.pred: [save_batch_file(pdir, f"{sfake}/{st.pred}", b, cf_kind)
                              for b in st.buffer]}
        sd = {"step_name": name, "accumulate": False,
              "input_batch_size": st.ibs if st else None,
              "data": data, "built_batches": built,
              "seq_no": st.seq_no if st else 0,
              "last_batch_received": [st.pred] if st and st.last_received else [],
              "convergence_step": st is None,
              "convergence_step_batches_consumed": {},
              "next_expected_created_from_batch_seq_no": 0,
              "next_expected_seq_no": {st.pred: list(st.next_expected)} if st else {},
              "step_signature": step_sigs[k]}
        if current:
            sd["use_cache"] = True
            sd["step_offset"] = {st.pred: list(st.offset)} if st else {}
        sd["type_info"] = TI_STEP
        write_json(os.path.join(sdir, "batch_manager_step.json"), sd, pretty=False)
        steps[name] = f"{sfake}/batch_manager_step.json"
    order = set_order(cfg, list(steps), salt)

    def sent(k):
        b = sim.last_sent[k]
        return None if b is None else meta(b, cf_kind, None)

    doc = {"steps": {s: steps[s] for s in order},
           "last_batch_received": {names[k]: (meta(sim.last_received[k], cf_kind)
                                              if sim.last_received[k] else None)
                                   for k in range(len(names))},
           "last_batch_sent": {names[k]: sent(k) for k in range(len(names))},
           "last_batch_flag_sent_to": [],
           "type_info": TI_BM}
    write_json(os.path.join(folder, "batch_manager.json"), doc, pretty=False)
    stages = {"current_stage": 0,
              "stages_last_batch": [[] if cfg.interrupted else sorted([names[-1]])]}
    write_json(os.path.join(folder, "stages.json"), stages, pretty=False)


def write_per_batch(cfg):
    names = cfg.names
    psig = sig_of(cfg, "per-batch", *names)
    folder = os.path.join(cfg.out, "pipelines", cfg.pipeline_name, psig)
    fake = f"{FAKE_ROOT}/pipelines/{cfg.pipeline_name}/{psig}"
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "pipeline.yaml"), "w", encoding="utf-8") as f:
        f.write(pipeline_yaml(cfg, "1.3.2"))
    if not cfg.no_empty_dirs:
        os.makedirs(os.path.join(folder, "batch_input_data"), exist_ok=True)
    log = Log(os.path.join(folder, "pipeline.log"), cfg, f"{fake}/data/steps_outputs")
    leaf = len(names) - 1
    wb = WriteBuffer(cfg, os.path.join(folder, "data", "steps_outputs", names[leaf]))

    def on_output(k, b):
        log.batch(k, b)
        if k == leaf:
            wb.add(len(b.rows))

    sim = Sim(cfg, on_output)
    sim.run()
    wb.flush()
    log.close(cfg.interrupted)
    step_sigs = [sig_of(cfg, "step", n) for n in names]
    write_bm_common(cfg, folder, fake, sim, names, "pair", False, step_sigs, False, psig)


def write_current(cfg):
    base_name = cfg.pipeline_name
    for e in range(cfg.executions):
        pname = base_name if e // 2 == 0 else f"{base_name}-{e // 2}"
        names = cfg.names
        psig = pipeline_signature(names)
        step_sigs = [sig_of(cfg, "step", pname, n) for n in names]
        if e % 2 == 1:
            step_sigs[-1] = sig_of(cfg, "step-changed", pname, names[-1], e)
        esig = sig_of(cfg, "execution", pname, e, *step_sigs)
        root = os.path.join(cfg.out, "pipelines", pname)
        folder = os.path.join(root, psig, "executions", esig)
        fake_root = f"{FAKE_ROOT}/pipelines/{pname}"
        fake = f"{fake_root}/{psig}/executions/{esig}"
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "pipeline.yaml"), "w", encoding="utf-8") as f:
            f.write(pipeline_yaml(cfg, "1.4.0" if e % 2 == 0 else "1.5.3"))
        log = Log(os.path.join(folder, "pipeline.log"), cfg, f"{fake}/data/steps_outputs")
        leaf = len(names) - 1
        wb = WriteBuffer(cfg, os.path.join(folder, "data", "steps_outputs", names[leaf]))

        def on_output(k, b, names=names, step_sigs=step_sigs, root=root, wb=wb,
                      log=log, leaf=leaf):
            log.batch(k, b)
            if k == leaf:
                wb.add(len(b.rows))
            path = os.path.join(root, "steps_data", f"{names[k]}_{step_sigs[k]}",
                                f"batch_{b.seq_no}.json")
            if not os.path.exists(path):
                d = meta(b, "triple")
                del d["type_info"]
                d["data"] = [b.rows]
                d["type_info"] = TI_BATCH
                write_json(path, d, pretty=False)

        sim = Sim(cfg, on_output)
        sim.run()
        wb.flush()
        log.close(cfg.interrupted)
        write_bm_common(cfg, folder, fake, sim, names, "triple", True, step_sigs, True, esig)


# --------------------------------------------------------------------------
# Layout: split (stepfs-native)
# --------------------------------------------------------------------------

def write_split(cfg):
    names = cfg.names
    os.makedirs(cfg.out, exist_ok=True)
    outs, kinds = [], []
    for k in range(len(names)):
        kind = "json" if k % 2 == 0 else "jsonl"
        out = Out(os.path.join(cfg.out, f"step_{k}_data.{kind}"))
        if kind == "json":
            out.write("[")
        outs.append([out, kind, 0])
        kinds.append(kind)
    counts = [[0, 0] for _ in names]

    def on_output(k, b):
        o = outs[k]
        counts[k][0] += 1
        counts[k][1] += len(b.rows)
        for r in b.rows:
            s = enc_compact(r)
            if o[1] == "json":
                o[0].write(("," if o[2] else "") + s)
            else:
                o[0].write(s + "\n")
            o[2] += 1

    sim = Sim(cfg, on_output)
    sim.run()
    steps = []
    for k, n in enumerate(names):
        out, kind, _ = outs[k]
        if kind == "json":
            out.write("]")
        out.close()
        ext = ["parquet", "pkl", "msgpack"][k % 3]
        head, tail = {"parquet": (b"PAR1", b"PAR1"), "pkl": (b"\x80\x05\x95", b"."),
                      "msgpack": (b"\xdd", b"\xc0")}[ext]
        rng = random.Random(f"{cfg.seed}/split/{k}")
        blob = opaque(rng, head, tail, counts[k][1] * (cfg.text_bytes + 4 * cfg.embedding_dim + 60))
        write_bytes(os.path.join(cfg.out, f"step_{k}_data.{ext}"), blob)
        steps.append({"index": k, "name": n,
                      "predecessors": [names[k - 1]] if k else [],
                      "input_batch_size": cfg.ibs[k] if k else None,
                      "batches": counts[k][0], "rows": counts[k][1],
                      "files": [{"name": f"step_{k}_data.{kind}", "kind": kind},
                                {"name": f"step_{k}_data.{ext}", "kind": ext,
                                 "bytes": len(blob)}]})
    metaj = {"format": "stepfs-split", "version": 1, "pipeline": cfg.pipeline_name,
             "interrupted": bool(cfg.interrupted), "steps": steps}
    with open(os.path.join(cfg.out, "manager_meta.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(metaj, indent=2, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------

LAYOUTS = {"monolithic": write_monolithic, "per-step": write_per_step,
           "per-batch": write_per_batch, "current": write_current, "split": write_split}

HOSTILE_ANY = ["../x", "a/b", "with space 東京", 'q"uote\\back', "👩\u200d💻 émoji",
               "tab\tname", "..", "-dash"]
HOSTILE_PATH = ["load data ✨", "émbed 埋め込み", "anno\\tate \"q\"", "..x 👩\u200d💻",
                "-dash", "space  two", "ال\u200fعربية", "zero\u200bwidth"]
DEFAULT_NAMES = ["load_data", "embed", "annotate"]


def dir_size(path):
    total = 0
    for dp, _, fns in os.walk(path):
        for fn in fns:
            total += os.path.getsize(os.path.join(dp, fn))
    return total


def build_cfg(a, batches):
    cfg = Cfg()
    cfg.layout = a.layout
    cfg.seed = a.seed
    cfg.batch_size = a.batch_size
    cfg.batches = batches
    cfg.embedding_dim = a.embedding_dim
    cfg.text_bytes = a.text_bytes
    cfg.interrupted = a.interrupted
    cfg.executions = a.executions
    cfg.target_bytes = a.target_bytes
    cfg.no_empty_dirs = a.no_empty_dirs
    cfg.pipeline_name = a.pipeline_name
    if a.step_names:
        names = a.step_names.split(",")
        if len(names) != a.steps:
            sys.exit("gen_cache: --step-names must list exactly --steps names")
    elif a.hostile_names:
        pool = HOSTILE_ANY if a.layout in ("monolithic", "split") else HOSTILE_PATH
        names = [pool[i % len(pool)] + ("" if i < len(pool) else f"_{i}")
                 for i in range(a.steps)]
    else:
        names = (DEFAULT_NAMES + [f"step_{i}" for i in range(3, a.steps)])[:a.steps]
    if len(set(names)) != len(names):
        sys.exit("gen_cache: step names must be unique")
    cfg.names = names
    B = a.batch_size
    cfg.ibs = [None] + [B if k == 1 else (3 * B // 2 if a.interrupted else 2 * B)
                        for k in range(1, len(names))]
    return cfg


def main(argv=None):
    p = argparse.ArgumentParser(description="Write synthetic distilabel caches.")
    p.add_argument("--layout", required=True, choices=sorted(LAYOUTS))
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--step-names")
    p.add_argument("--batches", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--embedding-dim", type=int, default=16)
    p.add_argument("--text-bytes", type=int, default=80)
    p.add_argument("--interrupted", action="store_true")
    p.add_argument("--executions", type=int, default=1)
    p.add_argument("--target-bytes", type=int, default=0)
    p.add_argument("--hostile-names", action="store_true")
    p.add_argument("--no-empty-dirs", action="store_true")
    p.add_argument("--pipeline-name", default="unicode-cache-test")
    a = p.parse_args(argv)
    if a.steps < 1 or a.batches < 1 or a.batch_size < 1 or a.executions < 1:
        sys.exit("gen_cache: --steps, --batches, --batch-size, --executions must be >= 1")
    if a.embedding_dim < 0 or a.text_bytes < 0 or a.target_bytes < 0:
        sys.exit("gen_cache: sizes must be >= 0")
    if a.layout == "monolithic" and a.target_bytes and a.steps < 2:
        sys.exit("gen_cache: monolithic --target-bytes needs --steps >= 2")
    if os.path.exists(a.out) and (not os.path.isdir(a.out) or os.listdir(a.out)):
        sys.exit(f"gen_cache: --out {a.out!r} exists and is not an empty directory")
    batches = a.batches
    if a.target_bytes:
        parent = os.path.dirname(os.path.abspath(a.out)) or "."
        sizes = []
        for trial in (1, 3):
            tmp = tempfile.mkdtemp(prefix=".gen_cache_cal.", dir=parent)
            try:
                cfg = build_cfg(a, trial)
                cfg.out = tmp
                LAYOUTS[a.layout](cfg)
                sizes.append(dir_size(tmp))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        slope = max(1.0, (sizes[1] - sizes[0]) / 2.0)
        batches = max(1, 1 + math.ceil((a.target_bytes - sizes[0]) / slope))
    cfg = build_cfg(a, batches)
    cfg.out = a.out
    os.makedirs(a.out, exist_ok=True)
    LAYOUTS[a.layout](cfg)
    if a.target_bytes:
        print(f"gen_cache: {a.layout}: {batches} generator batches, "
              f"{dir_size(a.out)} bytes in {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
