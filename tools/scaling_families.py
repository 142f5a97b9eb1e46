#!/usr/bin/python3
"""LR sensitivity against size for width and depth families of a finished study (the paper's Fig 7, claim 13).

    /usr/bin/python3 tools/scaling_families.py runs/width_depth [--png OUT.png] [--markdown]

Sizes are labelled d<d_model>_L<layers>_H<heads>. A width family is every size sharing a depth L (≥ 2 widths);
a depth family is every size sharing a width d (≥ 2 depths). For each family and policy set, prints the LR
sensitivity (summary.json) at each non-embedding N (results.jsonl) and the least-squares slope of LR
sensitivity against log10 N; optionally plots them. Exit code 2 with one line on bad input.
"""
import argparse
import math
import os
import pathlib
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ballast_results as br  # noqa: E402


def fail(msg):
    print(f"scaling_families: error: {msg}", file=sys.stderr)
    sys.exit(2)


SIZE = re.compile(r"^d(\d+)_L(\d+)_H(\d+)$")


def load(study):
    try:
        summary = br.load_summary(study)
        runs = br.load_study(study).runs
    except br.ResultsError as e:
        fail(str(e))
    if summary is None:
        fail(f"no summary.json in '{study}'")
    n_of = {r.size: r.params_non_embedding for r in runs if r.params_non_embedding is not None}
    rows = []
    for g in summary:
        m = SIZE.match(g.get("size", ""))
        if not m or g["size"] not in n_of:
            continue
        d, L, _ = map(int, m.groups())
        rows.append({"set": g["policy_set"], "size": g["size"], "d": d, "L": L, "n": n_of[g["size"]],
                     "sens": g["lr_sensitivity"], "best": g["best_loss"], "best_lr": g["best_lr"]})
    if not rows:
        fail(f"no groups with sizes and non-embedding parameter counts in '{study}'")
    return rows


def slope(points):
    xs = [math.log10(n) for n, _ in points]
    ys = [s for _, s in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx > 0 else float("nan")


def families(rows):
    out = []
    for s in sorted({r["set"] for r in rows}):
        mine = [r for r in rows if r["set"] == s]
        for L in sorted({r["L"] for r in mine}):
            fam = sorted((r for r in mine if r["L"] == L), key=lambda r: r["n"])
            if len({r["d"] for r in fam}) >= 2:
                out.append((s, f"width (L={L})", fam))
        for d in sorted({r["d"] for r in mine}):
            fam = sorted((r for r in mine if r["d"] == d), key=lambda r: r["n"])
            if len({r["L"] for r in fam}) >= 2:
                out.append((s, f"depth (d={d})", fam))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study_dir")
    ap.add_argument("--png", help="write the plot here")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    a = ap.parse_args(argv)
    fams = families(load(a.study_dir))
    if not fams:
        fail("no width or depth family (need ≥ 2 sizes sharing L or sharing d)")
    if a.markdown:
        print("| policy set | family | sizes (N: LR sensitivity) | slope per decade of N |")
        print("|---|---|---|---|")
    for s, name, fam in fams:
        pts = ", ".join(f"{r['size']} ({r['n'] / 1e3:.0f}K): {r['sens']:.3f}" for r in fam)
        k = slope([(r["n"], r["sens"]) for r in fam])
        if a.markdown:
            print(f"| {s} | {name} | {pts} | {k:+.3f} |")
        else:
            print(f"{s:16} {name:14} slope {k:+.3f}/decade  {pts}")
    if a.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for s, name, fam in fams:
            style = "o-" if name.startswith("width") else "s--"
            ax.plot([r["n"] for r in fam], [r["sens"] for r in fam], style,
                    label=f"{s} {name}: {slope([(r['n'], r['sens']) for r in fam]):+.3f}/decade")
            for r in fam:
                ax.annotate(r["size"], (r["n"], r["sens"]), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("non-embedding parameters N")
        ax.set_ylabel("LR sensitivity")
        ax.set_title("LR sensitivity: width vs depth scaling", fontsize=10)
        ax.legend(fontsize=7)
        fig.tight_layout()
        try:
            pathlib.Path(a.png).resolve().parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(a.png, dpi=110)
        except OSError as e:
            fail(f"cannot write '{a.png}': {e}")


if __name__ == "__main__":
    main()
