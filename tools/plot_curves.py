"""training_curves.png: training loss (+ validation CE markers) vs step for selected runs, plus max attention
logit vs step (paper Fig 2) and mean log Z vs step (paper Fig 4) when logged."""
import math

from ballast_results import finite, series
from plot_common import (PAPER_LOGIT_THRESHOLD, constant_axes_text, fmt_num, fmt_params, note, ordered_unique,
                         panel_key, panel_title, save)
from study_groups import load_run_metrics, varying_axes


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


def logit_history(run):
    """[{'step', 'max_attn_logit'}] from the run line's diagnostics.max_attn_logit_history."""
    return [{"step": s, "max_attn_logit": v} for s, v in run.logit_history()]


def few(xs):
    """Marker style for a series too short to show as a line (a run that diverged after one logged step)."""
    return {"marker": "o", "ms": 4} if len(xs) < 3 else {}


def plot_training_curves(plt, groups, runs, select, study_dir, study, out_dir, written, chosen=None,
                         name="training_curves.png", what=None):
    """Draw the curves of `select` (run keys), else of `chosen` ([(run, role)], role 'stable'/'top' picks
    the colour, anything else the palette), else of default_selection(groups); `what` names the choice in
    the title."""
    from matplotlib.lines import Line2D
    import numpy as np
    if chosen is None and select:
        by_key = {r.key: r for r in runs}
        unknown = [k for k in select if k not in by_key]
        if unknown:
            note(f"--select: unknown run key(s) {', '.join(unknown)}")
        chosen = [(by_key[k], "selected") for k in ordered_unique(select) if k in by_key]
    elif chosen is None:
        chosen = default_selection(groups)
    loaded, missing = [], []
    for run, role in chosen:
        m = load_run_metrics(study_dir, run, missing)
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
        note(f"{name} skipped: no metrics logs for the selected runs")
        return
    vary = varying_axes(groups)
    gkey = {r.key: g for g in groups for r in g.runs}
    cols = ordered_unique(panel_key(gkey[r.key], vary) for r, _, _ in loaded)
    if len(cols) > 8:
        note(f"{name}: {len(cols)} panels requested, showing the first 8")
        cols = cols[:8]
    has_logit = any(finite(s.get("max_attn_logit")) is not None for _, _, m in loaded for s in m["logit"])
    has_logz = any(finite(s.get("log_z_mean")) is not None for _, _, m in loaded for s in m["steps"])
    has_loss = any(m["steps"] or m["evals"] for _, _, m in loaded)
    if not has_loss:
        note(f"{name}: no metrics logs, only the attention-logit history of the run lines")
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
                    ax.plot(xs, np.clip(ys, None, loss_ylim[1] * 10), color=c, lw=1.4, **few(xs))
                    ev = m["evals"]
                    field = "val_ce" if any(finite(e.get("val_ce")) is not None for e in ev) else "val_loss"
                    ex, ey = series(ev, field)
                    ax.plot(ex, ey, "o", color=c, mfc="white", mew=1.3, ms=5, zorder=4)
                elif row == "logit":
                    xs, ys = series(m["logit"], "max_attn_logit")
                    ys = [y if y > 0 else float("nan") for y in ys]
                    fin = [y for y in ys if not math.isnan(y)]
                    logit_max = max([logit_max] + fin)
                    ax.plot(xs, ys, color=c, lw=1.4, **few(xs))
                else:
                    xs, ys = series(m["steps"], "log_z_mean")
                    ax.plot(xs, ys, color=c, lw=1.4, **few(xs))
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
    what = what or ("selected runs" if select else
                    "largest size per policy set, at its highest non-diverged LR and at its highest LR")
    fig.suptitle(f"Training curves - {what}\n{constant_axes_text(groups, study)}", fontsize=10)
    fig.tight_layout()
    save(fig, out_dir, name, written)
