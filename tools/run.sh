#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs the default LR-sensitivity study on the default
# corpus (Debian's `fortunes`): the paper's default recipe with qk-layernorm on/off × z-loss on/off, over the
# paper's 7-point LR grid at two model sizes (docs/study.md). Prints the table, writes runs/default/
# (results.jsonl, summary.json, CSVs, per-run metrics), the plots in runs/default/plots/ and the report page
# runs/default/report.html (docs/report.md), whose path it prints last.
# Extra arguments go to the study program (e.g. tools/run.sh --steps 100; tools/run.sh --help). Interrupt
# with Ctrl-C and run it again to resume: finished runs are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh study
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target study
status=0
build/release/examples/study "$@" || status=$?
if [ "$status" -eq 0 ]; then
    out=runs/default
    for ((i = 1; i <= $#; i++)); do
        [ "${!i}" = --out ] && { j=$((i + 1)); out=${!j}; }
        case "${!i}" in --out=*) out=${!i#--out=} ;; --preset) j=$((i + 1)); out=runs/${!j} ;; esac
    done
    # Debian's python3 (with python3-matplotlib from setup.sh), even when another python3 comes first in PATH.
    py=/usr/bin/python3; [ -x "$py" ] || py=python3
    for a in "$@"; do # nothing was trained: no plots
        case "$a" in --dry-run | --help | -h | --help-markdown | --report | --report=*) exit "$status" ;; esac
    done
    if [ -s "$out/results.jsonl" ]; then
        "$py" tools/plot_study.py "$out"
        if [ -s "$out/report.html" ]; then
            echo "report: $out/report.html"
        else
            echo "report: not written (see above); make it with: build/release/examples/study --report $out"
        fi
    fi
fi
exit "$status"
