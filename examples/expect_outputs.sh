#!/bin/sh
# expect_outputs.sh DIR "FILE[:PATTERN] ..." CMD...: remove DIR, run CMD (exit 0 expected), then require
# each FILE under DIR to be non-empty and, when given, to contain PATTERN (grep -F).
set -u
dir=$1; checks=$2; shift 2
rm -rf "$dir"
"$@" >/dev/null || { echo "command failed: $*"; exit 1; }
for c in $checks; do
    f=${c%%:*}; p=${c#*:}
    [ -s "$dir/$f" ] || { echo "missing or empty: $dir/$f"; exit 1; }
    if [ "$p" != "$c" ]; then grep -qF "$p" "$dir/$f" || { echo "$dir/$f lacks '$p'"; exit 1; }; fi
done
