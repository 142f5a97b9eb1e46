#!/usr/bin/python3
"""Markdown tables of a finished study, for docs/reproduction.md: per group (recipe, optimizer, size and the
grid axes that vary) the LR sensitivity, best loss and best LR from summary.json; and per run the final loss
with the diagnostics the claims need (max attention logit over the run, last mean log Z, mean gradient RMS
and mean unscaled-update RMS over tensors, fired early warnings).

    /usr/bin/python3 tools/study_tables.py runs/default [--runs]
Standard library only. Exit code 2 with one line for a missing or empty study.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ballast_results as br  # noqa: E402


def fail(msg):
    print(f"study_tables: error: {msg}", file=sys.stderr)
    sys.exit(2)


def load(study):
    """(run lines as dicts, summary.json groups) of a study directory."""
    try:
        runs = [r.raw for r in br.load_study(study).runs]
        summary = br.load_summary(study)
    except br.ResultsError as e:
        fail(str(e))
    if summary is None:
        fail(f"no summary.json in '{study}'")
    return runs, summary


def fmt(x, spec=".4f"):
    return "—" if x is None else format(x, spec)


def main(argv):
    if not argv or argv[0].startswith("-"):
        fail("usage: study_tables.py STUDY_DIR [--runs]")
    runs, groups = load(argv[0])
    axes = [k for k in ("optimizer", "warmup", "weight_decay", "eps", "steps") if len({g[k] for g in groups}) > 1]
    head = ["recipe"] + axes + ["size", "params", "best loss", "best LR", "LR sens", "diverged"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for g in groups:
        row = [g["policy_set"]] + [str(g[a]) for a in axes] + [g["size"], str(g["params"]), fmt(g["best_loss"]),
                                                                 f"{g['best_lr']:g}", fmt(g["lr_sensitivity"]),
                                                                 f"{g['diverged']}/{g['runs']}"]
        print("| " + " | ".join(row) + " |")
    if "--runs" in argv:
        print()
        head = ["recipe"] + axes + ["size", "LR", "final loss", "max attn logit", "log Z (last)", "grad RMS",
                                   "update RMS", "warnings"]
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for r in sorted(runs, key=lambda r: (r["policy_set"], r["optimizer"], r["params"], r["warmup"],
                                             r["weight_decay"], r["eps"], r["lr"])):
            d = r.get("diagnostics") or {}
            warn = ", ".join(sorted({w["rule"] for w in d.get("warnings", [])})) or "—"
            row = [r["policy_set"]] + [str(r[a]) for a in axes] + [
                r["size"], f"{r['lr']:g}", "diverged" if r["diverged"] else fmt(r["final_val_loss"]),
                fmt(d.get("max_attn_logit"), ".3g"), fmt(d.get("log_z_mean"), ".2f"), fmt(d.get("grad_rms"), ".2e"),
                fmt(d.get("update_rms"), ".3f"), warn]
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
