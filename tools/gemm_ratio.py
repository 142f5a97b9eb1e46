#!/usr/bin/env python3
"""Ratio table ballast / OpenBLAS for the GEMM benchmarks (python3 stdlib only).

Runs the Google Benchmark binary ballast_bm_gemm with JSON output (or reads a saved JSON file), pairs
every gemm/<layout>/<M>x<N>x<K>/ballast/threads:<t> row with its .../openblas/... twin and prints the
median GFLOP/s of both and their ratio, per shape x layout x threads. Optionally runs
ballast_bm_fma_peak and prints the GEMM throughput as a fraction of the FMA peak.

Three ratios are shown because the benchmark host may be shared (other jobs steal cores):
  median  from the median wall time over the repetitions (the headline number)
  best    from the fastest repetition (least disturbed by other processes)
  cpu     from the median CPU time of the calling thread (excludes time that thread was preempted;
          for 2 threads only a proxy, the other thread can still be preempted)

Usage:
  tools/gemm_ratio.py --bench build/benchmarks/ballast_bm_gemm [--fma build/benchmarks/ballast_bm_fma_peak]
                      [--repetitions 3] [--min-time 0.5] [--filter REGEX] [--save out.json]
  tools/gemm_ratio.py --json saved.json [--fma-json fma.json]
  add --markdown for a Markdown table (docs/kernels.md).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

from bench_common import cpu_has_avx512, print_table

NAME = re.compile(r"^gemm/(?P<layout>nn|nt|tn)/(?P<M>\d+)x(?P<N>\d+)x(?P<K>\d+)/(?P<impl>\w+)/threads:(?P<t>\d+)")
UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def openblas_env(core):
    """OpenBLAS's fastest kernels on this CPU. Debian's OpenBLAS 0.3.21 (DYNAMIC_ARCH) takes AMD Zen 4/5
    for Haswell (AVX2), and this machine's environment even sets OPENBLAS_CORETYPE=Haswell; with
    core == "auto" an AVX-512 CPU gets the SkylakeX (AVX-512) kernels, as ballast is compiled with
    -march=native, and any other CPU OpenBLAS's own detection. Any other value is used as is."""
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    if core != "auto":
        env["OPENBLAS_CORETYPE"] = core
    elif cpu_has_avx512():
        env["OPENBLAS_CORETYPE"] = "SkylakeX"
    print("OpenBLAS core:", env.get("OPENBLAS_CORETYPE", "auto-detected"), file=sys.stderr)
    return env


def run(binary, repetitions, min_time, flt, core="auto"):
    # Every repetition is kept (no aggregates-only) so the best one can be reported too.
    cmd = [binary, "--benchmark_format=json", f"--benchmark_repetitions={repetitions}",
           f"--benchmark_min_time={min_time}", "--benchmark_enable_random_interleaving=true"]
    if flt:
        cmd.append(f"--benchmark_filter={flt}")
    print("running:", " ".join(cmd), file=sys.stderr)
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, env=openblas_env(core)).stdout
    # The driver prints a one-line banner before the JSON document.
    return json.loads(out[out.index("{"):])


def load(path):
    """A saved JSON document; tolerates the driver's banner line before it (raw binary output)."""
    text = open(path).read()
    return json.loads(text[text.index("{"):])


def medians(doc):
    """(layout, M, N, K, impl, threads) -> (median wall s, best wall s, median cpu s)."""
    agg = {}
    raw = {}
    for b in doc["benchmarks"]:
        m = NAME.match(b["name"])
        if not m:
            continue
        key = (m["layout"], int(m["M"]), int(m["N"]), int(m["K"]), m["impl"], int(m["t"]))
        scale = UNIT[b.get("time_unit", "ns")]
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                agg[key] = (b["real_time"] * scale, b["cpu_time"] * scale)
        else:
            raw.setdefault(key, []).append((b["real_time"] * scale, b["cpu_time"] * scale))
    rows = {}
    for key in set(agg) | set(raw):
        reps = raw.get(key, [])
        med = agg.get(key) or (statistics.median(x[0] for x in reps), statistics.median(x[1] for x in reps))
        best = min(x[0] for x in reps) if reps else med[0]
        rows[key] = (med[0], best, med[1])
    return rows


def fma_peak(doc):
    """threads -> median GFLOP/s of the float FMA peak benchmark (over the repetitions)."""
    reps, agg = {}, {}
    for b in doc["benchmarks"]:
        m = re.match(r"^bm_fma_peak<float>/threads:(\d+)", b["name"])
        if not m:
            continue
        if b.get("run_type") != "aggregate":
            reps.setdefault(int(m[1]), []).append(b["GFLOPS"])
        elif b.get("aggregate_name") == "median":
            agg[int(m[1])] = b["GFLOPS"]
    return {t: statistics.median(v) for t, v in reps.items()} or agg


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", help="path of ballast_bm_gemm")
    ap.add_argument("--json", help="read a saved --benchmark_format=json output instead of running")
    ap.add_argument("--fma", help="path of ballast_bm_fma_peak (optional)")
    ap.add_argument("--fma-json", help="saved JSON of ballast_bm_fma_peak (optional)")
    ap.add_argument("--repetitions", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=0.5)
    ap.add_argument("--filter", default="gemm/.*/(ballast|openblas)/")
    ap.add_argument("--openblas-core", default="auto",
                    help="OPENBLAS_CORETYPE of the peer: auto (SkylakeX on an AVX-512 CPU, else OpenBLAS's own "
                         "detection) or a core name such as Haswell")
    ap.add_argument("--save", help="write the benchmark JSON here (and the FMA one to <name>_fma.json)")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    if not (args.bench or args.json):
        ap.error("give --bench or --json")

    doc = load(args.json) if args.json else run(args.bench, args.repetitions, args.min_time, args.filter,
                                                args.openblas_core)
    if args.save:
        json.dump(doc, open(args.save, "w"), indent=1)
    peak = {}
    if args.fma_json:
        peak = fma_peak(load(args.fma_json))
    elif args.fma:
        fdoc = run(args.fma, max(args.repetitions, 5), args.min_time, "float")
        if args.save:
            json.dump(fdoc, open(args.save.replace(".json", "") + "_fma.json", "w"), indent=1)
        peak = fma_peak(fdoc)

    rows = medians(doc)
    keys = sorted({k[:4] + (k[5],) for k in rows if k[4] == "ballast"},
                  key=lambda k: (k[4], "nn nt tn".index(k[0]), k[1] * 10**12 + k[2] * 10**6 + k[3]))
    hdr = ["layout", "M x N x K", "thr", "ballast GF/s", "OpenBLAS GF/s", "ratio median", "ratio best",
           "ratio cpu"]
    if peak:
        hdr.append("% of t x 1-thr FMA peak")
    table = []
    ratios = {"median": {}, "best": {}, "cpu": {}}
    for layout, M, N, K, t in keys:
        b = rows[(layout, M, N, K, "ballast", t)]
        o = rows.get((layout, M, N, K, "openblas", t))
        gf = [2.0 * M * N * K / x / 1e9 for x in b]
        line = [layout, f"{M}x{N}x{K}", str(t), f"{gf[0]:.1f}"]
        if o:
            go = [2.0 * M * N * K / x / 1e9 for x in o]
            r = [gf[i] / go[i] for i in range(3)]
            for name, v in zip(("median", "best", "cpu"), r):
                ratios[name].setdefault(t, []).append(v)
            line += [f"{go[0]:.1f}", f"{r[0]:.2f}", f"{r[1]:.2f}", f"{r[2]:.2f}"]
        else:
            line += ["-", "-", "-", "-"]
        if peak:
            # Against t × the 1-thread FMA peak: on a shared host the measured t-thread peak is itself
            # depressed by other processes, the 1-thread one is the per-core capability.
            ref = t * peak[1] if 1 in peak else peak.get(t)
            line.append(f"{100 * gf[0] / ref:.0f}%" if ref else "-")
        table.append(line)

    print_table(hdr, table, args.markdown)
    print()
    for kind in ("median", "best", "cpu"):
        for t, v in sorted(ratios[kind].items()):
            print(f"ratio {kind:6s} {t} thread(s): geomean {statistics.geometric_mean(v):.3f}  min {min(v):.3f}  "
                  f"max {max(v):.3f}  below 0.9: {sum(x < 0.9 for x in v)}/{len(v)}")
    for t, g in sorted(peak.items()):
        print(f"FMA peak (float, {t} thread(s)): {g:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
