#!/usr/bin/python3
"""Plot an LR-sensitivity study directory in the style of Wortsman et al. 2023 (arXiv 2309.14322).

Usage:
  tools/plot_study.py STUDY_DIR [--out DIR] [--select KEY ...]

Reads STUDY_DIR/results.jsonl (required; read strictly: only a torn last line is dropped),
STUDY_DIR/summary.json (optional) and the per-run metrics logs STUDY_DIR/runs/<key>.jsonl (optional), and
writes into STUDY_DIR/plots/ (or --out DIR):

  loss_vs_lr.png        final validation loss vs peak LR, one panel per policy set, one curve per model size
                        (paper Fig 1 top); diverged runs are 'x' markers on the panel's top edge
  lr_sensitivity.png    LR sensitivity vs parameter count, one line per policy set (paper Fig 1 bottom),
                        next to the best final loss vs parameter count (paper Fig E.3)
  training_curves.png   training loss (+ validation CE markers) vs step for selected runs, plus max attention
                        logit vs step (paper Fig 2) and mean log Z vs step (paper Fig 4) when logged

Runs are grouped by (policy_set, optimizer, size, warmup, weight_decay, eps, steps) - `steps` only when
the lines carry it; groups are never averaged together. Axes besides policy set and size that vary within
the study give extra panels (one row per policy set, one column per setting; titles name the setting) and
extra lines in lr_sensitivity.png; constant ones are named in the figure title.

LR sensitivity (paper §2.2): mean over the group's LRs of min(final loss, l0) - min over the group of
min(final loss, l0); diverged or non-finite runs count as l0, l0 is the group's mean measured l0. When the
study line's config.study.sensitivity_window is W > 0 (ballast's shifted-window variant, paper App. B), the
value is the minimum of that over every window of W consecutive LRs.
Values from summary.json are used when present (a mismatch with the recomputed value is reported);
otherwise the recomputed values are used.

Prints the written paths on stdout; warnings and skipped plots go to stderr. Exit status 2 when the study
directory or its results.jsonl is missing/unreadable or holds no run lines.
Modules: ballast_results.py (reading), study_groups.py (groups, LR sensitivity), plot_common.py (style,
formatting), plot_loss_lr.py, plot_sensitivity.py, plot_curves.py (one per plot).
Dependencies: python3 standard library, python3-matplotlib (Agg backend), python3-numpy.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ballast_results import finite, norm  # noqa: E402  (re-exported: __all__)
from plot_common import PROG, note, setup_matplotlib  # noqa: E402
from plot_curves import default_selection, plot_training_curves  # noqa: E402
from plot_loss_lr import plot_loss_vs_lr  # noqa: E402
from plot_sensitivity import plot_lr_sensitivity  # noqa: E402
from study_groups import (Group, StudyError, build_groups, compute_sensitivity, load_results,  # noqa: E402
                          load_summary, sensitivity_window, varying_axes)

PROG[0] = "plot_study"
__all__ = ["main", "finite", "norm", "default_selection", "plot_training_curves", "Group", "StudyError",
           "build_groups", "compute_sensitivity", "load_results", "load_summary", "sensitivity_window",
           "varying_axes"]


def main(argv=None):
    ap = argparse.ArgumentParser(prog="plot_study.py", description=__doc__.split("\n")[0])
    ap.add_argument("study_dir", metavar="STUDY_DIR", help="directory with results.jsonl (and summary.json, runs/)")
    ap.add_argument("--out", metavar="DIR", help="output directory (default: STUDY_DIR/plots)")
    ap.add_argument("--select", metavar="KEY", nargs="+",
                    help="run keys to show in training_curves.png (default: per policy set, the largest "
                         "size at its highest non-diverged LR and at its highest LR)")
    args = ap.parse_args(argv)
    try:
        study, runs = load_results(args.study_dir)
    except StudyError as e:
        print(f"{PROG[0]}: error: {e}", file=sys.stderr)
        return 2
    summary = load_summary(args.study_dir)
    window = sensitivity_window(study)
    if window:
        note(f"study uses the shifted-window LR sensitivity (min over windows of {window} LRs)")
    groups, all_lrs = build_groups(runs, summary, window)
    out_dir = args.out or os.path.join(args.study_dir, "plots")
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        print(f"{PROG[0]}: error: cannot create output directory {out_dir}: {e.strerror or e}", file=sys.stderr)
        return 1
    try:
        plt = setup_matplotlib()
    except ImportError as e:
        print(f"{PROG[0]}: error: {e} (apt-get install -y python3-matplotlib python3-numpy)", file=sys.stderr)
        return 1
    written = []
    plot_loss_vs_lr(plt, groups, all_lrs, study, out_dir, written)
    plot_lr_sensitivity(plt, groups, all_lrs, study, out_dir, written)
    plot_training_curves(plt, groups, runs, args.select, args.study_dir, study, out_dir, written)
    for p in written:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
