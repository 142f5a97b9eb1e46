#!/usr/bin/python3
"""The study report page in a real browser (exit 0 = pass, 1 = failure, 77 = skipped).

  /usr/bin/python3 tools/tests/test_report_browser.py

Builds the report of tools/tests/fixtures/report_study (a real study run; the command is in
tools/tests/fixtures/README.md) into a temporary directory, then starts headless Chromium itself (pid
recorded, bounded waits, stopped by its process group) twice:
1. --screenshot: the PNG decodes, is as wide as the window, and is not blank (pixel variance, share of
   non-background pixels);
2. --dump-dom: every number of the LR-sensitivity table (data-value and the printed text) equals
   summary.json, read here with the json module alone; the warnings and diverged tables have one row per
   warning / diverged run of results.jsonl; the images are inline data URIs and nothing refers to the network.
Prints 'skipped: <reason>' and exits 77 where Chromium is missing or cannot start.
"""
import html.parser
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPORT = os.path.join(HERE, "..", "report.py")
FIXTURE = os.path.join(HERE, "fixtures", "report_study")
PY = sys.executable or "/usr/bin/python3"
SKIP = 77
WIDTH, HEIGHT = 1280, 2400
TIMEOUT = 120  # seconds per Chromium run (the machine may be loaded)

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def skip(reason):
    print(f"skipped: {reason}")
    sys.exit(SKIP)


def chromium_binary():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def run_chromium(binary, profile, args, stdout_path):
    """Start Chromium in its own process group, wait at most TIMEOUT s, stop it by its pid. Returns
    (exit code or None on timeout, stderr tail)."""
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={profile}",
           f"--window-size={WIDTH},{HEIGHT}"] + args
    with open(stdout_path, "wb") as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
        pid = proc.pid
        try:
            rc = proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            rc = None
        finally:
            try:  # the browser's helper processes share its process group (start_new_session)
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(pid, signal.SIGKILL)
                proc.wait(timeout=10)
        err.seek(0)
        tail = err.read().decode("utf-8", "replace").strip().splitlines()[-3:]
    return rc, " | ".join(tail)


class DomTables(html.parser.HTMLParser):
    """Collects, per table id, its rows as lists of (attrs dict, text) cells; and every img src, link,
    script and href."""

    def __init__(self):
        super().__init__()
        self.tables, self.srcs, self.hrefs, self.scripts, self.links = {}, [], [], 0, 0
        self.table = None
        self.cell = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.table = a.get("id")
            if self.table:
                self.tables[self.table] = []
        elif tag == "tr" and self.table:
            self.tables[self.table].append([])
        elif tag in ("td", "th") and self.table and self.tables[self.table]:
            self.cell = [a, ""]
            self.tables[self.table][-1].append(self.cell)
        elif tag == "img":
            self.srcs.append(a.get("src", ""))
        elif tag == "a":
            self.hrefs.append(a.get("href", ""))
        elif tag == "script":
            self.scripts += 1
        elif tag == "link":
            self.links += 1

    def handle_endtag(self, tag):
        if tag == "table":
            self.table = None
        elif tag in ("td", "th"):
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell[1] += data


def raw_lines(path):
    """results.jsonl lines as dicts with the json module alone (independent of tools/ballast_results.py)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                out.append(json.loads(line))
    return out


def check_screenshot(png):
    try:
        import matplotlib.image
    except ImportError as e:
        check(False, f"screenshot: matplotlib to decode it ({e})")
        return
    img = matplotlib.image.imread(png)[..., :3].astype("float64")
    check(img.shape[1] == WIDTH and img.shape[0] >= 1000, f"screenshot is {WIDTH} px wide (shape {img.shape})")
    gray = img.mean(axis=2)
    var = float(gray.var())
    ink = float((gray < 0.9).mean())
    check(var > 1e-3, f"screenshot is not blank (pixel variance {var:.4g} > 1e-3)")
    check(ink > 0.02, f"screenshot has content ({100 * ink:.1f}% non-background pixels > 2%)")
    # the top band holds the title and the settings cards: text must be drawn there too
    top = gray[:300]
    check(float((top < 0.5).mean()) > 0.002, "screenshot: text drawn in the page's top 300 px")


def check_dom(dom_text, summary, lines):
    p = DomTables()
    p.feed(dom_text)
    check("summary-table" in p.tables, "DOM has the LR-sensitivity table")
    rows = [r for r in p.tables.get("summary-table", []) if r and "data-field" in r[0][0]]
    groups = summary["groups"]
    check(len(rows) == len(groups), f"one table row per summary.json group ({len(rows)} vs {len(groups)})")
    cells = {}
    for r in rows:
        for attrs, text in r:
            if "data-value" in attrs and "data-recipe" in attrs:
                cells[(attrs["data-recipe"], attrs["data-size"], attrs["data-field"])] = (attrs["data-value"],
                                                                                         text.strip())
    formats = {"lr_sensitivity": "{:.4f}", "best_loss": "{:.4f}", "l0": "{:.4f}", "runs": "{}",
               "diverged": "{}"}
    compared = bad = 0
    for g in groups:
        for field, fmt in list(formats.items()) + [("best_lr", None), ("params", None)]:
            key = (g["policy_set"], g["size"], field)
            if key not in cells:
                bad += 1
                print(f"     missing cell {key}")
                continue
            value, text = cells[key]
            compared += 1
            if float(value) != float(g[field]):
                bad += 1
                print(f"     {key}: data-value {value} != summary.json {g[field]!r}")
            if fmt and text != fmt.format(g[field]):
                bad += 1
                print(f"     {key}: printed {text!r} != {fmt.format(g[field])!r}")
    check(compared == 7 * len(groups) and bad == 0,
          f"table numbers equal summary.json exactly ({compared} cells compared, {bad} mismatches)")

    runs = [j for j in lines if j.get("type") == "run"]
    n_warn = sum(len((j.get("diagnostics") or {}).get("warnings") or []) for j in runs)
    warn_rows = [r for r in p.tables.get("warnings-table", []) if r and "data-field" in " ".join(
        k for c in r for k in c[0])]
    check(n_warn > 0 and len(warn_rows) == n_warn,
          f"warnings table: one row per fired warning ({len(warn_rows)} vs {n_warn} in results.jsonl)")
    div = {j["key"]: j for j in runs if j.get("diverged")}
    div_rows = [r for r in p.tables.get("diverged-table", []) if r and "data-field" in " ".join(
        k for c in r for k in c[0])]
    check(div and len(div_rows) == len(div),
          f"diverged table: one row per diverged run ({len(div_rows)} vs {len(div)})")
    steps_ok = reasons_ok = bool(div_rows)
    for r in div_rows:
        fields = {attrs.get("data-field"): (attrs, text.strip()) for attrs, text in r}
        key = fields.get("diverged_step", ({}, ""))[0].get("data-key")
        if key not in div:
            steps_ok = False
            continue
        steps_ok &= float(fields["diverged_step"][0]["data-value"]) == div[key]["diverged_step"]
        reasons_ok &= fields.get("reason", ({}, ""))[1] == (div[key]["reason"] or "non-finite final loss")
    check(steps_ok and reasons_ok, "diverged table: step and reason of every diverged run as in results.jsonl")
    check(len(p.srcs) == 3 and all(s.startswith("data:image/png;base64,") for s in p.srcs),
          f"three inline PNG images ({len(p.srcs)} img tags)")
    external = [h for h in p.hrefs if not h.startswith("#")]
    check(not external and p.scripts == 0 and p.links == 0 and "http://" not in dom_text.replace(
        "http://www.w3.org", "") and "https://" not in dom_text,
          f"self-contained: no external link, script or stylesheet ({external[:3]})")


def main():
    binary = chromium_binary()
    if binary is None:
        skip("no chromium binary on PATH (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="report_browser_") as tmp:
        page = os.path.join(tmp, "report.html")
        r = subprocess.run([PY, REPORT, FIXTURE, "--out", page], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=300)
        check(r.returncode == 0 and os.path.isfile(page), f"report.py exits 0 and writes the page "
                                                          f"(rc={r.returncode}, {r.stderr.strip()[-300:]})")
        check(r.stdout.strip().splitlines()[-1:] == [page], "report.py prints the page's path last")
        if not os.path.isfile(page):
            return 1
        url = "file://" + page
        png = os.path.join(tmp, "shot.png")
        rc, err = run_chromium(binary, os.path.join(tmp, "profile1"), [f"--screenshot={png}", url],
                               os.path.join(tmp, "shot.out"))
        if not os.path.isfile(png):
            skip(f"chromium could not start or render (exit {rc}: {err[:300]})")
        check(rc == 0, f"chromium --screenshot exits 0 within {TIMEOUT} s (exit {rc})")
        check_screenshot(png)
        dom_path = os.path.join(tmp, "dom.html")
        rc, err = run_chromium(binary, os.path.join(tmp, "profile2"), ["--dump-dom", url], dom_path)
        check(rc == 0, f"chromium --dump-dom exits 0 within {TIMEOUT} s (exit {rc}: {err[:200]})")
        with open(dom_path, encoding="utf-8", errors="replace") as f:
            dom = f.read()
        check(len(dom) > 10000 and "summary-table" in dom, f"DOM dumped ({len(dom)} chars)")
        with open(os.path.join(FIXTURE, "summary.json"), encoding="utf-8") as f:
            summary = json.load(f)
        check_dom(dom, summary, raw_lines(os.path.join(FIXTURE, "results.jsonl")))
    if failures:
        print(f"\n{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("\nall checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
