#!/usr/bin/python3
"""One self-contained HTML report page for a finished study directory (docs/report.md).

Usage:
  tools/report.py STUDY_DIR [--out FILE]

Reads STUDY_DIR/results.jsonl (required), summary.json and the per-run metrics logs (optional) through
tools/ballast_results.py and writes STUDY_DIR/report.html (or FILE): the study's settings; the table of LR
sensitivity and best loss per recipe and size (with the spread over seeds when the runs carry several
`seed` values); loss_vs_lr and lr_sensitivity plots; training, max-logit and log-Z curves of the most and
least LR-robust recipe at the largest size; the early warnings that fired; the diverged runs with step and
reason. Images are inline PNG data URIs, the style sheet is inline: the page needs no network and no other
file. Table cells carry data-recipe, data-size, data-field and data-value (the exact number, as in
summary.json when it has the group) for tests and scripts.

Prints the report's path on stdout (last line); notes go to stderr. Exit status 2 with one line when the
directory or its results.jsonl is missing, malformed or holds no runs; 1 when matplotlib is missing or the
file cannot be written.
Dependencies: python3 standard library, python3-matplotlib (Agg backend), python3-numpy.
"""
import argparse
import base64
import html
import json
import math
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ballast_results import finite  # noqa: E402
from plot_common import AXIS_LABEL, PROG, fmt_num, fmt_params, fmt_value, note, setup_matplotlib  # noqa: E402
from plot_curves import plot_training_curves  # noqa: E402
from plot_loss_lr import plot_loss_vs_lr  # noqa: E402
from plot_sensitivity import plot_lr_sensitivity  # noqa: E402
from study_groups import (StudyError, build_groups, load_results, load_summary, sensitivity_window,  # noqa: E402
                          spread, varying_axes)

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:0;background:#fff;
     color:#1d1d1f;line-height:1.45}
main{max-width:1240px;margin:0 auto;padding:24px 28px 60px}
h1{font-size:26px;margin:0 0 4px} h2{font-size:20px;margin:34px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:16px;margin:18px 0 6px}
p.lead{color:#555;margin:0 0 12px} .muted{color:#666} .small{font-size:13px}
table{border-collapse:collapse;font-size:14px;margin:6px 0 12px}
th,td{border:1px solid #d4d4d8;padding:4px 9px;text-align:right;vertical-align:top}
th{background:#f2f2f5;font-weight:600} td.t,th.t{text-align:left}
tr.best td.sens{background:#dff3e3;font-weight:600} tr.worst td.sens{background:#fbe3e1}
td.bad{color:#b3261e;font-weight:600}
img{max-width:100%;height:auto;display:block;margin:8px 0 4px;border:1px solid #eee}
code{background:#f4f4f6;padding:1px 4px;border-radius:3px;font-size:13px}
details{margin:4px 0} summary{cursor:pointer;font-weight:600}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:10px 0}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:150px}
.card b{display:block;font-size:22px}
"""


def esc(x):
    return html.escape(str(x), quote=True)


def num_attr(v):
    """The exact number as text (repr of the double: parses back to the same bits), '' for None."""
    return "" if v is None else repr(float(v))


def fmt_loss(v, digits=4):
    return "—" if v is None else f"{v:.{digits}f}"


def cell(text, field, group=None, value=None, cls="", run=None):
    """A <td> with machine-readable attributes: data-field, data-value, and the group's or run's identity."""
    attrs = [f'data-field="{esc(field)}"']
    if value is not None:
        attrs.append(f'data-value="{esc(num_attr(value))}"')
    who = group if group is not None else run
    if who is not None:
        attrs += [f'data-recipe="{esc(who.policy_set)}"', f'data-size="{esc(who.size)}"']
    if run is not None:
        attrs.append(f'data-key="{esc(run.key)}"')
    if cls:
        attrs.append(f'class="{cls}"')
    return f"<td {' '.join(attrs)}>{esc(text)}</td>"


def image(path, alt):
    with open(path, "rb") as f:
        data = base64.b64encode(f.read()).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


# ----------------------------------------------------------------------------------------------------------
# Sections


def settings_section(header, runs, groups, all_lrs, study_dir):
    cfg = header.get("config") if isinstance(header.get("config"), dict) else {}
    recipes = sorted({g.policy_set for g in groups})
    sizes = []
    for g in groups:
        if g.size not in [s for s, _ in sizes]:
            sizes.append((g.size, g.params))
    sizes.sort(key=lambda sp: sp[1] if sp[1] is not None else math.inf)
    n_div = sum(1 for r in runs if r.diverged)
    n_warn = sum(1 for r in runs if r.warnings)
    seeds = sorted({r.seed for r in runs if r.seed is not None}, key=str)
    cards = [("runs", len(runs)), ("recipes", len(recipes)), ("sizes", len(sizes)), ("LRs", len(all_lrs)),
             ("diverged", n_div), ("runs with warnings", n_warn)]
    if seeds:
        cards.append(("seeds", len(seeds)))
    out = ['<h2 id="settings">Settings</h2>', '<div class="cards">']
    out += [f'<div class="card"><b data-field="count-{esc(k)}" data-value="{v}">{v}</b>{esc(k)}</div>'
            for k, v in cards]
    out.append("</div>")
    rows = [("recipes", ", ".join(recipes)),
            ("sizes", ", ".join(f"{s} ({fmt_params(p)} params)" for s, p in sizes)),
            ("peak LRs", ", ".join(fmt_num(x) for x in all_lrs))]
    window = sensitivity_window(header)
    rows.append(("LR sensitivity", "paper §2.2: mean over LRs of min(ℓ, ℓ0) − ℓ*" +
                 (f"; minimum over windows of {window} consecutive LRs" if window else "")))
    for a in ("optimizer", "warmup", "weight_decay", "eps", "steps"):
        vals = sorted({g.axes[a] for g in groups if g.axes[a] is not None}, key=str)
        if vals:
            rows.append((a, ", ".join(fmt_value(v) for v in vals)))
    if seeds:
        rows.append(("seeds", ", ".join(fmt_value(s) for s in seeds)))
    data = cfg.get("data") if isinstance(cfg.get("data"), dict) else {}
    if data:
        rows.append(("data", ", ".join(f"{k} {fmt_value(v)}" for k, v in data.items()
                                       if not isinstance(v, (dict, list)))))
    out.append('<table class="settings">')
    out += [f'<tr><th class="t">{esc(k)}</th><td class="t">{esc(v)}</td></tr>' for k, v in rows]
    out.append("</table>")
    for part in ("study", "model", "train", "optimizer"):
        sec = cfg.get(part)
        if isinstance(sec, dict) and sec:
            items = "".join(f'<tr><th class="t">{esc(k)}</th><td class="t"><code>{esc(json.dumps(v))}</code>'
                            f"</td></tr>" for k, v in sec.items())
            out.append(f"<details><summary>{esc(part)} configuration ({len(sec)} values)</summary>"
                       f"<table>{items}</table></details>")
    return out


def summary_section(groups, all_lrs):
    vary = varying_axes(groups)
    seeded = any(g.by_seed for g in groups)
    head = ["recipe"] + [AXIS_LABEL[a] for a in vary] + ["size", "params", "runs", "diverged", "ℓ0",
                                                         "best loss ℓ*", "best LR", "LR sensitivity"]
    if seeded:
        head += ["seeds", "LR sens. mean ± sd", "LR sens. min – max", "best loss mean ± sd"]
    out = ['<h2 id="summary">LR sensitivity and best loss</h2>',
           '<p class="lead">One row per recipe, size and setting. Lower LR sensitivity = the loss depends '
           "less on the learning rate. Green: the most LR-robust recipe at that size; red: the least. Values "
           "are from summary.json where it has the group, else recomputed from results.jsonl.</p>",
           '<table id="summary-table"><tr>' + "".join(
               f'<th class="{"t" if i == 0 else ""}">{esc(h)}</th>' for i, h in enumerate(head)) + "</tr>"]
    by_size = {}
    for g in groups:
        if g.sensitivity is not None:
            by_size.setdefault(g.size, []).append(g)
    best = {s: min(gs, key=lambda g: g.sensitivity) for s, gs in by_size.items() if len(gs) > 1}
    worst = {s: max(gs, key=lambda g: g.sensitivity) for s, gs in by_size.items() if len(gs) > 1}
    for g in groups:
        cls = "best" if best.get(g.size) is g else "worst" if worst.get(g.size) is g else ""
        src = g.summary or {}
        l0 = finite(src.get("l0")) if "l0" in src else g.l0
        best_lr = finite(src.get("best_lr")) if "best_lr" in src else best_lr_of(g)
        n_div = sum(1 for r in g.runs if r.diverged)
        axes_attr = " ".join(f'data-{a.replace("_", "-")}="{esc(num_attr(v) if isinstance(v, float) else v)}"'
                             for a, v in g.axes.items() if v is not None)
        row = [f'<tr class="{cls}" data-recipe="{esc(g.policy_set)}" data-size="{esc(g.size)}" {axes_attr} '
               f'data-source="{esc(g.sens_source)}">',
               f'<td class="t" data-field="recipe">{esc(g.policy_set)}</td>']
        row += [f'<td data-field="{a}">{esc(fmt_value(g.axes[a]))}</td>' for a in vary]
        row += [f'<td class="t" data-field="size">{esc(g.size)}</td>',
                cell(fmt_params(g.params), "params", g, g.params),
                cell(f"{len(g.runs)}" + (f" ({len(g.lrs)}/{len(all_lrs)} LRs)" if len(g.lrs) < len(all_lrs) else ""),
                     "runs", g, len(g.runs)),
                cell(f"{n_div}", "diverged", g, n_div, "bad" if n_div else ""),
                cell(fmt_loss(l0), "l0", g, l0),
                cell(fmt_loss(g.best_loss), "best_loss", g, g.best_loss),
                cell(fmt_num(best_lr) if best_lr else "—", "best_lr", g, best_lr),
                cell(fmt_loss(g.sensitivity), "lr_sensitivity", g, g.sensitivity, "sens")]
        if seeded:
            ss = spread(c["sensitivity"] for c in g.by_seed.values())
            bs = spread(c["best_loss"] for c in g.by_seed.values())
            row.append(cell(str(len(g.by_seed)), "seeds", g, len(g.by_seed)))
            if ss:
                row.append(cell(f"{ss['mean']:.4f} ± {ss['std']:.4f}", "lr_sensitivity_seed_mean", g, ss["mean"]))
                row.append(cell(f"{ss['min']:.4f} – {ss['max']:.4f}", "lr_sensitivity_seed_min", g, ss["min"]))
            else:
                row += [cell("—", "lr_sensitivity_seed_mean", g), cell("—", "lr_sensitivity_seed_min", g)]
            row.append(cell(f"{bs['mean']:.4f} ± {bs['std']:.4f}" if bs else "—", "best_loss_seed_mean", g,
                            bs["mean"] if bs else None))
        out.append("".join(row) + "</tr>")
    out.append("</table>")
    if seeded:
        out.append('<p class="muted small">With several seeds, "LR sensitivity" and "best loss" are computed '
                   "on the per-LR mean over seeds; the seed columns give each seed's own value's mean, sample "
                   "standard deviation and range.</p>")
    return out


def best_lr_of(g):
    """LR of the run with the lowest capped loss (smallest LR on ties), None if every run diverged."""
    ok = [r for r in g.runs if not r.diverged and r.final is not None and g.l0 is not None and r.final < g.l0]
    return min(ok, key=lambda r: (r.final, r.lr)).lr if ok else None


def stability_choice(groups):
    """[(run, role)], description: at the largest size with >= 1 group of known LR sensitivity, the most
    (lowest LR sensitivity) and the least LR-robust group; for each its highest non-diverged LR ('stable')
    and its highest LR ('top')."""
    usable = [g for g in groups if g.sensitivity is not None]
    if not usable:
        return [], ""
    # The largest size by its label: recipes of one size can differ slightly in parameter count (qk-norm
    # scales), and all of them belong in the comparison.
    top_size = max(usable, key=lambda g: (g.params or 0)).size
    at = [g for g in usable if g.size == top_size]
    most, least = min(at, key=lambda g: g.sensitivity), max(at, key=lambda g: g.sensitivity)
    chosen = []
    for g in ([most] if most is least else [most, least]):
        ok = [r for r in g.runs if not r.diverged]
        if ok:
            chosen.append((max(ok, key=lambda r: r.lr), "stable"))
        top = max(g.runs, key=lambda r: r.lr)
        if not ok or top is not chosen[-1][0]:
            chosen.append((top, "top"))
    if most is least:
        what = f"{most.label()} (the only recipe with an LR sensitivity at size {most.size})"
    else:
        what = (f"most LR-robust {most.label()} (LR sens. {most.sensitivity:.3f}) vs least {least.label()} "
                f"({least.sensitivity:.3f}), at its highest non-diverged LR and its highest LR")
    return chosen, what


def warnings_section(runs):
    rows = []
    for r in runs:
        for w in r.warnings:
            rows.append((r, w))
    out = ['<h2 id="warnings">Early warnings that fired</h2>']
    if not rows:
        out.append('<p class="lead" id="no-warnings">No early warning fired in any run (rules and thresholds: '
                   "docs/diagnostics.md).</p>")
        return out
    rows.sort(key=lambda rw: (rw[0].policy_set, rw[0].params or 0, rw[0].lr, finite(rw[1].get("step")) or 0))
    out.append(f'<p class="lead">{len(rows)} warning(s) in {len({r.key for r, _ in rows})} run(s); each rule '
               "reports its first firing per run (docs/diagnostics.md). \"Then\" says how the run ended.</p>")
    out.append('<table id="warnings-table"><tr><th class="t">recipe</th><th class="t">size</th><th>LR</th>'
               '<th class="t">rule</th><th>step</th><th>value</th><th>threshold</th><th class="t">where</th>'
               '<th class="t">then</th></tr>')
    for r, w in rows:
        step, value, thr = finite(w.get("step")), finite(w.get("value")), finite(w.get("threshold"))
        then = (f"diverged at step {r.diverged_step:g}" if r.diverged and r.diverged_step else
                "diverged" if r.diverged else f"finished, val loss {fmt_loss(r.final, 3)}")
        out.append(f'<tr data-key="{esc(r.key)}"><td class="t">{esc(r.policy_set)}</td><td class="t">'
                   f"{esc(r.size)}</td>{cell(fmt_num(r.lr), 'lr', run=r, value=r.lr)}"
                   f'<td class="t" data-field="rule">{esc(w.get("rule", "?"))}</td>'
                   f"{cell('—' if step is None else f'{step:g}', 'step', run=r, value=step)}"
                   f"{cell('—' if value is None else f'{value:.4g}', 'value', run=r, value=value)}"
                   f"{cell('—' if thr is None else f'{thr:.4g}', 'threshold', run=r, value=thr)}"
                   f'<td class="t">{esc(w.get("where", ""))}</td>'
                   f'<td class="t{" bad" if r.diverged else ""}">{esc(then)}</td></tr>')
    out.append("</table>")
    return out


def diverged_section(runs):
    div = sorted((r for r in runs if r.diverged), key=lambda r: (r.policy_set, r.params or 0, r.lr))
    out = ['<h2 id="diverged">Diverged runs</h2>']
    if not div:
        out.append('<p class="lead" id="no-diverged">No run diverged.</p>')
        return out
    out.append(f'<p class="lead">{len(div)} of {len(runs)} runs diverged; each counts as ℓ0 in the LR '
               "sensitivity.</p>")
    out.append('<table id="diverged-table"><tr><th class="t">recipe</th><th class="t">size</th><th>LR</th>'
               '<th>step</th><th class="t">reason</th><th>max attention logit</th><th class="t">run key</th></tr>')
    for r in div:
        ml = r.max_attn_logit
        step_cell = cell(f"{r.diverged_step:g}" if r.diverged_step else "—", "diverged_step", run=r,
                         value=r.diverged_step)
        out.append(f'<tr data-key="{esc(r.key)}"><td class="t">{esc(r.policy_set)}</td><td class="t">{esc(r.size)}'
                   f"</td>{cell(fmt_num(r.lr), 'lr', run=r, value=r.lr)}"
                   f"{step_cell}"
                   f'<td class="t" data-field="reason">{esc(r.reason or "non-finite final loss")}</td>'
                   f"{cell('—' if ml is None else f'{ml:.4g}', 'max_attn_logit', run=r, value=ml)}"
                   f'<td class="t"><code>{esc(r.key)}</code></td></tr>')
    out.append("</table>")
    return out


# ----------------------------------------------------------------------------------------------------------


def build_report(study_dir, out_path):
    """Write the report; returns its path. Raises StudyError (exit 2) or ImportError/OSError (exit 1)."""
    header, runs = load_results(study_dir)
    summary = load_summary(study_dir)
    groups, all_lrs = build_groups(runs, summary, sensitivity_window(header))
    plt = setup_matplotlib()
    name = header.get("name") or os.path.basename(os.path.normpath(study_dir))
    with tempfile.TemporaryDirectory(prefix="ballast_report_") as tmp:
        written = []
        plot_loss_vs_lr(plt, groups, all_lrs, header, tmp, written, max_cols=2)
        plot_lr_sensitivity(plt, groups, all_lrs, header, tmp, written)
        chosen, what = stability_choice(groups)
        if chosen:
            plot_training_curves(plt, groups, runs, None, study_dir, header, tmp, written, chosen=chosen,
                                 name="stability_curves.png",
                                 what="most vs least LR-robust recipe at the largest size")
        imgs = {os.path.basename(p): p for p in written}
        body = [f'<h1>Study report: {esc(name)}</h1>',
                f'<p class="lead">{len(runs)} runs from <code>{esc(os.path.basename(os.path.normpath(study_dir)))}'
                "/results.jsonl</code>. Sections: <a href=\"#settings\">settings</a> · <a href=\"#summary\">"
                "LR sensitivity</a> · <a href=\"#plots\">plots</a> · <a href=\"#stability\">most and least stable"
                "</a> · <a href=\"#warnings\">early warnings</a> · <a href=\"#diverged\">diverged runs</a></p>"]
        body += settings_section(header, runs, groups, all_lrs, study_dir)
        body += summary_section(groups, all_lrs)
        body.append('<h2 id="plots">Loss and LR sensitivity</h2>')
        for fname, title, text in (
                ("loss_vs_lr.png", "Final validation loss vs peak LR",
                 "One panel per recipe, one curve per size; × on the top edge = diverged (paper Fig 1 top)."),
                ("lr_sensitivity.png", "LR sensitivity and best loss vs model size",
                 "Left: LR sensitivity per recipe against parameters (paper Fig 1 bottom); right: the best loss, "
                 "to read it with.")):
            body.append(f"<h3>{esc(title)}</h3><p class=\"muted small\">{esc(text)}</p>")
            body.append(image(imgs[fname], title) if fname in imgs else
                        f'<p class="muted">{esc(fname)}: not drawn (see the notes of tools/report.py)</p>')
        body.append('<h2 id="stability">Most and least stable runs</h2>')
        if "stability_curves.png" in imgs:
            body.append(f'<p class="lead">{esc(what)}. Rows: training loss (circles: validation), max attention '
                        "logit (the paper's 1e4 line when reached), mean log Z.</p>")
            body.append(image(imgs["stability_curves.png"], "training and max-logit curves"))
        else:
            body.append('<p class="muted">No metrics logs or logit histories for these runs.</p>')
        body += warnings_section(runs)
        body += diverged_section(runs)
        body.append('<p class="muted small" style="margin-top:40px">Written by <code>tools/report.py</code> from '
                    "results.jsonl, summary.json and runs/*.jsonl; self-contained (no network). "
                    "See docs/report.md.</p>")
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>ballast study report: {esc(name)}</title><style>{CSS}</style></head>"
            "<body><main>\n" + "\n".join(body) + "\n</main></body></html>\n")
    tmp_out = out_path + ".tmp"
    with open(tmp_out, "w", encoding="utf-8") as f:
        f.write(page)
    os.replace(tmp_out, out_path)
    return out_path


def main(argv=None):
    PROG[0] = "report"
    ap = argparse.ArgumentParser(prog="report.py", description=__doc__.split("\n")[0])
    ap.add_argument("study_dir", metavar="STUDY_DIR", help="directory with results.jsonl (and summary.json, runs/)")
    ap.add_argument("--out", metavar="FILE", help="output file (default: STUDY_DIR/report.html)")
    args = ap.parse_args(argv)
    out = args.out or os.path.join(args.study_dir, "report.html")
    try:
        path = build_report(args.study_dir, out)
    except StudyError as e:
        print(f"report: error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:
        print(f"report: error: {e} (apt-get install -y python3-matplotlib python3-numpy)", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"report: error: cannot write {out}: {e.strerror or e}", file=sys.stderr)
        return 1
    note("report written")
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
