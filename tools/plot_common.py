"""Shared pieces of the study plots (tools/plot_study.py, tools/report.py, tools/plot_run.py): messages,
number formatting, the matplotlib style, LR axes, panel layout and colours. matplotlib is imported only
inside the functions that draw, so importing this module needs the standard library alone."""
import math
import os
import sys

from ballast_results import GROUP_AXES as AXES

AXIS_LABEL = {"optimizer": "opt", "warmup": "warmup", "weight_decay": "wd", "eps": "eps", "steps": "steps"}
PAPER_LOGIT_THRESHOLD = 1e4  # paper §3.3: every run whose max attention logit exceeded 1e4 diverged
PROG = ["plot_study"]  # the program name in messages; a tool sets PROG[0] = "<name>" before use


def warn(msg):
    print(f"{PROG[0]}: warning: {msg}", file=sys.stderr)


def note(msg):
    print(f"{PROG[0]}: note: {msg}", file=sys.stderr)


def sort_val(v):
    """Sort key mixing numbers (numerically), strings and None (last)."""
    if v is None:
        return (2, 0.0, "")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, float(v), "")
    return (1, 0.0, str(v))


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


def panel_grid(groups, vary, max_cols=4):
    """[[panel key or None]] rows of panels. No varying extra axis: one row with one panel per policy set
    (wrapped at max_cols). Otherwise one row per policy set and one column per setting of the varying axes."""
    keys = ordered_unique(panel_key(g, vary) for g in groups)
    if not vary:
        n = len(keys)
        ncol = n if n <= max_cols else math.ceil(n / math.ceil(n / max_cols))
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
