#!/usr/bin/env bash
# The test command: installs what is missing, builds and runs the whole suite through ctest (release
# preset): every Catch2 test, header self-containment, the installed-package and add_subdirectory consumer
# projects, the compiled documentation snippets, the examples end to end (train, study, predict,
# ballast_model, custom_policy, crash safety, the error contract), MPI, a one-node Slurm and headless
# Chromium.
#
# The sanitizers run in CI after this (tools/ci_extra.sh: every test and example under ASan + UBSan with
# clang-14, fuzzing, ThreadSanitizer). BALLAST_SANITIZE=1 also runs the GCC ASan + UBSan build of the
# unit tests here (preset sanitize, about 9 minutes more on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
jobs=$(nproc)

cmake --preset release >/dev/null
cmake --build --preset release -j "$jobs"
ctest --preset release -j "$jobs"

if [ "${BALLAST_SANITIZE:-0}" = 1 ]; then
    cmake --preset sanitize -DBALLAST_TEST_FILTER="" >/dev/null
    cmake --build --preset sanitize -j "$jobs" --target ballast_tests
    ctest --preset sanitize -j "$jobs" -R '^ballast:'
fi
