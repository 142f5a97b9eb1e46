#!/usr/bin/python3
"""Training curves and stability diagnostics of one run (paper Figs 2, 4, 11, 13 for a single run).

Usage:
  tools/plot_run.py RUN [--out PNG]

RUN is a run directory holding metrics.jsonl (as written by `train`), or a metrics log itself (a study's
runs/<key>.jsonl). Writes RUN/run.png (or <log without .jsonl>.png, or --out PNG) with up to six panels:

  loss               training loss and validation CE vs step, l0 (loss at init) and the divergence step
  max attention logit  per layer (diag lines), else the max over layers of the step lines; log scale,
                     the paper's 1e4 divergence threshold when approached
  log Z              mean log Z of the output logits (with its minimum) vs step
  gradient RMS       per tensor: mean over tensors, min-max band, and the probe tensor blocks.0.mlp.up.weight
  update RMS         the same for the unscaled update RMS (AdamW-like optimizers)
  LR and grad norm   the scheduled LR and the global gradient norm (before clipping)

Early warnings (warning lines) are vertical lines labelled with their rule. Panels whose signal the log
does not hold are left out and named on stderr (train records diagnostics with --diagnostics, a study
always does). Prints the written path on stdout. Exit status 2 with one line when RUN is missing or
malformed or has no step lines.
Dependencies: python3 standard library, python3-matplotlib (Agg backend), python3-numpy.
"""
import argparse
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ballast_results as br  # noqa: E402
from plot_common import PAPER_LOGIT_THRESHOLD, PROG, fmt_num, note, setup_matplotlib  # noqa: E402

PROBE = "blocks.0.mlp.up.weight"  # the paper's "first MLP layer of block 0" (docs/diagnostics.md)
LAYER_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
WARN_COLORS = {"attn_logit_threshold": "#c0392b", "attn_logit_growth": "#e67e22", "log_z_drift": "#8e44ad",
               "eps_collapse": "#16a085"}


def nan(v):
    f = br.finite(v)
    return f if f is not None else float("nan")


def layer_series(m):
    """{layer index: (steps, max logits)} from diag lines; {} when the log has none."""
    out = {}
    for d in m.diags:
        layers = d.get("layers")
        for i, layer in enumerate(layers if isinstance(layers, list) else []):
            if isinstance(layer, dict) and "max_logit" in layer:
                xs, ys = out.setdefault(i, ([], []))
                xs.append(d["step"])
                ys.append(nan(layer["max_logit"]))
    return out


def tensor_stats(m, field):
    """(steps, mean, min, max, probe) over tensors of diag lines' tensors.<name>.<field>; None when absent."""
    xs, mean, lo, hi, probe = [], [], [], [], []
    for d in m.diags:
        t = d.get("tensors")
        if not isinstance(t, dict):
            continue
        vals = [br.finite(v.get(field)) for v in t.values() if isinstance(v, dict)]
        vals = [v for v in vals if v is not None and v > 0]
        if not vals:
            continue
        xs.append(d["step"])
        mean.append(sum(vals) / len(vals))
        lo.append(min(vals))
        hi.append(max(vals))
        p = t.get(PROBE)
        probe.append(nan(p.get(field)) if isinstance(p, dict) else float("nan"))
    return (xs, mean, lo, hi, probe) if xs else None


def run_title(m, path):
    h = m.header
    model = h.get("model") if isinstance(h.get("model"), dict) else {}
    train = h.get("train") if isinstance(h.get("train"), dict) else {}
    parts = [str(h.get("policy_set", "?")), str(h.get("optimizer", "?"))]
    if model:
        parts.append(f"d{model.get('d_model', '?')} L{model.get('n_layers', '?')} H{model.get('n_heads', '?')}")
    if br.finite(train.get("lr")) is not None:
        parts.append(f"LR {fmt_num(train['lr'])}")
    if train.get("steps"):
        parts.append(f"{train['steps']} steps")
    end = m.end
    if end.get("diverged"):
        status = f"diverged at step {end.get('diverged_step', '?')}: {end.get('reason', '')}"
    elif end:
        status = f"final val loss {nan(end.get('final_val_loss')):.4f}"
    else:
        status = "no end line (running or stopped)"
    name = os.path.basename(path)
    if name == "metrics.jsonl":  # a train run directory: name it by its directory
        name = os.path.join(os.path.basename(os.path.dirname(os.path.abspath(path))), name)
    return f"{name}: " + ", ".join(parts) + f"\n{status}"


def plot_run(m, out_path):
    plt = setup_matplotlib()
    layers = layer_series(m)
    grad = tensor_stats(m, "grad_rms")
    upd = tensor_stats(m, "update_rms")
    step_logit = br.series(m.steps, "max_attn_logit")
    logz_diag = br.series(m.diags, "log_z_mean")
    logz = logz_diag if logz_diag[0] else br.series(m.steps, "log_z_mean")
    panels = ["loss"]
    missing = []
    for name, have in (("logit", layers or step_logit[0]), ("logz", logz[0]), ("grad", grad), ("update", upd)):
        if have:
            panels.append(name)
        else:
            missing.append(name)
    panels.append("lr")
    if missing:
        note(f"not in the log, panels left out: {', '.join(missing)}"
             + (" (no diag lines: run train with --diagnostics)" if not m.diags else ""))
    ncol = 3 if len(panels) > 4 else 2
    nrow = math.ceil(len(panels) / ncol)
    fig, axs = plt.subplots(nrow, ncol, figsize=(4.6 * ncol, 3.3 * nrow + 0.8), squeeze=False, sharex=True)
    flat = [a for row in axs for a in row]
    for a in flat[len(panels):]:
        a.set_visible(False)
    end = m.end
    div_step = br.finite(end.get("diverged_step")) if end.get("diverged") else None
    l0 = br.finite(end.get("l0"))
    if l0 is None and m.evals:
        l0 = br.finite(m.evals[0].get("val_ce"))
    for ax, name in zip(flat, panels):
        if name == "loss":
            xs, ys = br.series(m.steps, "loss")
            ax.plot(xs, ys, color="#222222", lw=1.4, label="training loss")
            field = "val_ce" if any(br.finite(e.get("val_ce")) is not None for e in m.evals) else "val_loss"
            ex, ey = br.series(m.evals, field)
            ax.plot(ex, ey, "o", color="#1f77b4", mfc="white", mew=1.3, ms=5, label="validation CE")
            if l0 is not None:
                ax.axhline(l0, ls="--", lw=0.9, color="0.45", label=r"$\ell_0$ (loss at init)")
                fin = [y for y in ys + ey if not math.isnan(y)]
                if fin:  # zoom on the descent; a diverging run keeps its blow-up in view (up to 4 l0)
                    lo = min(fin)
                    hi = l0 + 0.35 * (l0 - lo + 0.2)
                    if div_step:
                        hi = max(hi, 1.05 * min(max(fin), 4 * l0))
                    ax.set_ylim(lo - 0.05 * (l0 - lo + 0.2), hi)
            ax.set_ylabel("loss (nats/token)")
            ax.set_title("loss")
        elif name == "logit":
            top = 0.0
            if layers:
                for i, (xs, ys) in sorted(layers.items()):
                    ax.plot(xs, ys, color=LAYER_COLORS[i % len(LAYER_COLORS)], lw=1.4, label=f"layer {i}")
                    top = max([top] + [y for y in ys if not math.isnan(y)])
                ax.set_title("max attention logit per layer")
            else:
                ax.plot(*step_logit, color="#222222", lw=1.4, label="max over layers")
                top = max([0.0] + [y for y in step_logit[1] if not math.isnan(y)])
                ax.set_title("max attention logit (max over layers)")
            ax.set_yscale("log")
            if top > 0.1 * PAPER_LOGIT_THRESHOLD:
                ax.axhline(PAPER_LOGIT_THRESHOLD, color="0.5", lw=0.8, ls="-.", label="1e4 (paper's threshold)")
            ax.set_ylabel("max attention logit")
        elif name == "logz":
            ax.plot(*logz, color="#7b3294", lw=1.4, label="mean log Z")
            zmin = br.series(m.diags, "log_z_min")
            if zmin[0]:
                ax.plot(*zmin, color="#7b3294", lw=1.0, ls=":", label="min log Z")
            ax.axhline(0.0, color="0.6", lw=0.8)
            ax.set_ylabel("log Z")
            ax.set_title("output log Z (z-loss drives it to 0)")
        elif name in ("grad", "update"):
            xs, mean, lo, hi, probe = grad if name == "grad" else upd
            c = "#1b9e77" if name == "grad" else "#d95f02"
            ax.fill_between(xs, lo, hi, color=c, alpha=0.18, lw=0, label="min-max over tensors")
            ax.plot(xs, mean, color=c, lw=1.6, label="mean over tensors")
            if any(not math.isnan(p) for p in probe):
                ax.plot(xs, probe, color="#222222", lw=1.1, ls="--", label=PROBE)
            ax.set_yscale("log")
            ax.set_ylabel("RMS")
            ax.set_title("gradient RMS (raw, before clipping)" if name == "grad" else
                         "unscaled update RMS (m / (sqrt v + eps))")
        else:
            xs, ys = br.series(m.steps, "lr")
            ax.plot(xs, ys, color="#222222", lw=1.4, label="learning rate")
            ax.set_ylabel("learning rate")
            ax.set_title("LR schedule and gradient norm")
            gx, gy = br.series(m.steps, "grad_norm")
            if gx:
                bx = ax.twinx()
                bx.plot(gx, gy, color="#e8702a", lw=1.1, label="grad norm")
                bx.set_ylabel("global grad norm", color="#e8702a")
                bx.grid(False)
                bx.spines["right"].set_visible(True)
                h1, l1 = ax.get_legend_handles_labels()
                h2, l2 = bx.get_legend_handles_labels()
                ax.legend(h1 + h2, l1 + l2, fontsize=7.5, loc="best")
        for w in m.warnings:
            s = br.finite(w.get("step"))
            if s is not None:
                ax.axvline(s, color=WARN_COLORS.get(w.get("rule"), "0.3"), lw=1.0, ls="--", alpha=0.8)
        if div_step:
            ax.axvline(div_step, color="#b3261e", lw=1.0, ls=":")
        if name != "lr":
            ax.legend(fontsize=7.5, loc="best")
    for a in axs[-1]:
        a.set_xlabel("training step")
    for a in flat[:len(panels)]:
        a.tick_params(labelbottom=True)
    notes = []
    for w in m.warnings:
        notes.append(f"{w.get('rule')} at step {w.get('step')} ({w.get('where', '')}: {nan(w.get('value')):.3g} "
                     f"vs {nan(w.get('threshold')):.3g})")
    if div_step:
        notes.append(f"dotted red: divergence at step {div_step:g}")
    title = run_title(m, m.path)
    if notes:
        title += "\nearly warnings (dashed): " + "; ".join(notes)
    fig.suptitle(title, fontsize=9.5)
    fig.tight_layout()
    fig.savefig(out_path, bbox_inches="tight")
    plt.close(fig)


def main(argv=None):
    PROG[0] = "plot_run"
    ap = argparse.ArgumentParser(prog="plot_run.py", description=__doc__.split("\n")[0])
    ap.add_argument("run", metavar="RUN", help="run directory with metrics.jsonl, or a metrics log (.jsonl)")
    ap.add_argument("--out", metavar="PNG", help="output image (default RUN/run.png or <log>.png)")
    args = ap.parse_args(argv)
    try:
        m = br.load_metrics(args.run)
    except br.ResultsError as e:
        print(f"plot_run: error: {e}", file=sys.stderr)
        return 2
    if not m.steps:
        print(f"plot_run: error: {m.path} has no step lines", file=sys.stderr)
        return 2
    if m.torn:
        note(f"{m.path}:{m.torn}: skipping torn last line")
    if args.out:
        out = args.out
    elif os.path.isdir(args.run):
        out = os.path.join(args.run, "run.png")
    else:
        out = (m.path[:-len(".jsonl")] if m.path.endswith(".jsonl") else m.path) + ".png"
    try:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        plot_run(m, out)
    except ImportError as e:
        print(f"plot_run: error: {e} (apt-get install -y python3-matplotlib python3-numpy)", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"plot_run: error: cannot write {out}: {e.strerror or e}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
