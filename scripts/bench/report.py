#!/usr/bin/env python3
"""Turn the raw samples written by scripts/bench.sh into the results table.

    report.py RESULTS_TSV INFO_TSV [--markdown FILE]

RESULTS_TSV: one sample a line, "metric<TAB>system<TAB>value".
INFO_TSV:    "key<TAB>value" lines (machine, command, sizes, file names).
Prints a text table; with --markdown also writes a Markdown section.
"""
import statistics
import sys
from collections import defaultdict

SQUASH = ("squashfuse", "squashfuse_ll")

# metric, label, unit, better ("high"/"low"), target kind, target value
#   target kinds: "ratio>=" / "ratio<=" (stepfs / best squashfuse),
#                 "abs<=" (stepfs value, INFO key or number), None (no target)
METRICS = [
    ("seq_cold_rows", "cold sequential read, rows.jsonl", "MiB/s", "high", "ratio>=", 1.3),
    ("seq_cold_batch", "cold sequential read, source batch file", "MiB/s", "high", "ratio>=", 1.3),
    ("seq_warm_rows", "warm sequential read, rows.jsonl", "MiB/s", "high", "ratio>=", 0.95),
    ("seq_warm_batch", "warm sequential read, source batch file", "MiB/s", "high", "ratio>=", 0.95),
    ("rand1_cold", "cold random 4 KiB reads, 1 job", "IOPS", "high", "ratio>=", 2.0),
    ("rand4_cold", "cold random 4 KiB reads, 4 jobs", "IOPS", "high", "ratio>=", 2.0),
    ("rand1_warm", "warm random 4 KiB reads, 1 job", "IOPS", "high", None, None),
    ("rand4_warm", "warm random 4 KiB reads, 4 jobs", "IOPS", "high", None, None),
    ("find_cold", "cold `find -type f | wc -l`, same tree", "s", "low", "ratio<=", 1.0),
    ("lslR_cold", "cold `ls -lR`, same tree", "s", "low", "ratio<=", 1.0),
    ("find_warm", "warm `find -type f | wc -l`, same tree", "s", "low", None, None),
    ("lslR_warm", "warm `ls -lR`, same tree", "s", "low", None, None),
    ("find_cold_all", "cold `find -type f | wc -l`, whole mount", "s", "low", None, None),
    ("mount_data", "mount time, large-file store (cold)", "ms", "low", "ratio<=", 1.0),
    ("mount_meta", "mount time, many-file store (cold)", "ms", "low", "ratio<=", 1.0),
    ("rss_data", "daemon RSS after reading every file, large-file store", "MiB", "low", "abs<=", "rss_limit_mib"),
    ("rss_meta", "daemon RSS after `ls -lR`, many-file store", "MiB", "low", "abs<=", "rss_limit_mib"),
    ("rss_meta_all", "daemon RSS after reading every file, many-file store (first run only)", "MiB", "low", "abs<=", "rss_limit_mib"),
    ("size_data", "store / image size, large-file data", "MiB", "low", "ratio<=", 1.0),
    ("size_meta", "store / image size, many-file data", "MiB", "low", "ratio<=", 1.0),
    ("pack_data", "pack time, large-file data", "s", "low", "ratio<=", 1.0),
    ("pack_meta", "pack time, many-file data", "s", "low", "ratio<=", 1.0),
    ("pack_sync_data", "pack time incl. fsync of the image, large-file data", "s", "low", None, None),
    ("pack_sync_meta", "pack time incl. fsync of the image, many-file data", "s", "low", None, None),
]

REFERENCE = [
    ("zstd_dc", "zstd -dc of rows.jsonl.zst (level 3, one core)", "MiB/s", "zstd"),
    ("seq_cold_rows", "uncompressed rows.jsonl from disk, cold", "MiB/s", "disk"),
    ("seq_warm_rows", "uncompressed rows.jsonl from disk, warm", "MiB/s", "disk"),
    ("seq_cold_batch", "uncompressed batch file from disk, cold", "MiB/s", "disk"),
    ("seq_warm_batch", "uncompressed batch file from disk, warm", "MiB/s", "disk"),
    ("rand1_cold", "uncompressed rows.jsonl, random 4 KiB, 1 job, cold", "IOPS", "disk"),
    ("rand4_cold", "uncompressed rows.jsonl, random 4 KiB, 4 jobs, cold", "IOPS", "disk"),
    ("rand1_warm", "uncompressed rows.jsonl, random 4 KiB, 1 job, warm", "IOPS", "disk"),
    ("rand4_warm", "uncompressed rows.jsonl, random 4 KiB, 4 jobs, warm", "IOPS", "disk"),
]


def fmt(value, unit):
    if value is None:
        return "-"
    if unit == "IOPS":
        return f"{value:,.0f}"
    if unit == "ms":
        return f"{value:.1f}"
    if unit == "s":
        return f"{value:.3f}" if value < 10 else f"{value:.2f}"
    if value >= 1000:
        return f"{value:,.0f}"
    if unit == "" and value < 10:
        return f"{value:.3g}"
    return f"{value:.1f}"


def main(argv):
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    samples = defaultdict(list)
    with open(argv[1]) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 3:
                samples[(parts[0], parts[1])].append(float(parts[2]))
    info = {}
    with open(argv[2]) as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("\t")
            info[key] = value
    md_path = None
    if "--markdown" in argv:
        md_path = argv[argv.index("--markdown") + 1]

    def median(metric, system):
        vals = samples.get((metric, system))
        return statistics.median(vals) if vals else None

    def spread(metric, system):
        vals = samples.get((metric, system))
        if not vals:
            return ""
        return f"{fmt(min(vals), '')}-{fmt(max(vals), '')}"

    rows = []  # (label, unit, stepfs, sqf, sqll, ratio, target, met, n)
    verdicts = []
    for metric, label, unit, better, kind, target in METRICS:
        s = median(metric, "stepfs")
        a = median(metric, "squashfuse")
        b = median(metric, "squashfuse_ll")
        if s is None and a is None and b is None:
            continue
        cands = [v for v in (a, b) if v is not None]
        best = None
        if cands:
            best = max(cands) if better == "high" else min(cands)
        ratio = s / best if (s is not None and best) else None
        n = len(samples.get((metric, "stepfs"), []))
        target_text, met = "", ""
        if kind == "ratio>=":
            target_text = f">= {target:.2f}x"
            met = "yes" if ratio is not None and ratio >= target else "NO"
        elif kind == "ratio<=":
            target_text = f"<= {target:.2f}x"
            met = "yes" if ratio is not None and ratio <= target else "NO"
        elif kind == "abs<=":
            limit = float(info.get(target, "0"))
            target_text = f"<= {limit:.0f} {unit}"
            met = "yes" if s is not None and s <= limit else "NO"
        if met and s is None:
            met = "n/a (no sample)"
        if met:
            verdicts.append((label, met))
        rows.append((label, unit, fmt(s, unit), fmt(a, unit), fmt(b, unit),
                     f"{ratio:.2f}x" if ratio is not None else "-", target_text, met, str(n),
                     spread(metric, "stepfs")))

    refs = []
    for metric, label, unit, system in REFERENCE:
        v = median(metric, system)
        if v is not None:
            refs.append((label, unit, fmt(v, unit), str(len(samples[(metric, system)]))))

    head = ("measure", "unit", "stepfs", "squashfuse", "squashfuse_ll", "stepfs/best",
            "target", "met", "runs", "stepfs min-max")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    out = []
    out.append("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    out.append("  ".join("-" * w for w in widths))
    for r in rows:
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    out.append("")
    out.append("reference (same bytes, no FUSE):")
    rw = max(len(r[0]) for r in refs) if refs else 10
    for label, unit, v, n in refs:
        out.append(f"  {label.ljust(rw)}  {v:>10} {unit}  ({n} runs)")
    out.append("")
    met_count = sum(1 for _, m in verdicts if m == "yes")
    out.append(f"targets met: {met_count} of {len(verdicts)}")
    crashes = int(info.get("crashes", "0") or 0)
    if crashes:
        out.append(f"daemon crashes during the run: {crashes} (their samples are missing)")
        for key in sorted(k for k in info if k.startswith("crash_")):
            out.append(f"  {info[key]}")
    print("\n".join(out))

    if md_path:
        md = []
        md.append("| measure | unit | stepfs | squashfuse | squashfuse_ll | stepfs / best squashfuse | target | met |")
        md.append("| --- | --- | ---: | ---: | ---: | ---: | --- | --- |")
        for r in rows:
            md.append(f"| {r[0].replace('|', chr(92) + '|')} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {r[5]} | {r[6]} | {r[7]} |")
        md.append("")
        md.append("Reference figures for the same bytes without FUSE:")
        md.append("")
        md.append("| measure | unit | median |")
        md.append("| --- | --- | ---: |")
        for label, unit, v, n in refs:
            md.append(f"| {label} | {unit} | {v} |")
        md.append("")
        md.append("Every figure is the median of the runs; raw samples per run:")
        md.append("")
        md.append("| metric | system | samples |")
        md.append("| --- | --- | --- |")
        for (metric, system), vals in sorted(samples.items()):
            md.append(f"| {metric} | {system} | {' '.join(fmt(v, '') for v in vals)} |")
        md.append("")
        with open(md_path, "w") as f:
            f.write("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
