#!/usr/bin/env python3
"""Simulate how a study's makespan scales with the number of workers, from measured run times.

Two schedules, the two that ballast implements (docs/distributed.md):
- static: `--shard I/N` shards dealt by estimated cost, longest first, each run to the least-loaded shard
  (LPT; the same deal and tie rules as include/ballast/study/shard.hpp). A shard's time is the sum of its
  runs' *measured* times, so a poor cost estimate shows up here.
- dynamic: `--mpi`'s work queue: runs handed out longest first (by estimated cost) to whichever worker is
  free first (the lowest-numbered among equals). Under MPI the dispatcher is one more rank: K workers
  need K+1 ranks.

The longest single run bounds every schedule from below (max(longest, total/K)).

Input: results.jsonl files (each "run" line's wall_seconds; estimated cost params × steps when both are
present, else the time itself), or plain text files with one time in seconds per line, or --times.
Output: a Markdown table for K = 1, 2, 4, ..., 256 (or --workers).

--estimate-error F models a cost estimate that is off: each run's estimated cost becomes its estimate ×
(1 + e), e uniform in [-F, F] (fixed --seed), while its time stays as measured.

usage: simulate_makespan.py [--times 3,3,2,...] [--workers 1,2,4] [--estimate-error F [--seed S]] [FILE ...]
"""

import argparse
import heapq
import json
import random
import sys


def longest_first(costs):
    """Run indices by decreasing cost, equal costs in grid order."""
    return sorted(range(len(costs)), key=lambda i: (-costs[i], i))


def deal(costs, shards):
    """The static deal: per run its shard (LPT by cost, least-loaded shard, lowest index among equals)."""
    if shards < 1:
        raise ValueError("the shard count must be >= 1")
    load = [0.0] * shards
    shard_of = [0] * len(costs)
    for i in longest_first(costs):
        best = min(range(shards), key=lambda s: (load[s], s))
        shard_of[i] = best
        load[best] += costs[i]
    return shard_of


def static_makespan(times, costs, workers):
    """Makespan of the static deal: the slowest shard's summed measured time."""
    busy = [0.0] * workers
    for i, s in enumerate(deal(costs, workers)):
        busy[s] += times[i]
    return max(busy) if times else 0.0


def dynamic_makespan(times, costs, workers):
    """Makespan of longest-first dispatch to the first free worker (lowest index among equals)."""
    free = [(0.0, w) for w in range(workers)]
    heapq.heapify(free)
    end = 0.0
    for i in longest_first(costs):
        t, w = heapq.heappop(free)
        done = t + times[i]
        end = max(end, done)
        heapq.heappush(free, (done, w))
    return end


def rows(times, costs, workers_list):
    """One dict per K: makespans, efficiencies (total / (K × makespan)) and the lower bound."""
    total = sum(times)
    longest = max(times) if times else 0.0
    out = []
    for k in workers_list:
        s = static_makespan(times, costs, k)
        d = dynamic_makespan(times, costs, k)
        out.append({
            "workers": k,
            "static": s,
            "static_efficiency": total / (k * s) if s > 0 else 1.0,
            "dynamic": d,
            "dynamic_efficiency": total / (k * d) if d > 0 else 1.0,
            "lower_bound": max(longest, total / k),
        })
    return out


def markdown(times, costs, workers_list):
    total = sum(times)
    lines = [
        f"{len(times)} runs, {total:.1f} s in total, longest run {max(times):.1f} s "
        "(no schedule can finish sooner).",
        "",
        "| workers | static LPT makespan (s) | static efficiency | dynamic makespan (s) | dynamic efficiency "
        "| lower bound max(longest, total/K) (s) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows(times, costs, workers_list):
        lines.append(f"| {r['workers']} | {r['static']:.1f} | {r['static_efficiency']:.2f} | {r['dynamic']:.1f} "
                     f"| {r['dynamic_efficiency']:.2f} | {r['lower_bound']:.1f} |")
    return "\n".join(lines) + "\n"


def read_input(path):
    """(times, costs) from a results.jsonl or a one-time-per-line text file."""
    times, costs = [], []
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                j = json.loads(line)
            except json.JSONDecodeError:
                if number == len(text.splitlines()) and not text.endswith("\n"):
                    continue  # a torn last line (a crash mid-append), as the study engine drops it
                raise ValueError(f"{path}:{number}: not JSON")
            if j.get("type") != "run":
                continue
            t = j.get("wall_seconds")
            if not isinstance(t, (int, float)) or t < 0:
                raise ValueError(f"{path}:{number}: run line without a wall_seconds >= 0")
            times.append(float(t))
            p, s = j.get("params"), j.get("steps")
            costs.append(float(p) * float(s) if isinstance(p, (int, float)) and isinstance(s, (int, float))
                         else float(t))
        else:
            try:
                t = float(line)
            except ValueError:
                raise ValueError(f"{path}:{number}: '{line}' is not a time in seconds")
            if not t >= 0:
                raise ValueError(f"{path}:{number}: time {line} is negative")
            times.append(t)
            costs.append(t)
    return times, costs


def parse_list(text, kind, what):
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what} '{text}' is not a comma-separated list of numbers")
    if not values or any(not v >= 0 for v in values):
        raise ValueError(f"{what} '{text}' must be non-empty and non-negative")
    return values


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="*", help="results.jsonl or text files of run times (seconds)")
    ap.add_argument("--times", help="comma-separated run times in seconds (the cost estimate is the time)")
    ap.add_argument("--workers", default=",".join(str(2**i) for i in range(9)),
                    help="comma-separated worker counts (default 1,2,4,...,256)")
    ap.add_argument("--estimate-error", type=float, default=0.0,
                    help="perturb each cost estimate by a factor in [1-F, 1+F] (0 <= F < 1)")
    ap.add_argument("--seed", type=int, default=1, help="seed of --estimate-error")
    args = ap.parse_args(argv)
    try:
        times, costs = [], []
        if args.times:
            times = parse_list(args.times, float, "--times")
            costs = list(times)
        for path in args.files:
            t, c = read_input(path)
            times += t
            costs += c
        if not times:
            raise ValueError("no run times given (files with run lines, or --times)")
        workers = parse_list(args.workers, int, "--workers")
        if 0 in workers:
            raise ValueError("--workers must be >= 1")
        if not 0 <= args.estimate_error < 1:
            raise ValueError(f"--estimate-error {args.estimate_error} must be in [0, 1)")
        if args.estimate_error > 0:
            rng = random.Random(args.seed)
            costs = [c * (1 + rng.uniform(-args.estimate_error, args.estimate_error)) for c in costs]
    except (OSError, ValueError) as e:
        print(f"simulate_makespan.py: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(markdown(times, costs, workers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
