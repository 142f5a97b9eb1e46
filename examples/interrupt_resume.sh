#!/bin/sh
# interrupt_resume.sh TRAIN WORKDIR CORPUS: start a run, send it SIGINT once it has logged a step, expect
# exit code 130 and a checkpoint; resume it to the end; then check that the resumed run's final weights equal
# an uninterrupted run's byte for byte.
set -u
train=$1; work=$2; corpus=$3
args="--corpus $corpus --d-model 16 --n-heads 2 --n-layers 1 --context 16 --seq 16 --batch 4 --steps 4000 --warmup 10
      --eval-interval 1000 --log-interval 1"
rm -rf "$work"; mkdir -p "$work"
# shellcheck disable=SC2086
"$train" $args --out "$work/a" >"$work/a.log" 2>&1 &
pid=$!
i=0
until grep -q '"type":"step"' "$work/a/metrics.jsonl" 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 600 ] || { echo "run never logged a step"; kill $pid; exit 1; }
    sleep 0.05
done
kill -INT $pid
wait $pid; rc=$?
[ $rc -eq 130 ] || { echo "interrupted run exited $rc, expected 130"; cat "$work/a.log"; exit 1; }
[ -f "$work/a/checkpoint/checkpoint.json" ] || { echo "no checkpoint after SIGINT"; exit 1; }
grep -q "interrupted after step" "$work/a.log" || { echo "no interruption message"; exit 1; }
# shellcheck disable=SC2086
"$train" $args --out "$work/a" --resume >"$work/a2.log" 2>&1 || { echo "resume failed"; cat "$work/a2.log"; exit 1; }
# shellcheck disable=SC2086
"$train" $args --out "$work/b" >"$work/b.log" 2>&1 || { echo "straight run failed"; exit 1; }
cmp "$work/a/weights.safetensors" "$work/b/weights.safetensors" || { echo "resumed weights differ"; exit 1; }
echo "interrupted at $(grep -o 'after step [0-9]*' "$work/a.log"), resumed, weights identical"
