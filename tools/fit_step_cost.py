#!/usr/bin/python3
"""Measure 1-thread step times of `train` at a few model sizes and fit the cost model of `study --dry-run`.

Usage:
  tools/fit_step_cost.py [--train BUILD/examples/train] [--steps N] [--sizes d32_L2_H2,...]

Model (examples/support/estimate.hpp): seconds per step = batch * seq * (a * F + b) with
F = 6 N + 12 L seq d FLOPs per token, N = L (4 + 2 mlp_ratio) d^2 + 2 vocab d. Runs `train --threads 1`
once per size (batch 8, seq 64, vocab 256, no evaluation in between) and once with 1 step (the fixed cost:
corpus, initialisation, evaluations), and measures the CPU time (user + system) of each process, not the
wall-clock time: on a machine loaded by other work, a 1-thread run's CPU time is what it would take alone.
Prints one line per size and the least-squares a and b (with the relative error of each point). Paste a and b into estimate.hpp with the machine and the date.
Dependencies: python3 standard library.
"""
import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def flops_per_token(d, layers, seq, vocab=256, mlp_ratio=4):
    n = layers * (4 + 2 * mlp_ratio) * d * d + 2 * vocab * d
    return 6.0 * n + 12.0 * layers * seq * d


def main():
    ap = argparse.ArgumentParser(prog="fit_step_cost.py", description=__doc__.split("\n")[0])
    ap.add_argument("--train", default=os.path.join(ROOT, "build", "release", "examples", "train"))
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--sizes", default="d32_L2_H2,d64_L2_H4,d128_L2_H8,d128_L4_H8")
    args = ap.parse_args()
    if not os.access(args.train, os.X_OK):
        print(f"fit_step_cost: error: {args.train} is not an executable (build the train target)", file=sys.stderr)
        return 2
    batch, seq = 8, 64
    points = []

    def cpu_seconds(argv):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    with tempfile.TemporaryDirectory() as tmp:
        for label in args.sizes.split(","):
            m = re.fullmatch(r"d(\d+)_L(\d+)_H(\d+)", label)
            if not m:
                print(f"fit_step_cost: error: bad size '{label}'", file=sys.stderr)
                return 2
            d, layers, heads = map(int, m.groups())
            def run(steps, tag):
                return cpu_seconds([args.train, "--threads", "1", "--d-model", str(d), "--n-layers", str(layers),
                                    "--n-heads", str(heads), "--steps", str(steps), "--warmup", "1", "--batch",
                                    str(batch), "--seq", str(seq), "--eval-interval", "0", "--eval-batches",
                                    "1", "--out", os.path.join(tmp, label + tag)])
            fixed = run(1, "_1")
            full = run(args.steps, "")
            sec_per_token = max(full - fixed, 1e-9) / ((args.steps - 1) * batch * seq)
            points.append((label, flops_per_token(d, layers, seq), sec_per_token))
            print(f"{label:12s} F/token {points[-1][1]:.3e}  {sec_per_token * 1e6:.3f} us/token", flush=True)
    # Least squares y = a F + b.
    n = len(points)
    sx = sum(p[1] for p in points)
    sy = sum(p[2] for p in points)
    sxx = sum(p[1] ** 2 for p in points)
    sxy = sum(p[1] * p[2] for p in points)
    a = (n * sxy - sx * sy) / (n * sxx - sx * sx)
    b = (sy - a * sx) / n
    if b < 0:  # a negative per-token overhead is noise: fit through the origin instead
        a, b = sxy / sxx, 0.0
    print(f"a = {a:.4e} s/FLOP  b = {b:.4e} s/token")
    for label, f, y in points:
        print(f"  {label:12s} fit error {100 * (a * f + b - y) / y:+.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
