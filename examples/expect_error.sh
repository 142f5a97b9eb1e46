#!/bin/sh
# expect_error.sh CODE PATTERN CMD...: run CMD; pass iff it exits with CODE and its stderr is exactly one
# line matching PATTERN (grep -E). Used by ctest to check the tools' error contract.
code=$1; pattern=$2; shift 2
err=$("$@" 2>&1 >/dev/null); rc=$?
[ "$rc" -eq "$code" ] || { echo "exit code $rc, expected $code; stderr: $err"; exit 1; }
[ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] || { echo "stderr is not one line: $err"; exit 1; }
printf '%s\n' "$err" | grep -Eq -e "$pattern" || { echo "stderr '$err' does not match '$pattern'"; exit 1; }
