#!/usr/bin/python3
"""Plot an LR-sensitivity study directory in the style of Wortsman et al. 2023 (arXiv 2309.14322).

Usage:
  tools/plot_study.py STUDY_DIR [--out DIR] [--select KEY ...]

Reads STUDY_DIR/results.jsonl (required), STUDY_DIR/summary.json (optional) and the per-run metrics logs
STUDY_DIR/runs/<key>.jsonl (optional), and writes into STUDY_DIR/plots/ (or --out DIR):

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
Dependencies: python3 standard library, python3-matplotlib (Agg backend), python3-numpy.
"""
import argparse
import json
import math
import os
import sys

PROG = "plot_study"
AXES = ("optimizer", "warmup", "weight_decay", "eps", "steps")  # group-key axes besides policy_set and size
AXIS_LABEL = {"optimizer": "opt", "warmup": "warmup", "weight_decay": "wd", "eps": "eps", "steps": "steps"}
PAPER_LOGIT_THRESHOLD = 1e4  # paper §3.3: every run whose max attention logit exceeded 1e4 diverged


class StudyError(Exception):
    """Fatal input problem: reported as one line on stderr, exit status 2."""


def warn(msg):
    print(f"{PROG}: warning: {msg}", file=sys.stderr)


def note(msg):
    print(f"{PROG}: note: {msg}", file=sys.stderr)


# ----------------------------------------------------------------------------------------------------------
# Reading


def finite(x):
    """float(x) if x is a finite number, else None (null, NaN, Inf, strings, bools)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def norm(v):
    """Hashable, float-noise-free form of a group-key value."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, (int, float)):
        f = float(v)
        return float(f"{f:.10g}") if math.isfinite(f) else None
    return json.dumps(v, sort_keys=True)


def read_jsonl(path, what):
    """Yield (line_number, dict) for each valid JSON-object line; warn about and skip invalid ones."""
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            where = "torn last line" if i == len(lines) else "invalid line"
            warn(f"{path}:{i}: skipping {where} of {what} ({len(line)} chars: {line[:40]!r}...)")
            continue
        if not isinstance(rec, dict):
            warn(f"{path}:{i}: skipping non-object line of {what}")
            continue
        yield i, rec


class Run:
    """One finished run (a 'run' line of results.jsonl), normalised."""

    def __init__(self, rec):
        self.rec = rec
        self.key = str(rec.get("key", ""))
        self.policy_set = str(rec.get("policy_set", "?"))
        self.size = str(rec.get("size", "?"))
        self.params = finite(rec.get("params"))
        self.lr = finite(rec.get("lr"))
        self.l0 = finite(rec.get("l0"))
        self.final = finite(rec.get("final_val_loss"))
        # Non-finite final loss counts as diverged (paper notes §3: NaN/Inf runs count as l0).
        self.diverged = bool(rec.get("diverged")) or self.final is None
        self.diverged_step = finite(rec.get("diverged_step")) or 0
        self.reason = rec.get("reason") or ""
        self.axes = {a: norm(rec.get(a)) for a in AXES}
        self.metrics = rec.get("metrics")

    @property
    def group_key(self):
        return (self.policy_set, self.size) + tuple(self.axes[a] for a in AXES)


def load_results(study_dir):
    """(study header dict, [Run]) from results.jsonl; raises StudyError for fatal problems."""
    path = os.path.join(study_dir, "results.jsonl")
    if not os.path.isdir(study_dir):
        raise StudyError(f"study directory not found or not a directory: {study_dir}")
    if not os.path.isfile(path):
        raise StudyError(f"no results.jsonl in study directory {study_dir}")
    try:
        records = list(read_jsonl(path, "results.jsonl"))
    except OSError as e:
        raise StudyError(f"cannot read {path}: {e.strerror or e}")
    study, by_key, unknown = {}, {}, 0
    for i, rec in records:
        t = rec.get("type")
        if t == "study":
            study = rec
        elif t == "run":
            run = Run(rec)
            if run.lr is None or run.lr <= 0:
                warn(f"{path}:{i}: run {run.key!r} has no positive finite lr; skipped")
                continue
            if run.key in by_key:
                warn(f"{path}:{i}: duplicate run key {run.key!r}; the later line wins")
            by_key[run.key or f"#line{i}"] = run
        else:
            unknown += 1
    if unknown:
        note(f"{path}: ignored {unknown} line(s) of unknown type")
    if not by_key:
        raise StudyError(f"{path} contains no run lines")
    return study, list(by_key.values())


def load_summary(study_dir):
    """{group_key: summary group dict} from summary.json, or {} when absent/unreadable."""
    path = os.path.join(study_dir, "summary.json")
    if not os.path.isfile(path):
        note("no summary.json; LR sensitivity computed from results.jsonl")
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        groups = doc["groups"]
        out = {}
        for g in groups:
            key = (str(g.get("policy_set", "?")), str(g.get("size", "?"))) + tuple(norm(g.get(a)) for a in AXES)
            out[key] = g
        return out
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        warn(f"{path} unreadable ({e}); LR sensitivity computed from results.jsonl")
        return {}


def load_metrics(study_dir, run, missing):
    """{'steps': [dict], 'evals': [dict], 'header': dict, 'end': dict} for a run, or None if unavailable
    (the path of a missing log is appended to `missing`)."""
    if run.metrics == "":  # the study was run without per-run metrics logs
        return None
    rel = run.metrics or os.path.join("runs", f"{run.key}.jsonl")
    path = rel if os.path.isabs(rel) else os.path.join(study_dir, rel)
    if not os.path.isfile(path):
        missing.append(path)
        return None
    out = {"steps": [], "evals": [], "header": {}, "end": {}}
    try:
        for _, rec in read_jsonl(path, f"metrics log of {run.key}"):
            t = rec.get("type")
            if t == "step" and finite(rec.get("step")) is not None:
                out["steps"].append(rec)
            elif t == "eval" and finite(rec.get("step")) is not None:
                out["evals"].append(rec)
            elif t in ("header", "end"):
                out[t] = rec
    except OSError as e:
        note(f"cannot read metrics log {path}: {e.strerror or e}")
        return None
    for k in ("steps", "evals"):  # a resumed run may repeat steps: the later line wins
        out[k] = sorted({r["step"]: r for r in out[k]}.values(), key=lambda r: r["step"])
    return out


# ----------------------------------------------------------------------------------------------------------
# Groups and LR sensitivity


class Group:
    """Runs sharing (policy_set, size, optimizer, warmup, weight_decay, eps)."""

    def __init__(self, key, runs, window=0):
        self.key = key
        self.policy_set, self.size = key[0], key[1]
        self.axes = dict(zip(AXES, key[2:]))
        self.runs = sorted(runs, key=lambda r: r.lr)
        ps = [r.params for r in runs if r.params is not None]
        self.params = ps[0] if ps else None
        if len(set(ps)) > 1:
            warn(f"group {self.label()}: runs disagree on params {sorted(set(ps))}; using {self.params:g}")
        comp = compute_sensitivity(self.runs, window)
        self.sensitivity, self.best_loss, self.l0 = comp["sensitivity"], comp["best_loss"], comp["l0"]
        self.lrs = sorted({r.lr for r in self.runs})
        self.sens_source = "results.jsonl"

    def label(self):
        return "/".join([self.policy_set, self.size] + [f"{AXIS_LABEL[a]}={fmt_value(v)}" for a, v in
                                                         self.axes.items() if v is not None])

    def apply_summary(self, g):
        """Prefer the study driver's summary values; report disagreement with the recomputation."""
        s = finite(g.get("lr_sensitivity"))
        if s is None:
            return
        if self.sensitivity is not None and abs(s - self.sensitivity) > 1e-6 + 1e-4 * abs(s):
            warn(f"group {self.label()}: summary.json lr_sensitivity {s:.6g} != {self.sensitivity:.6g} "
                 f"recomputed from results.jsonl ({len(self.runs)} runs, summary says {g.get('runs')}); "
                 "using summary.json")
        self.sensitivity = s
        self.sens_source = "summary.json"
        if finite(g.get("best_loss")) is not None:
            self.best_loss = finite(g.get("best_loss"))
        if self.params is None and finite(g.get("params")) is not None:
            self.params = finite(g.get("params"))


def compute_sensitivity(runs, window=0):
    """Paper §2.2 LR sensitivity of one group of runs (one model, one setting, several LRs).

    l0 = mean of the runs' measured l0; each run's loss is min(final_val_loss, l0), with diverged or
    non-finite runs counted as l0; l* = min of those; LRsens = mean over LRs of (loss - l*). Several runs at
    the same LR (e.g. seeds) are averaged first so every LR has equal weight. With 0 < window < #LRs, the
    minimum of that over every `window` consecutive LRs (ballast's study::lr_sensitivity_shifted). Returns
    a dict with 'sensitivity', 'best_loss', 'l0' (None where undefined, e.g. no run has a finite l0)."""
    l0s = [r.l0 for r in runs if r.l0 is not None]
    if not l0s or not runs:
        return {"sensitivity": None, "best_loss": None, "l0": None}
    l0 = sum(l0s) / len(l0s)
    per_lr = {}
    for r in runs:
        v = l0 if (r.diverged or r.final is None) else min(r.final, l0)
        per_lr.setdefault(r.lr, []).append(v)
    capped = [sum(per_lr[lr]) / len(per_lr[lr]) for lr in sorted(per_lr)]
    best = min(capped)

    def sens(cs):
        b = min(cs)
        return sum(c - b for c in cs) / len(cs)

    if 0 < window < len(capped):
        value = min(sens(capped[i:i + window]) for i in range(len(capped) - window + 1))
    else:
        value = sens(capped)
    return {"sensitivity": value, "best_loss": best, "l0": l0}


def sensitivity_window(study):
    """config.study.sensitivity_window of the study line (ballast's engine), 0 when absent."""
    try:
        w = study["config"]["study"]["sensitivity_window"]
        return int(w) if isinstance(w, (int, float)) and not isinstance(w, bool) and w > 0 else 0
    except (KeyError, TypeError):
        return 0


def build_groups(runs, summary, window=0):
    by_key = {}
    for r in runs:
        by_key.setdefault(r.group_key, []).append(r)
    groups = [Group(k, rs, window) for k, rs in by_key.items()]
    # Stable panel/line order in every plot: policy sets in summary.json order, else alphabetical;
    # then size (params), then the other axes.
    pol_rank = {}
    for k in summary:
        pol_rank.setdefault(k[0], len(pol_rank))
    groups.sort(key=lambda g: (pol_rank.get(g.policy_set, len(pol_rank)), g.policy_set,
                               g.params if g.params is not None else math.inf, g.size,
                               tuple(sort_val(v) for v in g.axes.values())))
    for g in groups:
        if g.key in summary:
            g.apply_summary(summary[g.key])
    missing = [g.label() for g in groups if summary and g.key not in summary]
    if missing:
        note(f"summary.json has no entry for {len(missing)} group(s) ({', '.join(missing[:4])}"
             f"{', ...' if len(missing) > 4 else ''}); recomputed from results.jsonl")
    dup = [g.label() for g in groups if len(g.lrs) < len(g.runs)]
    if dup:
        note(f"several runs at the same LR in {', '.join(dup[:4])}; averaged per LR")
    all_lrs = sorted({lr for g in groups for lr in g.lrs})
    for g in groups:
        if len(g.lrs) < len(all_lrs):
            warn(f"group {g.label()} covers {len(g.lrs)}/{len(all_lrs)} LRs of the study grid; its LR "
                 "sensitivity is not comparable with complete groups")
    return groups, all_lrs


def sort_val(v):
    """Sort key mixing numbers (numerically), strings and None (last)."""
    if v is None:
        return (2, 0.0, "")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, float(v), "")
    return (1, 0.0, str(v))


def varying_axes(groups):
    return [a for a in AXES if len({g.axes[a] for g in groups}) > 1]


# ----------------------------------------------------------------------------------------------------------
# Formatting


def fmt_value(v):
    if isinstance(v, float):
        return fmt_num(v)
    return str(v)


def fmt_num(v):
    """Compact number: 3e-4, 0.01 -> 1e-2, 0.3 -> 3e-1, 30, 1e-08 -> 1e-8, 2.5e-3."""
    if v == 0:
        return "0"
    if 1 <= abs(v) < 1e4:
        return str(int(v)) if float(v).is_integer() else f"{v:.3g}"
    exp = math.floor(math.log10(abs(v)))
    mant = float(f"{v / 10 ** exp:.3g}")
    if abs(mant) >= 10:  # rounding carried into the next decade
        mant, exp = mant / 10, exp + 1
    m = str(int(mant)) if mant.is_integer() else f"{mant:g}"
    return f"{m}e{exp}"


def fmt_params(p):
    """Parameter count for legends: 98304 -> 98K, 786432 -> 0.79M, 2.36e6 -> 2.4M, 1.21e9 -> 1.2B."""
    if p is None:
        return "? params"
    for div, suf in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if p >= div * (0.1 if suf == "M" else 1):
            x = p / div
            s = f"{x:.0f}" if x >= 10 else f"{x:.2g}"
            return f"{s}{suf}"
    return f"{p:.0f}"


def size_order(groups):
    """Distinct (size, params) sorted small to large."""
    seen = {}
    for g in groups:
        seen.setdefault(g.size, g.params)
    return sorted(seen.items(), key=lambda sp: (sp[1] if sp[1] is not None else math.inf, sp[0]))


def size_colors(groups, cmap_name="YlGnBu"):
    """One colour per size from a sequential colormap: small = light, large = dark (as in the paper)."""
    import matplotlib
    try:
        cmap = matplotlib.colormaps[cmap_name]
    except AttributeError:  # matplotlib < 3.5
        import matplotlib.cm
        cmap = matplotlib.cm.get_cmap(cmap_name)
    sizes = [s for s, _ in size_order(groups)]
    n = len(sizes)
    lo, hi = 0.38, 0.95
    return {s: cmap(hi if n == 1 else lo + (hi - lo) * i / (n - 1)) for i, s in enumerate(sizes)}


def setup_matplotlib():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update({
        "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
        "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.spines.top": False, "axes.spines.right": False,
        "axes.grid": True, "grid.alpha": 0.35, "grid.linewidth": 0.6, "axes.axisbelow": True,
        "legend.frameon": False, "figure.dpi": 150, "savefig.dpi": 150, "lines.linewidth": 1.6,
        "lines.markersize": 4.5, "figure.facecolor": "white",
    })
    return plt


def lr_axis(ax, lrs):
    """Log LR axis with ticks (and labels like 3e-4) at the study's grid values."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
    ax.set_xscale("log")
    if 0 < len(lrs) <= 12:
        ax.xaxis.set_major_locator(FixedLocator(lrs))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_num(v)))
        ax.xaxis.set_minor_locator(NullLocator())
        lo, hi = min(lrs), max(lrs)
        pad = (hi / lo) ** 0.05 if hi > lo else 1.5
        ax.set_xlim(lo / pad, hi * pad)
    ax.set_xlabel("peak learning rate")


def constant_axes_text(groups, study):
    parts = []
    for a in AXES:
        vals = {g.axes[a] for g in groups}
        if len(vals) == 1 and None not in vals:
            parts.append(f"{AXIS_LABEL[a]} {fmt_value(vals.pop())}")
    name = study.get("name")
    head = f"study: {name}" if name else "study"
    return head + (" (" + ", ".join(parts) + ")" if parts else "")


def panel_key(g, vary):
    return (g.policy_set,) + tuple(g.axes[a] for a in vary)


def panel_title(pkey, vary):
    extra = ", ".join(f"{AXIS_LABEL[a]}={fmt_value(v)}" for a, v in zip(vary, pkey[1:]))
    return f"policy set: {pkey[0]}" + (f"\n{extra}" if extra else "")


def ordered_unique(seq):
    out = []
    for x in seq:
        if x not in out:
            out.append(x)
    return out


def panel_grid(groups, vary):
    """[[panel key or None]] rows of panels. No varying extra axis: one row with one panel per policy set
    (wrapped at 4). Otherwise one row per policy set and one column per setting of the varying axes."""
    keys = ordered_unique(panel_key(g, vary) for g in groups)
    if not vary:
        n = len(keys)
        ncol = n if n <= 4 else math.ceil(n / math.ceil(n / 4))
        rows = [keys[i:i + ncol] for i in range(0, n, ncol)]
    else:
        rows = []
        for pol in ordered_unique(k[0] for k in keys):
            rows.append(sorted([k for k in keys if k[0] == pol], key=lambda k: tuple(map(sort_val, k[1:]))))
    width = max(len(r) for r in rows)
    return [r + [None] * (width - len(r)) for r in rows]


def save(fig, out_dir, name, written):
    path = os.path.join(out_dir, name)
    fig.savefig(path, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    written.append(path)


# ----------------------------------------------------------------------------------------------------------
# Plot 1: final validation loss vs LR


def plot_loss_vs_lr(plt, groups, all_lrs, study, out_dir, written):
    from matplotlib.lines import Line2D
    from matplotlib.transforms import blended_transform_factory
    finals = [r.final for g in groups for r in g.runs if not r.diverged]
    l0s = [g.l0 for g in groups if g.l0 is not None]
    if not finals and not l0s:
        note("loss_vs_lr.png skipped: no run has a finite final validation loss or l0")
        return
    vary = varying_axes(groups)
    grid = panel_grid(groups, vary)
    colors = size_colors(groups)
    # Zoom on the finite losses (the paper's Fig 1 does): l0 is usually far above them; runs above the
    # range are drawn as markers on the top edge, and the l0 line only shows when it is in range.
    top_ref = (min(max(finals), max(l0s)) if l0s else max(finals)) if finals else max(l0s)
    bottom_ref = min(finals) if finals else (min(l0s) - 1.0)
    span = max(top_ref - bottom_ref, 0.2)
    ylim = (bottom_ref - 0.08 * span, top_ref + 0.12 * span)
    any_div = any_above = False

    nrow, ncol = len(grid), len(grid[0])
    fig, axs = plt.subplots(nrow, ncol, figsize=(0.6 + 4.0 * ncol, 0.9 + 3.3 * nrow), sharey=True,
                            squeeze=False)
    for ri, row in enumerate(grid):
        for ci, pkey in enumerate(row):
            ax = axs[ri][ci]
            if pkey is None:
                ax.set_visible(False)
                continue
            pgroups = [g for g in groups if panel_key(g, vary) == pkey]  # already small -> large
            lr_axis(ax, all_lrs)
            ax.set_ylim(*ylim)
            ax.set_title(panel_title(pkey, vary))
            if ci == 0:
                ax.set_ylabel("final validation loss (nats/token)")
            trans = blended_transform_factory(ax.transData, ax.transAxes)
            panel_l0 = [g.l0 for g in pgroups if g.l0 is not None]
            if panel_l0:
                if max(panel_l0) - min(panel_l0) > 0.01 * span:  # l0 differ visibly: one line per size
                    for g in pgroups:
                        if g.l0 is not None:
                            ax.axhline(g.l0, ls="--", lw=0.9, color=colors[g.size], alpha=0.8, zorder=1)
                else:
                    ax.axhline(sum(panel_l0) / len(panel_l0), ls="--", lw=0.9, color="0.45", zorder=1)
            stacked = {}  # LR -> diverged markers already drawn there (stack so none hides another)
            handles = []
            for g in pgroups:
                c = colors[g.size]
                per_lr = {}  # one point per LR (mean over repeated runs at the same LR)
                for r in g.runs:
                    if not r.diverged:
                        per_lr.setdefault(r.lr, []).append(r.final)
                xs = sorted(per_lr)
                ys = [sum(per_lr[x]) / len(per_lr[x]) for x in xs]
                ax.plot(xs, [min(y, ylim[1]) for y in ys], "-o", color=c, mec="white", mew=0.6, zorder=3,
                        clip_on=False)
                # off-range points on the top edge: upward triangle = finite but above the range,
                # x = diverged / non-finite; markers at the same LR are stacked downwards
                edge = [(x, "^") for x, y in zip(xs, ys) if y > ylim[1]]
                edge += [(x, "x") for x in sorted({r.lr for r in g.runs if r.diverged} - set(per_lr))]
                for lr, m in edge:
                    any_above |= m == "^"
                    any_div |= m == "x"
                    k = stacked.get(lr, 0)
                    stacked[lr] = k + 1
                    style = dict(ms=7, mew=2.0) if m == "x" else dict(ms=6.5, mec="white", mew=0.5)
                    ax.plot([lr], [1.0 - 0.045 * k], m, color=c, transform=trans, clip_on=False, zorder=5,
                            **style)
                sens = "n/a" if g.sensitivity is None else f"{g.sensitivity:.3f}"
                incomplete = f" ({len(g.lrs)}/{len(all_lrs)} LRs)" if len(g.lrs) < len(all_lrs) else ""
                handles.append(Line2D([], [], color=c, marker="o", mec="white",
                                      label=f"{fmt_params(g.params)} params, {g.size}: {sens}{incomplete}"))
            ax.legend(handles=handles, loc="best", title="size: LR sensitivity", title_fontsize=7.5,
                      fontsize=7.2, frameon=True, framealpha=0.85, edgecolor="none", handlelength=1.8,
                      borderaxespad=0.6)
    keys = [Line2D([], [], color="0.45", ls="--", lw=0.9, label=r"$\ell_0$ (loss at initialization)")]
    if any_div:
        keys.append(Line2D([], [], color="0.3", marker="x", ls="none", ms=6, mew=1.8,
                           label="diverged / non-finite (top edge)"))
    if any_above:
        keys.append(Line2D([], [], color="0.3", marker="^", ls="none", label=r"finite, above $\ell_0$ (top edge)"))
    fig.suptitle(f"Final validation loss vs peak LR - {constant_axes_text(groups, study)}", fontsize=10.5)
    legend_h = 0.35 / fig.get_figheight()
    fig.legend(handles=keys, loc="lower center", ncol=len(keys), bbox_to_anchor=(0.5, 0.0), fontsize=8)
    fig.tight_layout(rect=(0, legend_h, 1, 1))
    save(fig, out_dir, "loss_vs_lr.png", written)


# ----------------------------------------------------------------------------------------------------------
# Plot 2: LR sensitivity vs parameter count


def plot_lr_sensitivity(plt, groups, all_lrs, study, out_dir, written):
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
    usable = [g for g in groups if g.sensitivity is not None and g.params is not None]
    if not usable:
        note("lr_sensitivity.png skipped: no group has both an LR sensitivity and a parameter count")
        return
    vary = varying_axes(usable)
    lines = ordered_unique(panel_key(g, vary) for g in usable)
    policies = ordered_unique(k[0] for k in lines)
    combos = ordered_unique(k[1:] for k in lines)
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
               "#7f7f7f", "#bcbd22"]
    markers = ["o", "s", "^", "D", "v", "P", "X", "*"]
    styles = ["-", "--", ":", "-."]
    pcol = {p: palette[i % len(palette)] for i, p in enumerate(policies)}
    params = sorted({g.params for g in usable})

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10.0, 3.9))
    for lk in lines:
        gs = sorted([g for g in usable if panel_key(g, vary) == lk], key=lambda g: g.params)
        ci = combos.index(lk[1:])
        extra = ", ".join(f"{AXIS_LABEL[a]}={fmt_value(v)}" for a, v in zip(vary, lk[1:]))
        label = lk[0] + (f" ({extra})" if extra else "")
        style = dict(color=pcol[lk[0]], marker=markers[ci % len(markers)], ls=styles[ci % len(styles)],
                     ms=6, mec="white", mew=0.7)
        xs = [g.params for g in gs]
        ax.plot(xs, [g.sensitivity for g in gs], label=label, **style)
        incomplete = [g for g in gs if len(g.lrs) < len(all_lrs)]
        if incomplete:  # hollow ring marks a group missing some LRs of the grid
            ax.plot([g.params for g in incomplete], [g.sensitivity for g in incomplete], "o", ms=11,
                    mfc="none", mec=pcol[lk[0]], mew=1.0, ls="none")
        bl = [(g.params, g.best_loss) for g in gs if g.best_loss is not None]
        if bl:
            bx.plot([p for p, _ in bl], [b for _, b in bl], label=label, **style)
    for a in (ax, bx):
        a.set_xscale("log")
        if len(params) <= 10:
            a.xaxis.set_major_locator(FixedLocator(params))
            a.xaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_params(v)))
            a.xaxis.set_minor_locator(NullLocator())
            lo, hi = min(params), max(params)
            pad = (hi / lo) ** 0.12 if hi > lo else 2.0
            a.set_xlim(lo / pad, hi * pad)
        a.set_xlabel("parameters (as reported by the study)")
    ax.set_ylim(bottom=0)
    ax.set_ylabel("LR sensitivity (nats/token)")
    window = sensitivity_window(study)
    ax.set_title("LR sensitivity vs model size\n" + r"mean over LRs of $\min(\ell,\ell_0)-\ell^*$" +
                 (f", min over {window}-LR windows" if window else ""), fontsize=9.5)
    bx.set_ylabel(r"best final validation loss $\ell^*$ (nats/token)")
    bx.set_title("Best loss over the LR sweep vs model size\n(read LR sensitivity together with it)",
                 fontsize=9.5)
    handles, labels = ax.get_legend_handles_labels()
    if any(len(g.lrs) < len(all_lrs) for g in usable):
        from matplotlib.lines import Line2D
        handles.append(Line2D([], [], marker="o", ms=10, mfc="none", mec="0.3", ls="none"))
        labels.append("incomplete LR grid")
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), bbox_to_anchor=(0.5, -0.02),
               title="policy set" + (" (setting)" if vary else ""), title_fontsize=8.5)
    src = ordered_unique(g.sens_source for g in usable)
    fig.suptitle(f"{constant_axes_text(groups, study)} - {len(all_lrs)}-point LR grid "
                 f"[{fmt_num(min(all_lrs))}, {fmt_num(max(all_lrs))}]; values from {' + '.join(src)}",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.1 + 0.03 * ((len(labels) - 1) // 4), 1, 1))
    save(fig, out_dir, "lr_sensitivity.png", written)


# ----------------------------------------------------------------------------------------------------------
# Plot 3: training curves


def default_selection(groups):
    """Per panel (policy set + varying axes): the largest size at its highest non-diverged LR and at its
    highest LR overall. Returns [(run, role)] with role in {'stable', 'top'}."""
    vary = varying_axes(groups)
    chosen = []
    for pk in ordered_unique(panel_key(g, vary) for g in groups):
        gs = [g for g in groups if panel_key(g, vary) == pk]
        biggest = max(gs, key=lambda g: (g.params if g.params is not None else -1, g.size))
        # several groups can share the largest size only if axes differ, which vary already splits
        runs = biggest.runs
        ok = [r for r in runs if not r.diverged]
        if ok:
            chosen.append((max(ok, key=lambda r: r.lr), "stable"))
        top = max(runs, key=lambda r: r.lr)
        if not ok or top is not chosen[-1][0]:
            chosen.append((top, "top"))
    return chosen


def series(recs, field):
    """(steps, values) of the records that carry `field` (records without it are skipped, so sparse
    signals such as diagnostics recorded every k steps still draw as lines); non-finite values are NaN."""
    xs, ys = [], []
    for r in recs:
        if field not in r:
            continue
        y = finite(r.get(field))
        xs.append(r["step"])
        ys.append(y if y is not None else float("nan"))
    return xs, ys


def logit_history(run):
    """[{'step', 'max_attn_logit'}] from the run line's diagnostics.max_attn_logit_history ([[step, v], ...])."""
    diag = run.rec.get("diagnostics")
    hist = diag.get("max_attn_logit_history") if isinstance(diag, dict) else None
    out = []
    for item in hist if isinstance(hist, list) else []:
        if isinstance(item, (list, tuple)) and len(item) == 2 and finite(item[0]) is not None:
            out.append({"step": item[0], "max_attn_logit": item[1]})
    return sorted(out, key=lambda r: r["step"])


def plot_training_curves(plt, groups, runs, select, study_dir, study, out_dir, written):
    from matplotlib.lines import Line2D
    import numpy as np
    if select:
        by_key = {r.key: r for r in runs}
        unknown = [k for k in select if k not in by_key]
        if unknown:
            note(f"--select: unknown run key(s) {', '.join(unknown)}")
        chosen = [(by_key[k], "selected") for k in ordered_unique(select) if k in by_key]
    else:
        chosen = default_selection(groups)
    loaded, missing = [], []
    for run, role in chosen:
        m = load_metrics(study_dir, run, missing)
        if m is not None and not (m["steps"] or m["evals"]):
            note(f"metrics log of run {run.key!r} has no step or eval lines")
            m = None
        # attention-logit series: the step lines, else the run line's diagnostics.max_attn_logit_history
        if m is not None and any(finite(r.get("max_attn_logit")) is not None for r in m["steps"]):
            logit = m["steps"]
        else:
            logit = logit_history(run)
        if m is None and not logit:
            continue
        m = m or {"steps": [], "evals": [], "header": {}, "end": {}}
        m["logit"] = logit
        loaded.append((run, role, m))
    if missing:
        note(f"{len(missing)} metrics log(s) not found: {', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}")
    if not loaded:
        note("training_curves.png skipped: no metrics logs for the selected runs")
        return
    vary = varying_axes(groups)
    gkey = {r.key: g for g in groups for r in g.runs}
    cols = ordered_unique(panel_key(gkey[r.key], vary) for r, _, _ in loaded)
    if len(cols) > 8:
        note(f"training_curves.png: {len(cols)} panels requested, showing the first 8")
        cols = cols[:8]
    has_logit = any(finite(s.get("max_attn_logit")) is not None for _, _, m in loaded for s in m["logit"])
    has_logz = any(finite(s.get("log_z_mean")) is not None for _, _, m in loaded for s in m["steps"])
    has_loss = any(m["steps"] or m["evals"] for _, _, m in loaded)
    if not has_loss:
        note("training_curves.png: no metrics logs, only the attention-logit history of the run lines")
    rows = (["loss"] if has_loss else []) + (["logit"] if has_logit else []) + (["logz"] if has_logz else [])
    heights = {"loss": 3.2, "logit": 2.4, "logz": 2.0}
    fig, axs = plt.subplots(len(rows), len(cols), figsize=(1.0 + 4.3 * len(cols),
                                                           0.9 + sum(heights[r] for r in rows)),
                            sharex="col", sharey="row", squeeze=False,
                            gridspec_kw={"height_ratios": [heights[r] for r in rows]})
    # role colours deliberately differ from the policy-set colours of lr_sensitivity.png
    role_color = {"stable": "#222222", "top": "#e8702a"}
    palette = ["#222222", "#e8702a", "#7b3294", "#1b9e77", "#c51b7d", "#8c564b"]

    # loss row y-range: from the lowest logged loss to a bit above l0 (diverging spikes are cut off)
    lows, l0s = [], []
    for run, _, m in loaded:
        _, ys = series(m["steps"], "loss")
        lows += [y for y in ys if not math.isnan(y)]
        lows += [y for y in series(m["evals"], "val_ce")[1] + series(m["evals"], "val_loss")[1]
                 if not math.isnan(y)]
        if run.l0 is not None:
            l0s.append(run.l0)
    top = max(l0s) if l0s else (max(lows) if lows else 1.0)
    bot = min(lows) if lows else top - 1.0
    span = max(top - bot, 0.2)
    loss_ylim = (bot - 0.06 * span, top + 0.15 * span)

    logit_max = 0.0
    for ci, ck in enumerate(cols):
        col_runs = [(r, role, m) for r, role, m in loaded if panel_key(gkey[r.key], vary) == ck]
        handles = []
        for k, (run, role, m) in enumerate(col_runs):
            c = role_color.get(role) if not select else palette[k % len(palette)]
            if c is None:
                c = palette[k % len(palette)]
            g = gkey[run.key]
            status = (f"diverged at step {run.diverged_step:g}" if run.diverged and run.diverged_step
                      else "diverged" if run.diverged else f"final val {run.final:.3f}")
            handles.append(Line2D([], [], color=c, label=f"{fmt_params(g.params)} params ({g.size}), "
                                                         f"LR {fmt_num(run.lr)}: {status}"))
            for ri, row in enumerate(rows):
                ax = axs[ri][ci]
                if row == "loss":
                    xs, ys = series(m["steps"], "loss")
                    ax.plot(xs, np.clip(ys, None, loss_ylim[1] * 10), color=c, lw=1.4)
                    ev = m["evals"]
                    field = "val_ce" if any(finite(e.get("val_ce")) is not None for e in ev) else "val_loss"
                    ex, ey = series(ev, field)
                    ax.plot(ex, ey, "o", color=c, mfc="white", mew=1.3, ms=5, zorder=4)
                elif row == "logit":
                    xs, ys = series(m["logit"], "max_attn_logit")
                    ys = [y if y > 0 else float("nan") for y in ys]
                    fin = [y for y in ys if not math.isnan(y)]
                    logit_max = max([logit_max] + fin)
                    ax.plot(xs, ys, color=c, lw=1.4)
                else:
                    xs, ys = series(m["steps"], "log_z_mean")
                    ax.plot(xs, ys, color=c, lw=1.4)
                if run.diverged and run.diverged_step:
                    ax.axvline(run.diverged_step, color=c, ls=":", lw=1.0)
                    if ri == 0:
                        ax.plot([run.diverged_step], [1.0], "x", color=c, ms=7, mew=2,
                                transform=ax.get_xaxis_transform(), clip_on=False, zorder=5)
        axs[0][ci].set_title(panel_title(ck, vary), pad=10)
        if has_loss:
            axs[0][ci].set_ylim(*loss_ylim)
            if l0s:
                axs[0][ci].axhline(sum(l0s) / len(l0s), ls="--", lw=0.9, color="0.45", zorder=1)
            handles += [Line2D([], [], color="0.3", lw=1.4, label="training loss"),
                        Line2D([], [], color="0.3", marker="o", mfc="white", ls="none", label="validation CE"),
                        Line2D([], [], color="0.45", ls="--", lw=0.9, label=r"$\ell_0$ (loss at init)")]
        if any(r.diverged and r.diverged_step for r, _, _ in col_runs):
            handles.append(Line2D([], [], color="0.3", ls=":", marker="x", label="divergence step"))
        axs[-1][ci].legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.28), fontsize=7.5)
        axs[-1][ci].set_xlabel("training step")
    for ri, row in enumerate(rows):
        ax0 = axs[ri][0]
        if row == "loss":
            ax0.set_ylabel("loss (nats/token)")
        elif row == "logit":
            ax0.set_yscale("log")
            ax0.set_ylabel("max attention logit")
            if logit_max > 0.1 * PAPER_LOGIT_THRESHOLD:
                for ci in range(len(cols)):
                    axs[ri][ci].axhline(PAPER_LOGIT_THRESHOLD, color="0.5", lw=0.8, ls="-.")
                axs[ri][-1].text(1.0, PAPER_LOGIT_THRESHOLD, "1e4: paper's divergence threshold",
                                 transform=axs[ri][-1].get_yaxis_transform(), ha="right", va="bottom",
                                 fontsize=7, color="0.4")
        else:
            ax0.set_ylabel("mean log Z")
            for ci in range(len(cols)):
                axs[ri][ci].axhline(0.0, color="0.6", lw=0.8)
    what = ("selected runs" if select else
            "largest size per policy set, at its highest non-diverged LR and at its highest LR")
    fig.suptitle(f"Training curves - {what}\n{constant_axes_text(groups, study)}", fontsize=10)
    fig.tight_layout()
    save(fig, out_dir, "training_curves.png", written)


# ----------------------------------------------------------------------------------------------------------


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
        print(f"{PROG}: error: {e}", file=sys.stderr)
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
        print(f"{PROG}: error: cannot create output directory {out_dir}: {e.strerror or e}", file=sys.stderr)
        return 1
    try:
        plt = setup_matplotlib()
    except ImportError as e:
        print(f"{PROG}: error: {e} (apt-get install -y python3-matplotlib python3-numpy)", file=sys.stderr)
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
