#!/usr/bin/env bash
# Build the libFuzzer targets (fuzz/) with clang-14 and run each for a bounded time.
#   tools/fuzz.sh            # 30 s per target
#   tools/fuzz.sh 600        # 10 min per target
#   tools/fuzz.sh 60 fuzz_tokens fuzz_jsonl   # only these targets
# Needs Debian's clang-14 and libclang-rt-14-dev. The committed seeds (fuzz/corpus/<target>/) are copied to
# build/fuzz/corpus/<target>/, which grows as the fuzzer finds new inputs (never committed); a crash leaves
# its input in build/fuzz/artifacts/ and makes the script exit 1. The last line per target gives the
# executions (the figures docs/hardening.md records).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true
case "$seconds" in '' | *[!0-9]* | 0) echo "fuzz.sh: seconds must be a positive integer, got '$seconds'" >&2; exit 2 ;; esac
command -v clang++-14 >/dev/null || { echo "fuzz.sh: clang++-14 not found (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 2; }
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_safetensors fuzz_tokens fuzz_jsonl fuzz_config fuzz_study_size)

build=build/fuzz
cmake -S . -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DBALLAST_BUILD_FUZZERS=ON -DBALLAST_BUILD_TESTS=OFF -DBALLAST_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}"

mkdir -p "$build/artifacts"
failed=0
for t in "${targets[@]}"; do
    work="$build/corpus/$t"
    mkdir -p "$work"
    cp -n fuzz/corpus/"$t"/* "$work"/ 2>/dev/null || true
    log="$build/$t.log"
    # ASan: no leak checking at exit (libFuzzer's own -detect_leaks does it per input).
    if ASAN_OPTIONS=abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
        "$build/fuzz/$t" "$work" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" >"$log" 2>&1; then
        status=ok
    else
        status=CRASH
        failed=1
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    echo "$t: $status, ${execs:-?} executions in ${seconds} s, corpus $(ls "$work" | wc -l) inputs (log: $log)"
done
exit $failed
