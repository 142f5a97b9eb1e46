#!/usr/bin/env bash
# The CI legs beyond tools/test.sh (proposed: .ci/run = tools/test.sh && tools/ci_extra.sh; see
# docs/hardening.md for the budget and the measured times):
#   1. the rest of the sanitizer coverage: the model, trainer, warnings and study-engine tests and every
#      example ctest, under AddressSanitizer + UndefinedBehaviorSanitizer. It reuses tools/test.sh's
#      build/sanitize directory, so the kernel/core/io/policy objects compiled there are not rebuilt and
#      the tests already run there are not run again;
#   2. fuzzing: tools/fuzz.sh, 30 s per target (BALLAST_FUZZ_SECONDS to change);
#   3. optional (BALLAST_CI_TSAN=1): ThreadSanitizer over the study engine's worker pool (std::thread;
#      OpenMP off inside runs, since Debian's libgomp is not TSan-instrumented and would only report
#      false positives).
# BALLAST_SKIP_SANITIZE_ALL=1 or BALLAST_SKIP_FUZZ=1 skip legs 1 or 2.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
t0=$(date +%s)
stamp() { echo "ci_extra: $1 done at +$(( $(date +%s) - t0 )) s"; }

if [ "${BALLAST_SKIP_SANITIZE_ALL:-0}" != 1 ]; then
    cmake --preset sanitize -DBALLAST_TEST_FILTER="" -DBALLAST_BUILD_EXAMPLES=ON >/dev/null
    cmake --build --preset sanitize -j "$jobs" --target ballast_tests train study predict ballast_model
    # The tests tools/test.sh's filtered leg did not run (model, trainer, warnings, the study engine).
    UBSAN_OPTIONS=print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 OMP_WAIT_POLICY=passive \
        build/sanitize/tests/ballast_tests '[model],[trainer],[warnings],[fuzz],[study]~[grid]~[metric]~[predict]'
    UBSAN_OPTIONS=print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
        ctest --preset sanitize -j "$jobs" -R '^example:'
    stamp "full sanitizer leg"
fi

if [ "${BALLAST_SKIP_FUZZ:-0}" != 1 ]; then
    tools/fuzz.sh "${BALLAST_FUZZ_SECONDS:-30}"
    stamp "fuzzing"
fi

if [ "${BALLAST_CI_TSAN:-0}" = 1 ]; then
    cmake -S . -B build/tsan -G Ninja -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_CXX_FLAGS="-fsanitize=thread -O1 -g1" -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread \
        -DBALLAST_BUILD_EXAMPLES=OFF -DBALLAST_TEST_FILTER='/tests/study/study_test|/tests/core/parallel_test' >/dev/null
    cmake --build build/tsan -j "$jobs" --target ballast_tests
    OMP_NUM_THREADS=1 TSAN_OPTIONS=halt_on_error=1 build/tsan/tests/ballast_tests '[study]~[grid]~[metric]~[predict]'
    stamp "ThreadSanitizer leg"
fi
