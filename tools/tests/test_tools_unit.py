#!/usr/bin/python3
"""Unit tests of the Python tools' loader and LR-sensitivity math (exit 0 = pass, 1 = failure).

  /usr/bin/python3 tools/tests/test_tools_unit.py

- tools/ballast_results.py: strict JSON lines (only a torn last line is dropped; a bad line elsewhere, a
  non-object line, a missing file raise ResultsError naming file and line), typed run lines, duplicate keys,
  summary.json, a metrics log with a resume (repeated steps: the later line wins), diag and warning lines.
- study_groups.compute_sensitivity against hand-computed values (plain, per-LR seed averaging, the shifted
  window), the seed spread, and against the C++ study's own summary.json of the committed real-study
  fixture (tools/tests/fixtures/report_study).
- tools/plot_run.py on a study run log with diagnostics, on a train-style log without, and its exit 2.
- tools/report.py's seed-spread columns on a hand-made two-seed study.
Needs matplotlib only for the plot_run part.
"""
import importlib.util
import json
import math
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.join(HERE, "..")
sys.path.insert(0, TOOLS)
FIXTURE = os.path.join(HERE, "fixtures", "report_study")
PY = sys.executable or "/usr/bin/python3"

import ballast_results as br  # noqa: E402
import study_groups as sg  # noqa: E402

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def raises(fn, needle):
    try:
        fn()
    except br.ResultsError as e:
        return needle in str(e)
    return False


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def test_read_jsonl(tmp):
    good = '{"a": 1}\n\n{"b": 2}\n'
    p = write(os.path.join(tmp, "good.jsonl"), good + '{"c": ')
    lines = br.read_jsonl(p)
    check([r for _, r in lines] == [{"a": 1}, {"b": 2}] and lines.torn == 4,
          "torn last line dropped and reported (line 4); blank line skipped")
    check([i for i, _ in lines] == [1, 3], "records keep their 1-based line numbers")
    p = write(os.path.join(tmp, "clean.jsonl"), good)
    check(br.read_jsonl(p).torn is None, "no torn line in a clean file")
    p = write(os.path.join(tmp, "mid.jsonl"), '{"a": 1}\n{"b": \n{"c": 3}\n')
    check(raises(lambda: br.read_jsonl(p), "mid.jsonl:2: not a JSON line"),
          "a bad line before the last raises, naming line 2")
    p = write(os.path.join(tmp, "arr.jsonl"), '{"a": 1}\n[1, 2]\n{"c": 3}\n')
    check(raises(lambda: br.read_jsonl(p), "arr.jsonl:2: a JSON line must be an object"), "a non-object line raises")
    check(raises(lambda: br.read_jsonl(os.path.join(tmp, "none.jsonl")), "cannot read"), "a missing file raises")
    check(br.finite(float("nan")) is None and br.finite(True) is None and br.finite("1") is None and
          br.finite(2) == 2.0, "finite(): NaN, bools and strings are None; ints become floats")


def make_study(tmp, name, lines, summary=None):
    d = os.path.join(tmp, name)
    os.makedirs(d)
    write(os.path.join(d, "results.jsonl"), "".join(json.dumps(x) + "\n" for x in lines))
    if summary is not None:
        write(os.path.join(d, "summary.json"), json.dumps(summary))
    return d


RUN = {"type": "run", "policy_set": "p", "optimizer": "adamw", "size": "d8", "params": 100, "warmup": 5,
       "weight_decay": 1e-4, "eps": 1e-8, "steps": 10}


def test_load_study(tmp):
    d = make_study(tmp, "s1", [
        {"type": "study", "name": "s1", "config": {"study": {"sensitivity_window": 2}}},
        dict(RUN, key="a", lr=1e-2, l0=5.0, final_val_loss=3.0, diverged=False),
        dict(RUN, key="b", lr=1e-1, l0=5.0, final_val_loss=None, diverged=False, diverged_step=7),
        dict(RUN, key="a", lr=1e-2, l0=5.0, final_val_loss=2.0, diverged=False),  # duplicate: later wins
        dict(RUN, key="z", lr=0, l0=5.0, final_val_loss=2.0),  # no positive LR
        {"type": "note"}])
    st = br.load_study(d)
    by = {r.key: r for r in st.runs}
    check(st.name == "s1" and st.sensitivity_window == 2, "study line: name and sensitivity_window")
    check(sorted(by) == ["a", "b"] and by["a"].final == 2.0 and st.duplicates == ["a"],
          "duplicate key: the later line wins and is listed")
    check(len(st.skipped) == 1 and st.skipped[0][0] == 5 and st.other == 1, "LR 0 run skipped (line 5); 1 other line")
    check(by["b"].diverged and by["b"].diverged_step == 7.0, "a null final loss counts as diverged")
    check(by["a"].group_key == ("p", "d8", "adamw", 5, 1e-4, 1e-8, 10), "group key")
    check(by["a"].metrics_path(d) == os.path.join(d, "runs", "a.jsonl"), "default metrics path runs/<key>.jsonl")
    check(br.load_summary(d) is None, "no summary.json: None")
    write(os.path.join(d, "summary.json"), '{"groups": 3}')
    check(raises(lambda: br.load_summary(d), "'groups' list"), "malformed summary.json raises")
    empty = make_study(tmp, "s2", [{"type": "study", "name": "e", "config": {}}])
    check(raises(lambda: br.load_study(empty), "contains no run lines"), "no run lines raises")
    check(raises(lambda: br.load_study(os.path.join(tmp, "nope")), "not found"), "missing directory raises")


def test_metrics(tmp):
    lines = [{"type": "header", "policy_set": "p"},
             {"type": "step", "step": 10, "loss": 5.0},
             {"type": "step", "step": 20, "loss": 4.0},
             {"type": "diag", "step": 20, "layers": [{"max_logit": 3.0}, {"max_logit": 4.0}],
              "tensors": {"w": {"grad_rms": 0.1}}},
             {"type": "resume", "step": 10},
             {"type": "step", "step": 20, "loss": 3.5},  # after the resume: replaces the first step 20
             {"type": "warning", "rule": "attn_logit_threshold", "step": 20, "value": 2e4},
             {"type": "eval", "step": 20, "val_ce": None},
             {"type": "end", "diverged": False}]
    d = os.path.join(tmp, "run")
    os.makedirs(d)
    write(os.path.join(d, "metrics.jsonl"), "".join(json.dumps(x) + "\n" for x in lines) + '{"type": "st')
    m = br.load_metrics(d)
    check([s["loss"] for s in m.steps] == [5.0, 3.5], "resumed step 20: the later line wins")
    check(len(m.diags) == 1 and m.layer_count() == 2 and len(m.warnings) == 1 and m.end == {"type": "end",
          "diverged": False} and m.torn == 10, "diag, warning, end lines; torn last line 10")
    xs, ys = br.series(m.evals, "val_ce")
    check(xs == [20] and math.isnan(ys[0]), "series(): null becomes NaN, the step is kept")
    check(raises(lambda: br.load_metrics(os.path.join(tmp, "nothing")), "no metrics log"), "missing log raises")


class R:
    """A minimal run for compute_sensitivity."""

    def __init__(self, lr, final, l0, diverged=False, seed=None):
        self.lr, self.final, self.l0, self.diverged, self.seed = lr, final, l0, diverged or final is None, seed


def close(a, b):
    return a is not None and math.isclose(a, b, rel_tol=0, abs_tol=1e-12)


def test_sensitivity():
    # l0 = 5.1; capped losses 3.0, 2.5, min(6.0, 5.1) = 5.1, 5.1 (diverged); l* = 2.5
    runs = [R(1e-3, 3.0, 5.0), R(1e-2, 2.5, 5.2), R(1e-1, 6.0, 5.1), R(3e-1, None, 5.1)]
    c = sg.compute_sensitivity(runs)
    check(close(c["sensitivity"], (0.5 + 0 + 2.6 + 2.6) / 4) and close(c["best_loss"], 2.5) and close(c["l0"], 5.1),
          f"LR sensitivity (0.5 + 0 + 2.6 + 2.6) / 4 = 1.425 (got {c['sensitivity']})")
    # window 3: [3.0, 2.5, 5.1] -> 3.1 / 3; [2.5, 5.1, 5.1] -> 5.2 / 3; the minimum is 3.1 / 3
    c3 = sg.compute_sensitivity(runs, window=3)
    check(close(c3["sensitivity"], 3.1 / 3), f"shifted window 3: min(3.1/3, 5.2/3) = 1.0333 (got {c3['sensitivity']})")
    check(close(sg.compute_sensitivity(runs, window=4)["sensitivity"], 1.425), "window = #LRs: the plain value")
    # two seeds: per-LR means first. seed 1: 3.0, 2.0; seed 2: 4.0, 2.2 (l0 5.0) -> means 3.5, 2.1
    seeded = [R(1e-3, 3.0, 5.0, seed=1), R(1e-2, 2.0, 5.0, seed=1),
              R(1e-3, 4.0, 5.0, seed=2), R(1e-2, 2.2, 5.0, seed=2)]
    c = sg.compute_sensitivity(seeded)
    check(close(c["sensitivity"], (1.4 + 0) / 2) and close(c["best_loss"], 2.1), "seeds averaged per LR: 0.7, best 2.1")
    by = sg.sensitivity_by_seed(seeded)
    check(sorted(by) == [1, 2] and close(by[1]["sensitivity"], 0.5) and close(by[2]["sensitivity"], 0.9),
          "per seed: (1.0 + 0) / 2 = 0.5 and (1.8 + 0) / 2 = 0.9")
    s = sg.spread([by[1]["sensitivity"], by[2]["sensitivity"]])
    check(close(s["mean"], 0.7) and close(s["std"], math.sqrt(0.08)) and close(s["min"], 0.5) and close(s["max"], 0.9),
          "seed spread: mean 0.7, sample sd sqrt(((0.2)^2 + (0.2)^2) / 1), range 0.5-0.9")
    check(sg.sensitivity_by_seed(runs) == {}, "no seeds: no spread")
    check(sg.compute_sensitivity([R(1e-3, 3.0, None)])["sensitivity"] is None, "no finite l0: undefined")


def test_against_cxx_summary():
    """The recomputation equals the C++ study's summary.json of a real run (independent implementations)."""
    st = br.load_study(FIXTURE)
    summary = {br.summary_key(g): g for g in br.load_summary(FIXTURE)}
    by = {}
    for r in st.runs:
        by.setdefault(r.group_key, []).append(r)
    worst = 0.0
    for key, rs in by.items():
        c = sg.compute_sensitivity(rs, st.sensitivity_window)
        g = summary[key]
        worst = max(worst, abs(c["sensitivity"] - g["lr_sensitivity"]), abs(c["best_loss"] - g["best_loss"]),
                    abs(c["l0"] - g["l0"]))
    check(len(by) == len(summary) == 8 and worst < 1e-12,
          f"8 groups of the real study: sensitivity, best loss, l0 equal summary.json (max diff {worst:.2e})")


def test_plot_run(tmp):
    if importlib.util.find_spec("matplotlib") is None:
        print("skip plot_run checks: no matplotlib")
        return
    tool = os.path.join(TOOLS, "plot_run.py")
    log = next(os.path.join(FIXTURE, "runs", f) for f in sorted(os.listdir(os.path.join(FIXTURE, "runs")))
               if "no_qk-zloss" in f and "d32" in f and "lr1__" in f)
    out = os.path.join(tmp, "run.png")
    r = subprocess.run([PY, tool, log, "--out", out], capture_output=True, text=True, timeout=300)
    ok = r.returncode == 0 and os.path.isfile(out) and os.path.getsize(out) > 30000
    check(ok and r.stdout.strip() == out and "left out" not in r.stderr,
          f"plot_run.py draws every panel of a study run log ({r.returncode}, {r.stderr.strip()[-200:]})")
    d = os.path.join(tmp, "train_run")
    os.makedirs(d)
    write(os.path.join(d, "metrics.jsonl"), "".join(json.dumps(x) + "\n" for x in [
        {"type": "header", "policy_set": "p", "train": {"lr": 0.01, "steps": 20}},
        {"type": "eval", "step": 0, "val_ce": 5.5},
        {"type": "step", "step": 10, "loss": 4.0, "lr": 0.01, "grad_norm": 1.0},
        {"type": "step", "step": 20, "loss": 3.0, "lr": 0.005, "grad_norm": 0.5},
        {"type": "end", "diverged": False, "final_val_loss": 3.1, "l0": 5.5}]))
    r = subprocess.run([PY, tool, d], capture_output=True, text=True, timeout=300)
    check(r.returncode == 0 and os.path.isfile(os.path.join(d, "run.png")) and "--diagnostics" in r.stderr,
          "plot_run.py on a run directory without diagnostics: run.png, and says which panels are missing")
    r = subprocess.run([PY, tool, os.path.join(tmp, "absent")], capture_output=True, text=True, timeout=60)
    check(r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1,
          "plot_run.py: missing run, exit 2 with one line")


def test_report_seeds(tmp):
    """report.py's seed columns on a hand-made 2-seed study (no summary.json): values from the hand
    computation of test_sensitivity (per-LR means 3.5, 2.1 -> 0.7; per seed 0.5 and 0.9; best 2.0, 2.2)."""
    if importlib.util.find_spec("matplotlib") is None:
        print("skip report seed checks: no matplotlib")
        return
    base = {"type": "run", "policy_set": "p", "optimizer": "adamw", "size": "d8", "params": 100, "l0": 5.0,
            "diverged": False, "metrics": ""}
    d = make_study(tmp, "seeded", [{"type": "study", "name": "seeded", "config": {}}] + [
        dict(base, key=f"k{seed}{lr}", seed=seed, lr=lr, final_val_loss=f)
        for seed, lr, f in ((1, 1e-3, 3.0), (1, 1e-2, 2.0), (2, 1e-3, 4.0), (2, 1e-2, 2.2))])
    page = os.path.join(tmp, "seeded.html")
    r = subprocess.run([PY, os.path.join(TOOLS, "report.py"), d, "--out", page], capture_output=True, text=True,
                       timeout=300)
    check(r.returncode == 0 and os.path.isfile(page), f"report.py on a seeded study ({r.stderr.strip()[-200:]})")
    if not os.path.isfile(page):
        return
    with open(page, encoding="utf-8") as f:
        text = f.read()
    vals = {m.group(1): float(m.group(2)) for m in re.finditer(
        r'<td data-field="([a-z_]+)" data-value="([^"]+)" data-recipe="p" data-size="d8"', text)}
    want = {"lr_sensitivity": 0.7, "best_loss": 2.1, "seeds": 2, "lr_sensitivity_seed_mean": 0.7,
            "lr_sensitivity_seed_min": 0.5, "best_loss_seed_mean": 2.1}
    bad = {k: vals.get(k) for k, v in want.items() if not close(vals.get(k), v)}
    check(not bad, f"seed columns equal the hand computation ({bad or 'all 6 equal'})")
    check("0.7000 ± 0.2828" in text and "0.5000 – 0.9000" in text,
          "printed: mean ± sd 0.7000 ± 0.2828, range 0.5000 – 0.9000")


def test_stability_choice_by_size_label():
    """The most/least stable comparison takes every recipe of the largest size, even when their parameter
    counts differ (qk-norm scales): here the least robust recipe has fewer parameters at the same size."""
    import report

    class R:
        def __init__(self, lr):
            self.lr, self.diverged = lr, False

    class G:
        def __init__(self, name, size, params, sens):
            self.name, self.size, self.params, self.sensitivity = name, size, params, sens
            self.runs = [R(1e-2)]

        def label(self):
            return self.name

    groups = [G("qk_ln", "d128", 459456, 0.126), G("no_qk", "d128", 459392, 0.341), G("small", "d64", 131456, 0.9)]
    _, what = report.stability_choice(groups)
    check("most LR-robust qk_ln" in what and "least no_qk" in what,
          f"most qk_ln vs least no_qk at the largest size label ({what})")


def main():
    with tempfile.TemporaryDirectory(prefix="tools_unit_") as tmp:
        test_read_jsonl(tmp)
        test_load_study(tmp)
        test_metrics(tmp)
        test_sensitivity()
        test_against_cxx_summary()
        test_plot_run(tmp)
        test_report_seeds(tmp)
        test_stability_choice_by_size_label()
    if failures:
        print(f"\n{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("\nall checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
