"""loss_vs_lr.png: final validation loss vs peak LR, one panel per policy set (and setting of the axes that
vary), one curve per model size (paper Fig 1 top); diverged runs are 'x' markers on the panel's top edge."""
from plot_common import (constant_axes_text, fmt_params, lr_axis, note, panel_grid, panel_key, panel_title,
                         save, size_colors)
from study_groups import varying_axes


def plot_loss_vs_lr(plt, groups, all_lrs, study, out_dir, written, max_cols=4):
    """max_cols: panels per row when only the policy set varies (the report uses 2 to stay readable)."""
    from matplotlib.lines import Line2D
    from matplotlib.transforms import blended_transform_factory
    finals = [r.final for g in groups for r in g.runs if not r.diverged]
    l0s = [g.l0 for g in groups if g.l0 is not None]
    if not finals and not l0s:
        note("loss_vs_lr.png skipped: no run has a finite final validation loss or l0")
        return
    vary = varying_axes(groups)
    grid = panel_grid(groups, vary, max_cols)
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
