#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs the LR sweep on the default corpus
# (Debian's `fortunes`): paper_default (qk-layernorm + z-loss) vs paper_baseline (no qk-layernorm) over the
# paper's 7-point LR grid, printing the final validation loss per LR and each recipe's LR sensitivity.
# Extra arguments go to the program (e.g. tools/run.sh --steps 100; tools/run.sh --help).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh study
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target lr_sweep
exec build/release/examples/lr_sweep "$@"
