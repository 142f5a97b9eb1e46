#!/usr/bin/env python3
"""Self-test of tools/simulate_makespan.py (run by ctest; standard library only)."""

import io
import itertools
import os
import random
import subprocess
import sys
import tempfile
import unittest
from contextlib import redirect_stdout

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import simulate_makespan as sm  # noqa: E402

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "simulate_makespan.py")


def tick_simulation(times, order, workers):
    """An independent reference for the dynamic schedule, for integer times: advance one second at a time;
    at each tick, free workers (lowest index first) take the next runs in `order`."""
    remaining = [0] * workers
    queue = list(order)
    t = 0
    while queue or any(remaining):
        for w in range(workers):
            while remaining[w] == 0 and queue:  # a zero-length run frees the worker at once
                remaining[w] = times[queue.pop(0)]
        if not any(remaining):
            break  # only zero-length runs were left
        t += 1
        remaining = [max(0, r - 1) for r in remaining]
    return t


def optimum(times, workers):
    """The best possible makespan by exhaustive assignment (small cases)."""
    best = float("inf")
    for assignment in itertools.product(range(workers), repeat=len(times)):
        load = [0] * workers
        for i, w in enumerate(assignment):
            load[w] += times[i]
        best = min(best, max(load))
    return best


class Deal(unittest.TestCase):
    def test_same_deal_as_shard_hpp(self):
        # The hand-dealt case of tests/study/shard_test.cpp: the C++ deal gives shards 1 1 1 0 0.
        self.assertEqual(sm.deal([5, 7, 2, 9, 5], 2), [1, 1, 1, 0, 0])
        self.assertEqual(sm.deal([1.0] * 7, 3), [0, 1, 2, 0, 1, 2, 0])
        with self.assertRaises(ValueError):
            sm.deal([1], 0)

    def test_lpt_worst_case(self):
        # 3 3 2 2 2 on 2 workers: LPT 7, optimum 6 (= the bound 4/3 - 1/6 times the optimum).
        times = [3, 3, 2, 2, 2]
        self.assertEqual(sm.static_makespan(times, times, 2), 7)
        self.assertEqual(sm.dynamic_makespan(times, times, 2), 7)
        self.assertEqual(optimum(times, 2), 6)

    def test_lpt_bound_random(self):
        rng = random.Random(1)
        for _ in range(150):
            n, k = rng.randint(1, 7), rng.randint(1, 3)
            times = [rng.randint(1, 9) for _ in range(n)]
            s = sm.static_makespan(times, times, k)
            self.assertLessEqual(s, (4 / 3 - 1 / (3 * k)) * optimum(times, k) + 1e-9)
            self.assertGreaterEqual(s, max(max(times), sum(times) / k) - 1e-9)


class Dynamic(unittest.TestCase):
    def test_against_tick_simulation(self):
        rng = random.Random(2)
        for _ in range(300):
            n, k = rng.randint(1, 12), rng.randint(1, 5)
            times = [rng.randint(0, 8) for _ in range(n)]
            costs = [rng.randint(1, 8) for _ in range(n)]  # estimates unrelated to the times
            order = sm.longest_first(costs)
            self.assertEqual(sm.dynamic_makespan(times, costs, k), tick_simulation(times, order, k),
                             (times, costs, k))

    def test_dynamic_beats_static_when_estimates_are_wrong(self):
        # Run 0 is estimated longest but is short: static puts runs 1-3 on one shard (15 s), dynamic
        # hands run 2 to the worker that finished run 0 after 1 s (makespan 10 s).
        times, costs = [1, 5, 5, 5], [10, 1, 1, 1]
        self.assertEqual(sm.static_makespan(times, costs, 2), 15)
        self.assertEqual(sm.dynamic_makespan(times, costs, 2), 10)

    def test_extremes(self):
        times = [4, 1, 3, 2]
        for f in (sm.static_makespan, sm.dynamic_makespan):
            self.assertEqual(f(times, times, 1), 10)  # one worker: the sum
            self.assertEqual(f(times, times, 256), 4)  # more workers than runs: the longest run


class Table(unittest.TestCase):
    def test_rows_and_markdown(self):
        times = [3, 3, 2, 2, 2]
        r = sm.rows(times, times, [1, 2, 8])
        self.assertEqual([x["static"] for x in r], [12, 7, 3])
        self.assertAlmostEqual(r[0]["static_efficiency"], 1.0)
        self.assertAlmostEqual(r[1]["dynamic_efficiency"], 12 / 14)
        self.assertEqual([x["lower_bound"] for x in r], [12, 6, 3])
        text = sm.markdown(times, times, [1, 2])
        self.assertIn("| workers | static LPT makespan (s) |", text)
        self.assertIn("| 2 | 7.0 | 0.86 | 7.0 | 0.86 | 6.0 |", text)
        self.assertIn("longest run 3.0 s", text)

    def test_cli_reads_results_jsonl(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "results.jsonl")
            with open(path, "w", encoding="utf-8") as f:
                f.write('{"type":"study","config":{}}\n')
                # costs params*steps: 1000, 100, 100; times 1, 5, 5 -> static on 2: {0} | {1,2} = 10
                f.write('{"type":"run","key":"a","params":100,"steps":10,"wall_seconds":1}\n')
                f.write('{"type":"run","key":"b","params":10,"steps":10,"wall_seconds":5}\n')
                f.write('{"type":"run","key":"c","params":10,"steps":10,"wall_seconds":5}\n')
                f.write('{"type":"run","key":"d"')  # torn last line: dropped
            out = io.StringIO()
            with redirect_stdout(out):
                self.assertEqual(sm.main([path, "--workers", "2"]), 0)
            self.assertIn("3 runs, 11.0 s in total", out.getvalue())
            self.assertIn("| 2 | 10.0 | 0.55 | 6.0 | 0.92 | 5.5 |", out.getvalue())

    def test_cli_estimate_error(self):
        def run(*args):
            out = io.StringIO()
            with redirect_stdout(out):
                self.assertEqual(sm.main(["--times", "9,7,5,5,3,3,2,1", "--workers", "3", *args]), 0)
            return out.getvalue()

        exact = run()
        self.assertEqual(run("--estimate-error", "0"), exact)
        noisy = run("--estimate-error", "0.9", "--seed", "3")
        self.assertEqual(noisy, run("--estimate-error", "0.9", "--seed", "3"))  # deterministic
        self.assertNotEqual(noisy, exact)  # the deal changed; the times (and their total) did not
        self.assertIn("8 runs, 35.0 s in total", noisy)

    def test_cli_bad_input_exits_2_with_one_line(self):
        with tempfile.TemporaryDirectory() as d:
            bad = os.path.join(d, "times.txt")
            with open(bad, "w", encoding="utf-8") as f:
                f.write("1.5\nfast\n")
            for args in ([bad], ["--times", "1,x"], ["--times", "1", "--workers", "0"], [],
                         ["--times", "1", "--estimate-error", "1"],
                         [os.path.join(d, "missing.jsonl")]):
                p = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True)
                self.assertEqual(p.returncode, 2, args)
                self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
                self.assertTrue(p.stderr.startswith("simulate_makespan.py: "), p.stderr)


if __name__ == "__main__":
    unittest.main()
