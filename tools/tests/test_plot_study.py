#!/usr/bin/python3
"""Self-test for tools/plot_study.py (plain python; exit status 0 = pass, 1 = failure).

  /usr/bin/python3 tools/tests/test_plot_study.py

1. Generates a fake study (tools/tests/make_fake_study.py), runs plot_study.py on it as a subprocess and
   checks: exit 0, the three PNGs exist, are valid PNGs and > 10 KB, the written paths are printed, the
   torn last line of results.jsonl is reported on stderr, and summary.json (computed independently by the
   generator) agrees with plot_study's own recomputation (no mismatch warning).
2. Checks the LR-sensitivity computation against hand-computed values on a tiny hand-made study
   (no summary.json, no metrics logs, a diverged run, a run above l0, two warmup values that must not be
   averaged together), and that plot_study still exits 0 there and skips training_curves.png with a note.
3. Checks exit status 2 with a one-line error for a missing directory, for a results file without runs and
   for a malformed line that is not the last (only a torn last line is dropped: tools/ballast_results.py).
4. Checks that the split modules (study_groups, plot_common, plot_loss_lr, plot_sensitivity, plot_curves)
   import on their own, and that runs of several seeds share one group (averaged per LR).
"""
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(HERE, "..", "plot_study.py")
FAKE = os.path.join(HERE, "make_fake_study.py")
PY = sys.executable or "/usr/bin/python3"
PNG_SIG = b"\x89PNG\r\n\x1a\n"
PLOTS = ("loss_vs_lr.png", "lr_sensitivity.png", "training_curves.png")

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def run(*args):
    return subprocess.run([PY, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)


def load_tool():
    spec = importlib.util.spec_from_file_location("plot_study", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_fake_study(tmp):
    study = os.path.join(tmp, "fake")
    r = run(FAKE, study)
    check(r.returncode == 0, f"make_fake_study.py exits 0 (stderr: {r.stderr.strip()[:200]})")
    r = run(TOOL, study)
    check(r.returncode == 0, f"plot_study.py exits 0 on the fake study (rc={r.returncode}, "
                             f"stderr: {r.stderr.strip()[-300:]})")
    printed = r.stdout.split()
    for name in PLOTS:
        path = os.path.join(study, "plots", name)
        ok = os.path.isfile(path)
        check(ok, f"{name} written")
        if not ok:
            continue
        with open(path, "rb") as f:
            head = f.read(8)
        size = os.path.getsize(path)
        check(head == PNG_SIG, f"{name} has a PNG signature")
        check(size > 10 * 1024, f"{name} is non-trivial ({size} bytes > 10 KB)")
        check(path in printed, f"{name} path printed on stdout")
    check("torn last line" in r.stderr, "torn last line of results.jsonl reported on stderr")
    check("!=" not in r.stderr, "summary.json agrees with the recomputed LR sensitivity")
    check("Traceback" not in r.stderr, "no traceback")

    out = os.path.join(tmp, "sel")
    r = run(TOOL, study, "--out", out, "--select", "no_qk_norm__d128_L4__lr3e-1", "paper_default__d64_L2__lr1e-2")
    check(r.returncode == 0 and os.path.isfile(os.path.join(out, "training_curves.png")),
          "--out DIR and --select KEY ... work")


def write_tiny(study):
    """Hand-made study: one size, two warmup values, l0 measured per run."""
    os.makedirs(study)
    base = {"type": "run", "policy_set": "paper_default", "optimizer": "adamw", "size": "d8_L1",
            "params": 768, "d_model": 8, "n_layers": 1, "weight_decay": 1e-4, "eps": 1e-8}
    rows = [  # warmup 10: l0 mean = (5.0 + 5.2 + 5.1 + 5.1) / 4 = 5.1
        dict(key="a", warmup=10, lr=1e-3, l0=5.0, final_val_loss=3.0, diverged=False),
        dict(key="b", warmup=10, lr=1e-2, l0=5.2, final_val_loss=2.5, diverged=False),
        dict(key="c", warmup=10, lr=1e-1, l0=5.1, final_val_loss=6.0, diverged=False),  # above l0: capped
        dict(key="d", warmup=10, lr=3e-1, l0=5.1, final_val_loss=None, diverged=True),  # diverged: l0
        # warmup 100: a separate group, never averaged with the one above
        dict(key="e", warmup=100, lr=1e-3, l0=5.0, final_val_loss=2.0, diverged=False),
        dict(key="f", warmup=100, lr=1e-2, l0=5.0, final_val_loss=2.2, diverged=False),
    ]
    with open(os.path.join(study, "results.jsonl"), "w") as f:
        f.write(json.dumps({"type": "study", "name": "tiny", "config": {}}) + "\n")
        for row in rows:
            f.write(json.dumps(dict(base, **row)) + "\n")


def test_sensitivity(tmp):
    # Hand computation, warmup 10 group: capped losses 3.0, 2.5, min(6.0, 5.1) = 5.1, 5.1 (diverged);
    # l* = 2.5; LRsens = (0.5 + 0 + 2.6 + 2.6) / 4 = 1.425.  Warmup 100 group: l0 = 5.0, l* = 2.0,
    # LRsens = (0 + 0.2) / 2 = 0.1.
    study = os.path.join(tmp, "tiny")
    write_tiny(study)
    ps = load_tool()
    _, runs = ps.load_results(study)
    groups, lrs = ps.build_groups(runs, {})
    by_warmup = {g.axes["warmup"]: g for g in groups}
    check(len(groups) == 2 and set(by_warmup) == {10, 100}, "two groups, split by warmup")
    g10, g100 = by_warmup.get(10), by_warmup.get(100)
    if g10 and g100:
        check(math.isclose(g10.sensitivity, 1.425, abs_tol=1e-9),
              f"LR sensitivity warmup=10 is 1.425 (got {g10.sensitivity})")
        check(math.isclose(g10.l0, 5.1, abs_tol=1e-9) and math.isclose(g10.best_loss, 2.5, abs_tol=1e-9),
              "warmup=10: l0 = mean of run l0s, best = 2.5")
        check(math.isclose(g100.sensitivity, 0.1, abs_tol=1e-9),
              f"LR sensitivity warmup=100 is 0.1 (got {g100.sensitivity})")
    check(lrs == [1e-3, 1e-2, 1e-1, 3e-1], "study LR grid is the union of the groups' LRs")

    r = run(TOOL, study)
    check(r.returncode == 0, f"tiny study plots with exit 0 (stderr: {r.stderr.strip()[-300:]})")
    check(os.path.isfile(os.path.join(study, "plots", "loss_vs_lr.png")) and
          os.path.isfile(os.path.join(study, "plots", "lr_sensitivity.png")), "tiny study: two plots written")
    check("training_curves.png skipped" in r.stderr and
          not os.path.exists(os.path.join(study, "plots", "training_curves.png")),
          "tiny study: training_curves.png skipped with a note (no metrics logs)")


def test_errors(tmp):
    r = run(TOOL, os.path.join(tmp, "does_not_exist"))
    lines = r.stderr.strip().splitlines()
    check(r.returncode == 2 and len(lines) == 1 and "error" in lines[0],
          f"missing study directory: exit 2, one stderr line (rc={r.returncode}, {lines})")
    empty = os.path.join(tmp, "empty")
    os.makedirs(empty)
    with open(os.path.join(empty, "results.jsonl"), "w") as f:
        f.write(json.dumps({"type": "study", "name": "empty", "config": {}}) + "\n")
    r = run(TOOL, empty)
    lines = r.stderr.strip().splitlines()
    check(r.returncode == 2 and len(lines) == 1 and "no run lines" in lines[0],
          f"results.jsonl without run lines: exit 2, one stderr line (rc={r.returncode}, {lines})")


def test_strict(tmp):
    study = os.path.join(tmp, "corrupt")
    write_tiny(study)
    path = os.path.join(study, "results.jsonl")
    with open(path) as f:
        lines = f.read().split("\n")
    lines[2] = lines[2][:20]  # line 3 of 8 cut short: corruption, not a torn last line
    with open(path, "w") as f:
        f.write("\n".join(lines))
    r = run(TOOL, study)
    err = r.stderr.strip().splitlines()
    check(r.returncode == 2 and len(err) == 1 and "results.jsonl:3: not a JSON line" in err[0],
          f"malformed line 3 (not the last): exit 2, one line naming it (rc={r.returncode}, {err})")


def test_modules_and_seeds(tmp):
    sys.path.insert(0, os.path.join(HERE, ".."))
    import importlib
    for name in ("ballast_results", "study_groups", "plot_common", "plot_loss_lr", "plot_sensitivity", "plot_curves"):
        try:
            importlib.import_module(name)
            ok = True
        except Exception as e:  # noqa: BLE001 - any import failure is the finding
            ok = False
            print(f"     {name}: {e!r}")
        check(ok, f"module {name} imports on its own")
    ps = load_tool()
    study = os.path.join(tmp, "seeds")
    os.makedirs(study)
    base = {"type": "run", "policy_set": "p", "optimizer": "adamw", "size": "d8", "params": 100, "warmup": 5,
            "weight_decay": 1e-4, "eps": 1e-8, "l0": 5.0, "diverged": False}
    rows = [dict(base, key=f"s{seed}_{lr}", seed=seed, lr=lr, final_val_loss=f)
            for seed, lr, f in ((1, 1e-3, 3.0), (1, 1e-2, 2.0), (2, 1e-3, 4.0), (2, 1e-2, 2.2))]
    with open(os.path.join(study, "results.jsonl"), "w") as f:
        for row in [{"type": "study", "name": "seeds", "config": {}}] + rows:
            f.write(json.dumps(row) + "\n")
    _, runs = ps.load_results(study)
    groups, _ = ps.build_groups(runs, {})
    # per-LR means 3.5 and 2.1: LRsens (1.4 + 0) / 2 = 0.7; per seed 0.5 and 0.9
    check(len(groups) == 1 and math.isclose(groups[0].sensitivity, 0.7, abs_tol=1e-12) and
          sorted(round(c["sensitivity"], 12) for c in groups[0].by_seed.values()) == [0.5, 0.9],
          "two seeds: one group, LR sensitivity 0.7 on per-LR means, 0.5 and 0.9 per seed")


def main():
    with tempfile.TemporaryDirectory(prefix="plot_study_test_") as tmp:
        test_fake_study(tmp)
        test_sensitivity(tmp)
        test_errors(tmp)
        test_strict(tmp)
        test_modules_and_seeds(tmp)
    if failures:
        print(f"\n{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("\nall checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
