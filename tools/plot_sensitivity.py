"""lr_sensitivity.png: LR sensitivity vs parameter count, one line per policy set (paper Fig 1 bottom), next to
the best final loss vs parameter count (paper Fig E.3)."""
from plot_common import (AXIS_LABEL, constant_axes_text, fmt_num, fmt_params, fmt_value, note, ordered_unique,
                         panel_key, save)
from study_groups import sensitivity_window, varying_axes


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
