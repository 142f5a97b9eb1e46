#!/usr/bin/python3
"""Plot a `predict --json` output in the style of the paper's Fig 9 and Fig 11.

    tools/plot_prediction.py predict.json out.png

Left: block-0 max attention logit at the reading step against N, one colour per LR: the fitted points
(filled), the fit extended to the target (line), the prediction (open circle), the measured target (cross,
red when the run diverged) and the divergence threshold (dashed). Right: the gradient-RMS law at each LR
against N with the measured target and AdamW's eps. Exit code 2 and one line on bad input.
"""
import json
import math
import sys


def fail(msg):
    print(f"plot_prediction: error: {msg}", file=sys.stderr)
    sys.exit(2)


def main(argv):
    if len(argv) != 3:
        fail("usage: plot_prediction.py PREDICT_JSON OUT_PNG")
    try:
        with open(argv[1]) as f:
            data = json.load(f)
        preds = data["max_logit"]
        threshold = float(data["threshold"])
        target = float(data["target_n"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        fail(f"cannot read '{argv[1]}': {e}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    cmap = plt.get_cmap("viridis")
    n = max(len(preds), 1)
    all_n = [s for p in preds for s in p["sizes"]] + [target]
    lo, hi = min(all_n) / 1.3, target * 1.3
    for i, p in enumerate(preds):
        c = cmap(i / max(n - 1, 1))
        ax.plot(p["sizes"], p["values"], "o", color=c, label=f"LR {p['lr']:g}")
        fit = p.get("fit")
        if fit:
            xs = [lo * (hi / lo) ** (k / 60) for k in range(61)]
            ys = [10 ** sum(cf * math.log10(x) ** d for d, cf in enumerate(fit["coef"])) for x in xs]
            ax.plot(xs, ys, "-", color=c, lw=1)
            if p["predicted"] is not None:
                ax.plot([target], [p["predicted"]], "o", mfc="none", color=c, ms=9)
        if p["measured"] is not None:
            ax.plot([target], [p["measured"]], "x", ms=9, mew=2, color="red" if p["measured_diverged"] else c)
    ax.axhline(threshold, ls="--", color="gray", lw=1)
    ax.text(lo, threshold * 1.15, f"threshold {threshold:.3g} ({data.get('threshold_from', '')})", fontsize=7,
            color="gray")
    ax.axvline(target, ls=":", color="gray", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"N ({data.get('size_measure', '')} parameters)")
    ax.set_ylabel(f"block-0 max attention logit at step {data['step']}")
    ax.set_title(f"{data['policy_set']}: degree-{data['degree']} fit in log N, target {data['target']}\n"
                 "o predicted, x measured (red: diverged)", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")

    g = data.get("grad_rms")
    if g:
        xs = [lo * (hi / lo) ** (k / 60) for k in range(61)]
        for i, row in enumerate(g["rows"]):
            c = cmap(i / max(len(g["rows"]) - 1, 1))
            lr = row["lr"]
            bx.plot(xs, [10 ** (g["a"] + g["b"] * math.log10(x) + g["c"] * math.log10(lr)) for x in xs], "-",
                    color=c, lw=1, label=f"LR {lr:g}")
            pts = [(n_, r_) for n_, l_, r_ in g.get("points", []) if l_ == lr]
            bx.plot([p_[0] for p_ in pts], [p_[1] for p_ in pts], "o", color=c, ms=4)
            if row["measured"] is not None:
                bx.plot([target], [row["measured"]], "x", color=c, ms=8, mew=2)
        bx.axvline(target, ls=":", color="gray", lw=1)
        bx.set_xscale("log")
        bx.set_yscale("log")
        bx.set_xlabel("N")
        bx.set_ylabel("grad RMS, blocks.0.mlp.up.weight (last 10%)")
        bx.set_title(f"log10 rms = {g['a']:.2f} {g['b']:+.2f} log10 N {g['c']:+.2f} log10 LR "
                     f"(eps {g['eps']:g})\no fitted runs, x measured at the target", fontsize=9)
        bx.legend(fontsize=7, loc="lower left")
    else:
        bx.set_axis_off()
    fig.tight_layout()
    try:
        import os

        os.makedirs(os.path.dirname(os.path.abspath(argv[2])), exist_ok=True)
        fig.savefig(argv[2], dpi=110)
    except OSError as e:
        fail(f"cannot write '{argv[2]}': {e}")


if __name__ == "__main__":
    main(sys.argv)
