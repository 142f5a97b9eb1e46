#!/bin/sh
# kill_resume_study.sh STUDY WORKDIR CORPUS: start a study, SIGKILL it (no chance to clean up) once it has
# recorded at least two runs, run the same command again, and require every run exactly once with the same
# numbers as an uninterrupted study.
set -u
study=$1; work=$2; corpus=$3
args="--corpus $corpus --sizes d16_L1_H2,d32_L1_H2 --lrs 1e-3,1e-2,1e-1 --steps 150 --warmup 2 --batch 4
      --seq 16 --eval-batches 1 --jobs 1"
rm -rf "$work"; mkdir -p "$work"
# shellcheck disable=SC2086
"$study" $args --out "$work/a" >"$work/a.log" 2>&1 &
pid=$!
i=0
count() { c=$(grep -c '"type":"run"' "$1" 2>/dev/null); echo "${c:-0}"; }
until [ "$(count "$work/a/results.jsonl")" -ge 2 ]; do
    i=$((i + 1)); [ $i -lt 1200 ] || { echo "study never recorded two runs"; kill -9 $pid; exit 1; }
    sleep 0.05
done
kill -9 $pid; wait $pid 2>/dev/null
before=$(count "$work/a/results.jsonl")
[ "$before" -lt 24 ] || { echo "the study finished before it was killed: make the runs longer"; exit 1; }
# shellcheck disable=SC2086
"$study" $args --out "$work/a" >"$work/a2.log" 2>&1 || { echo "resume failed"; cat "$work/a2.log"; exit 1; }
# shellcheck disable=SC2086
"$study" $args --out "$work/b" >"$work/b.log" 2>&1 || { echo "straight study failed"; exit 1; }
total=$(grep -c '"type":"run"' "$work/a/results.jsonl")
unique=$(grep -o '"key":"[^"]*"' "$work/a/results.jsonl" | sort -u | wc -l)
[ "$total" -eq 24 ] && [ "$unique" -eq 24 ] || { echo "expected 24 unique runs, got $total lines, $unique keys"; exit 1; }
runs() { sed -n 's/.*"final_val_loss":\([^,]*\),.*"key":"\([^"]*\)".*/\2 \1/p' "$1" | sort; }
[ "$(runs "$work/a/results.jsonl")" = "$(runs "$work/b/results.jsonl")" ] || { echo "resumed results differ from the straight study"; exit 1; }
[ "$(runs "$work/a/results.jsonl" | wc -l)" -eq 24 ] || { echo "could not read the results"; exit 1; }
echo "killed after $before runs; resumed to $total runs, all unique, identical to a straight study"
