"""The one reader of ballast's result files for the Python tools (standard library only).

    import ballast_results as br
    study = br.load_study("runs/default")       # results.jsonl: study line + typed run lines
    summary = br.load_summary("runs/default")   # summary.json groups, or None when absent
    log = br.load_metrics(path)                 # one run's metrics log (train's metrics.jsonl or a
                                                # study's runs/<key>.jsonl)

JSON lines are read strictly: every line must be one JSON object, except that a torn last line (a writer
killed mid-line; ballast appends whole lines, so only the last one can be torn) is dropped and reported in
the result's `torn` field. Any other bad line raises ResultsError naming the file and line. Non-finite
numbers are written by ballast as null; `finite()` maps them (and NaN/Inf, strings, bools) to None.

Schemas: docs/training.md (metrics log), docs/diagnostics.md (diag and warning lines, the run lines'
`diagnostics` object), docs/study.md (results.jsonl, summary.json).
"""
import json
import math
import os

# Axes of a study's group key besides policy set and size (summary.json groups carry each of them).
GROUP_AXES = ("optimizer", "warmup", "weight_decay", "eps", "steps")


class ResultsError(Exception):
    """A result file is missing, unreadable or malformed; the message names the file (and line)."""


def finite(x):
    """float(x) if x is a finite number, else None (null, NaN, Inf, strings, bools)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def norm(v):
    """Hashable, float-noise-free form of a group-key value (numbers to 10 significant digits)."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, (int, float)):
        f = float(v)
        return float(f"{f:.10g}") if math.isfinite(f) else None
    return json.dumps(v, sort_keys=True)


class Lines:
    """The records of one JSON-lines file: `records` [(line number, dict)], `torn` the 1-based number of a
    dropped torn last line or None, `path`."""

    def __init__(self, path, records, torn):
        self.path, self.records, self.torn = path, records, torn

    def __iter__(self):
        return iter(self.records)

    def __len__(self):
        return len(self.records)


def read_jsonl(path):
    """Read a JSON-lines file strictly (see the module docstring). Blank lines are skipped."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ResultsError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ResultsError(f"{path}: not UTF-8 text (byte {e.start})") from None
    lines = text.split("\n")
    last = max((i for i, s in enumerate(lines) if s.strip()), default=-1)
    records, torn = [], None
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as e:
            if i == last:
                torn = i + 1
                continue
            raise ResultsError(f"{path}:{i + 1}: not a JSON line ({e.msg} at column {e.colno})") from None
        if not isinstance(rec, dict):
            raise ResultsError(f"{path}:{i + 1}: a JSON line must be an object, got {type(rec).__name__}")
        records.append((i + 1, rec))
    return Lines(path, records, torn)


class Run:
    """One finished run of a study: a 'run' line of results.jsonl with typed fields.

    Numbers are float or None (None = absent, null or non-finite); `diverged` is also true when the final
    loss is not finite (it then counts as l0, paper §2.2). `raw` is the line as read."""

    def __init__(self, rec, line=0):
        self.raw, self.line = rec, line
        self.key = str(rec.get("key", ""))
        self.policy_set = str(rec.get("policy_set", "?"))
        self.size = str(rec.get("size", "?"))
        self.params = finite(rec.get("params"))
        self.params_non_embedding = finite(rec.get("params_non_embedding"))
        self.lr = finite(rec.get("lr"))
        self.l0 = finite(rec.get("l0"))
        self.final = finite(rec.get("final_val_loss"))
        self.best_val_loss = finite(rec.get("best_val_loss"))
        self.diverged = bool(rec.get("diverged")) or self.final is None
        self.diverged_step = finite(rec.get("diverged_step")) or 0
        self.reason = str(rec.get("reason") or "")
        self.wall_seconds = finite(rec.get("wall_seconds"))
        self.axes = {a: norm(rec.get(a)) for a in GROUP_AXES}
        seed = rec.get("seed")
        self.seed = norm(seed) if seed is not None else None
        self.metrics = rec.get("metrics")  # relative path of the run's metrics log; "" = not written
        d = rec.get("diagnostics")
        self.diagnostics = d if isinstance(d, dict) else {}

    @property
    def group_key(self):
        """(policy_set, size, optimizer, warmup, weight_decay, eps, steps): seeds share a group."""
        return (self.policy_set, self.size) + tuple(self.axes[a] for a in GROUP_AXES)

    @property
    def warnings(self):
        """The early warnings that fired in this run: [dict(rule, step, value, threshold, where)]."""
        w = self.diagnostics.get("warnings")
        return [x for x in w if isinstance(x, dict)] if isinstance(w, list) else []

    @property
    def max_attn_logit(self):
        return finite(self.diagnostics.get("max_attn_logit"))

    def logit_history(self):
        """[(step, max attention logit or None)] from diagnostics.max_attn_logit_history, sorted by step."""
        hist = self.diagnostics.get("max_attn_logit_history")
        out = []
        for item in hist if isinstance(hist, list) else []:
            if isinstance(item, (list, tuple)) and len(item) == 2 and finite(item[0]) is not None:
                out.append((finite(item[0]), finite(item[1])))
        return sorted(out, key=lambda sv: sv[0])

    def metrics_path(self, study_dir):
        """Path of the run's metrics log, or None when the study wrote none (`metrics` is "")."""
        if self.metrics == "":
            return None
        rel = self.metrics or os.path.join("runs", f"{self.key}.jsonl")
        return rel if os.path.isabs(rel) else os.path.join(study_dir, rel)


class Study:
    """A study directory's results.jsonl: `header` (the study line, {} if none), `runs` [Run] (one per key,
    the later line wins), `duplicates` [key], `skipped` [(line, why)] for run lines without a positive LR,
    `other` (count of lines of other types), `torn` (line number of a dropped torn last line or None)."""

    def __init__(self, directory, header, runs, duplicates, skipped, other, torn, path):
        self.dir, self.header, self.runs = directory, header, runs
        self.duplicates, self.skipped, self.other, self.torn, self.path = duplicates, skipped, other, torn, path

    @property
    def name(self):
        return self.header.get("name")

    @property
    def config(self):
        c = self.header.get("config")
        return c if isinstance(c, dict) else {}

    @property
    def sensitivity_window(self):
        """config.study.sensitivity_window (ballast's shifted-window LR sensitivity), 0 when absent."""
        try:
            w = self.config["study"]["sensitivity_window"]
        except (KeyError, TypeError):
            return 0
        return int(w) if isinstance(w, (int, float)) and not isinstance(w, bool) and w > 0 else 0

    @property
    def seeds(self):
        return sorted({r.seed for r in self.runs if r.seed is not None}, key=str)


def load_study(directory):
    """Read DIRECTORY/results.jsonl. Raises ResultsError when the directory or file is missing or unreadable,
    a line other than the last is malformed, or there is no run line with a positive finite LR."""
    if not os.path.isdir(directory):
        raise ResultsError(f"study directory not found or not a directory: {directory}")
    path = os.path.join(directory, "results.jsonl")
    if not os.path.isfile(path):
        raise ResultsError(f"no results.jsonl in study directory {directory}")
    lines = read_jsonl(path)
    header, by_key, duplicates, skipped, other = {}, {}, [], [], 0
    for i, rec in lines:
        t = rec.get("type")
        if t == "study":
            header = rec
        elif t == "run":
            run = Run(rec, i)
            if run.lr is None or run.lr <= 0:
                skipped.append((i, f"run {run.key!r} has no positive finite lr"))
                continue
            key = run.key or f"#line{i}"
            if key in by_key:
                duplicates.append(key)
            by_key[key] = run
        else:
            other += 1
    if not by_key:
        raise ResultsError(f"{path} contains no run lines")
    return Study(directory, header, list(by_key.values()), duplicates, skipped, other, lines.torn, path)


def summary_key(g):
    """The group key of a summary.json group (same form as Run.group_key)."""
    return (str(g.get("policy_set", "?")), str(g.get("size", "?"))) + tuple(norm(g.get(a)) for a in GROUP_AXES)


def load_summary(directory):
    """The `groups` list of DIRECTORY/summary.json, or None when the file is absent. Raises ResultsError
    when it exists but is not JSON with a `groups` list of objects."""
    path = os.path.join(directory, "summary.json")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise ResultsError(f"cannot read {path}: {e}") from None
    groups = doc.get("groups") if isinstance(doc, dict) else None
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise ResultsError(f"{path}: expected an object with a 'groups' list of objects")
    return groups


class Metrics:
    """One run's metrics log. `header`, `end` (dict, {} when absent); `steps`, `evals`, `diags` (dict lists
    sorted by step, a step repeated after a resume keeps its later line); `warnings` (warning lines in file
    order); `torn` as in read_jsonl."""

    def __init__(self, path):
        lines = read_jsonl(path)
        self.path, self.torn = path, lines.torn
        self.header, self.end, self.warnings = {}, {}, []
        by = {"step": {}, "eval": {}, "diag": {}}
        for _, rec in lines:
            t = rec.get("type")
            if t in by and finite(rec.get("step")) is not None:
                by[t][rec["step"]] = rec
            elif t == "warning":
                self.warnings.append(rec)
            elif t in ("header", "end"):
                setattr(self, t, rec)
        self.steps, self.evals, self.diags = (sorted(by[t].values(), key=lambda r: r["step"])
                                              for t in ("step", "eval", "diag"))

    def series(self, lines, field):
        """(steps, values) of the lines that carry `field`; non-finite values become NaN."""
        return series(lines, field)

    def layer_count(self):
        return max((len(d["layers"]) for d in self.diags if isinstance(d.get("layers"), list)), default=0)


def series(lines, field):
    """(steps, values) of the dict lines that carry `field` (lines without it are skipped, so signals
    recorded every k steps still draw as lines); non-finite values become NaN."""
    xs, ys = [], []
    for r in lines:
        if field not in r:
            continue
        y = finite(r.get(field))
        xs.append(r["step"])
        ys.append(y if y is not None else float("nan"))
    return xs, ys


def load_metrics(path):
    """Metrics of the log at `path` (a run directory's metrics.jsonl or a study's runs/<key>.jsonl).
    A directory means DIRECTORY/metrics.jsonl. Raises ResultsError on a missing or malformed file."""
    if os.path.isdir(path):
        path = os.path.join(path, "metrics.jsonl")
    if not os.path.isfile(path):
        raise ResultsError(f"no metrics log at {path}")
    return Metrics(path)
