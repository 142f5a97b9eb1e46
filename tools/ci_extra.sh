#!/usr/bin/env bash
# The CI legs beyond tools/test.sh (.ci/run = tools/test.sh, then this; docs/hardening.md has the budget
# and the measured times):
#   1. AddressSanitizer + UndefinedBehaviorSanitizer with clang-14 (preset sanitize-full,
#      build/sanitize-full) over every Catch2 test and every `example:` ctest (train, study, predict,
#      ballast_model, custom_policy: Ctrl-C/resume, SIGKILL/resume, two writers, the error contract).
#      clang-14 compiles the template-heavy model and study units about 5x faster than GCC 12 with the
#      sanitizers on, which is what makes the whole suite fit the CI budget;
#   2. fuzzing: tools/fuzz.sh, 30 s per target (BALLAST_FUZZ_SECONDS to change);
#   3. ThreadSanitizer with clang-14 (preset tsan): the thread team (core/parallel.hpp), the threaded GEMM
#      and attention kernels, the model under load and the study engine's worker pool.
# BALLAST_SKIP_SANITIZE_ALL=1, BALLAST_SKIP_FUZZ=1 or BALLAST_SKIP_TSAN=1 skip legs 1, 2 or 3.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh fuzz # clang-14 and its sanitizer runtimes
jobs=$(nproc)
t0=$(date +%s)
stamp() { echo "ci_extra: $1 done at +$(( $(date +%s) - t0 )) s"; }

if [ "${BALLAST_SKIP_SANITIZE_ALL:-0}" != 1 ]; then
    cmake --preset sanitize-full >/dev/null
    cmake --build --preset sanitize-full -j "$jobs" --target ballast_tests train study predict ballast_model custom_policy
    ctest --preset sanitize-full -j "$jobs" -R '^(ballast|example):'
    stamp "full sanitizer leg (ASan + UBSan, clang-14)"
fi

if [ "${BALLAST_SKIP_FUZZ:-0}" != 1 ]; then
    tools/fuzz.sh "${BALLAST_FUZZ_SECONDS:-30}"
    stamp "fuzzing"
fi

if [ "${BALLAST_SKIP_TSAN:-0}" != 1 ]; then
    cmake --preset tsan >/dev/null
    cmake --build --preset tsan -j "$jobs" --target ballast_tests
    ctest --preset tsan -j "$jobs" -R '^ballast:'
    stamp "ThreadSanitizer leg"
fi
