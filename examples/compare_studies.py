#!/usr/bin/env python3
"""compare_studies.py REF_DIR DIR [--runs N]: the study in DIR equals the one-process study in REF_DIR.

Checks, exiting 1 with the first difference named:
- both results.jsonl have the same study configuration and the same runs, each exactly once, with every
  field equal apart from timing and host fields (wall_seconds, train_seconds, host, shard);
- every results.I-of-N.jsonl in DIR agrees with it and no run was finished twice across them (a run is
  never done twice across relaunches);
- summary.json is equal (it holds no timing);
- with --runs N, the study has N runs.
"""
import argparse
import glob
import json
import os
import re
import sys

IGNORED = {"wall_seconds", "train_seconds", "host", "shard"}


def fail(msg):
    print("FAILED: " + msg)
    sys.exit(1)


def read(path):
    try:
        with open(path) as f:
            lines = [json.loads(l) for l in f if l.strip()]
    except (OSError, ValueError) as e:
        fail(f"cannot read {path}: {e}")
    if not lines or lines[0].get("type") != "study":
        fail(f"{path} does not start with a study line")
    runs = {}
    for j in lines[1:]:
        if j.get("type") != "run":
            continue
        if j["key"] in runs:
            fail(f"{path}: run {j['key']} appears twice")
        runs[j["key"]] = j
    return lines[0], runs


def diff(a, b, where=""):
    """The first difference between two JSON values, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if where == "" and k in IGNORED:
                continue
            if k not in a or k not in b:
                return f"{where}{k}: only in one"
            d = diff(a[k], b[k], f"{where}{k}.")
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{where}: {len(a)} vs {len(b)} entries"
        for i, (x, y) in enumerate(zip(a, b)):
            d = diff(x, y, f"{where}[{i}].")
            if d:
                return d
        return None
    # bit-identical numbers: json floats round-trip, so == is exact
    return None if a == b and type(a) == type(b) else f"{where.rstrip('.')}: {a!r} vs {b!r}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ref")
    ap.add_argument("dir")
    ap.add_argument("--runs", type=int, default=0)
    a = ap.parse_args()
    ref_head, ref = read(os.path.join(a.ref, "results.jsonl"))
    head, got = read(os.path.join(a.dir, "results.jsonl"))
    d = diff(ref_head.get("config"), head.get("config"))
    if d:
        fail(f"study configurations differ: {d}")
    if a.runs and len(ref) != a.runs:
        fail(f"the reference has {len(ref)} runs, expected {a.runs}")
    if set(ref) != set(got):
        fail(f"runs differ: missing {sorted(set(ref) - set(got))[:3]}, extra {sorted(set(got) - set(ref))[:3]}")
    for k in ref:
        d = diff(ref[k], got[k])
        if d:
            fail(f"run {k} differs: {d}")
    seen = {}
    for path in sorted(glob.glob(os.path.join(a.dir, "results.*-of-*.jsonl"))):
        if not re.search(r"results\.\d+-of-\d+\.jsonl$", path):
            continue
        _, runs = read(path)
        for k, j in runs.items():
            if k in seen:
                fail(f"run {k} was finished twice ({seen[k]} and {os.path.basename(path)})")
            seen[k] = os.path.basename(path)
            if k not in ref:
                fail(f"{path}: run {k} is not in the reference")
            d = diff(ref[k], j)
            if d:
                fail(f"{path}: run {k} differs: {d}")
    for name in ["summary.json"]:
        try:
            with open(os.path.join(a.ref, name)) as f1, open(os.path.join(a.dir, name)) as f2:
                d = diff(json.load(f1), json.load(f2))
        except (OSError, ValueError) as e:
            fail(f"cannot read {name}: {e}")
        if d:
            fail(f"{name} differs: {d}")
    print(f"ok: {len(got)} runs equal field by field to the one-process study"
          + (f" ({len(seen)} in shard files, none twice)" if seen else ""))


if __name__ == "__main__":
    main()
