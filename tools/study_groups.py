"""Study runs grouped for the LR-sensitivity metric (paper §2.2), read through tools/ballast_results.py.

load_results / load_summary / load_run_metrics turn the loader's exceptions into plot_study's messages
(fatal problems raise StudyError; the rest are warnings and notes on stderr). A Group is the runs sharing
(policy_set, size, optimizer, warmup, weight_decay, eps, steps); compute_sensitivity is the paper's metric;
seed_spread gives the spread of the metric over seeds when runs carry a `seed` field. Standard library only.
"""
import math
import os
import statistics

import ballast_results as br
from ballast_results import finite
from plot_common import AXES, AXIS_LABEL, fmt_value, note, sort_val, warn


class StudyError(Exception):
    """Fatal input problem: reported as one line on stderr, exit status 2."""


def load_results(study_dir):
    """(study header dict, [ballast_results.Run]); raises StudyError for fatal problems."""
    try:
        st = br.load_study(study_dir)
    except br.ResultsError as e:
        raise StudyError(str(e)) from None
    if st.torn:
        warn(f"{st.path}:{st.torn}: skipping torn last line of results.jsonl (a writer stopped mid-line)")
    for line, why in st.skipped:
        warn(f"{st.path}:{line}: {why}; skipped")
    for key in st.duplicates:
        warn(f"{st.path}: duplicate run key {key!r}; the later line wins")
    if st.other:
        note(f"{st.path}: ignored {st.other} line(s) of unknown type")
    return st.header, st.runs


def load_summary(study_dir):
    """{group_key: summary group dict} from summary.json, or {} when absent/unreadable. Groups that carry a
    `seed` are keyed by group key + (seed,)."""
    try:
        groups = br.load_summary(study_dir)
    except br.ResultsError as e:
        warn(f"{e}; LR sensitivity computed from results.jsonl")
        return {}
    if groups is None:
        note("no summary.json; LR sensitivity computed from results.jsonl")
        return {}
    out = {}
    for g in groups:
        key = br.summary_key(g)
        out[key + ((br.norm(g["seed"]),) if g.get("seed") is not None else ())] = g
    return out


def load_run_metrics(study_dir, run, missing):
    """{'steps', 'evals', 'diags', 'warnings', 'header', 'end'} of a run's metrics log, or None when the
    study wrote none or it cannot be read (a missing log's path is appended to `missing`)."""
    path = run.metrics_path(study_dir)
    if path is None:
        return None
    if not os.path.isfile(path):
        missing.append(path)
        return None
    try:
        m = br.Metrics(path)
    except br.ResultsError as e:
        note(f"metrics log of {run.key} unusable: {e}")
        return None
    if m.torn:
        note(f"{path}:{m.torn}: skipping torn last line of the metrics log of {run.key}")
    return {"steps": m.steps, "evals": m.evals, "diags": m.diags, "warnings": m.warnings,
            "header": m.header, "end": m.end}


class Group:
    """Runs sharing (policy_set, size, optimizer, warmup, weight_decay, eps, steps); runs of several seeds
    share a group (averaged per LR for the headline value; `by_seed` holds each seed's own values)."""

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
        self.summary = None  # the summary.json group applied, if any
        self.by_seed = sensitivity_by_seed(self.runs, window)

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
        self.summary = g
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
        for seed, comp in g.by_seed.items():  # per-seed summary groups, when the study writes them
            sg = summary.get(g.key + (seed,))
            if sg is not None and finite(sg.get("lr_sensitivity")) is not None:
                comp["sensitivity"] = finite(sg.get("lr_sensitivity"))
                comp["best_loss"] = finite(sg.get("best_loss"))
    missing = [g.label() for g in groups if summary and g.key not in summary and
               not any(g.key + (seed,) in summary for seed in g.by_seed)]
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


def varying_axes(groups):
    return [a for a in AXES if len({g.axes[a] for g in groups}) > 1]


def sensitivity_by_seed(runs, window=0):
    """{seed: compute_sensitivity of that seed's runs} for runs carrying a `seed`; {} when fewer than two
    distinct seeds are present (then there is no spread to show)."""
    by = {}
    for r in runs:
        if r.seed is not None:
            by.setdefault(r.seed, []).append(r)
    if len(by) < 2:
        return {}
    return {s: compute_sensitivity(rs, window) for s, rs in sorted(by.items(), key=lambda kv: sort_val(kv[0]))}


def spread(values):
    """{'n', 'mean', 'std' (sample, n-1), 'min', 'max'} of the finite values, None when there are none."""
    v = [x for x in values if x is not None and math.isfinite(x)]
    if not v:
        return None
    return {"n": len(v), "mean": sum(v) / len(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0,
            "min": min(v), "max": max(v)}
