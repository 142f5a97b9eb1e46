#!/bin/sh
# crash_safety.sh TRAIN STUDY WORKDIR CORPUS: the crash-safety and signal contract of the tools.
#   1. train checkpoints by time by default ("checkpoint_seconds":300 in the log); with a short interval a
#      SIGKILL mid-run leaves a checkpoint, and --resume ends with the weights of an uninterrupted run;
#   2. a second `train` into a running one's --out, a second `study` into a running one's --out, the same
#      shard twice and a merge during a shard are refused: exit 2, one line naming the holder;
#   3. SIGINT during a long evaluation stops it before the next validation batch (exit 130, a checkpoint);
#   4. a second SIGINT while the first is pending ends the process at once, without the clean-stop path.
# Every wait is bounded; every process started here is stopped by pid.
set -u
train=$1; study=$2; work=$3; corpus=$4
tiny="--corpus $corpus --d-model 16 --n-heads 2 --n-layers 1 --context 16 --seq 16 --batch 4 --warmup 10"
rm -rf "$work"; mkdir -p "$work"
fail() { echo "FAIL: $*"; [ -n "${bg:-}" ] && kill -9 "$bg" 2>/dev/null; exit 1; }
# wait_for FILE PATTERN [SECONDS]: until FILE holds PATTERN (at most SECONDS, default 30; a sanitizer build
# on a loaded machine is 20-50x slower than release, hence the longer bound of the long-step case).
wait_for() {
    i=0; limit=$(( ${3:-30} * 20 ))
    until grep -q "$2" "$1" 2>/dev/null; do
        i=$((i + 1)); [ $i -lt $limit ] || fail "timed out waiting for '$2' in $1"
        sleep 0.05
    done
}
# wait_gone PID SECONDS: until PID has exited (fails after SECONDS); sets rc to its exit status.
wait_gone() {
    i=0
    while kill -0 "$1" 2>/dev/null; do
        i=$((i + 1)); [ $i -lt $(($2 * 20)) ] || fail "pid $1 still running after $2 s"
        sleep 0.05
        # reap it as soon as it is a zombie
        [ "$(ps -o stat= -p "$1" 2>/dev/null | cut -c1)" = Z ] && break
    done
    wait "$1"; rc=$?
}
# one_line CODE PATTERN CMD...: CMD exits CODE with exactly one stderr line matching PATTERN.
one_line() {
    code=$1; pattern=$2; shift 2
    err=$("$@" 2>&1 >/dev/null); r=$?
    [ "$r" -eq "$code" ] || fail "'$*' exited $r, expected $code: $err"
    [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] || fail "'$*' printed more than one line: $err"
    printf '%s\n' "$err" | grep -Eq -e "$pattern" || fail "'$*' said '$err', expected '$pattern'"
}

# 1. Time-based checkpoints and SIGKILL.
# shellcheck disable=SC2086
"$train" $tiny --steps 12 --out "$work/default" >/dev/null 2>&1 || fail "tiny run failed"
grep -Eq '"checkpoint_seconds":300(\.0)?[,}]' "$work/default/metrics.jsonl" || fail "the default checkpoint interval is not 300 s"
args="$tiny --steps 24000 --eval-interval 8000 --log-interval 1000 --checkpoint-seconds 0.3"
# shellcheck disable=SC2086
"$train" $args --out "$work/killed" >"$work/killed.log" 2>&1 &
bg=$!
wait_for "$work/killed/checkpoint/checkpoint.json" '"step"'
sleep 0.4
kill -9 "$bg"; wait "$bg" 2>/dev/null; bg=
step=$(grep -o '"step": *[0-9]*' "$work/killed/checkpoint/checkpoint.json" | head -1 | grep -o '[0-9]*$')
[ "$step" -gt 0 ] && [ "$step" -lt 24000 ] || fail "checkpoint step '$step' after SIGKILL"
# shellcheck disable=SC2086
"$train" $args --out "$work/killed" --resume >"$work/resumed.log" 2>&1 || fail "resume after SIGKILL: $(cat "$work/resumed.log")"
# shellcheck disable=SC2086
"$train" $args --out "$work/straight" >/dev/null 2>&1 || fail "straight run failed"
cmp -s "$work/killed/weights.safetensors" "$work/straight/weights.safetensors" || fail "weights after SIGKILL + resume differ"
echo "1. SIGKILL at a time-based checkpoint (step $step of 24000), resumed: weights identical"

# 2. Two writers.
# shellcheck disable=SC2086
"$train" $tiny --steps 1000000 --log-interval 1 --out "$work/busy" >/dev/null 2>&1 &
bg=$!
wait_for "$work/busy/metrics.jsonl" '"type":"step"'
# shellcheck disable=SC2086
one_line 2 "^train: error: .*'$work/busy' is in use by pid $bg " "$train" $tiny --steps 12 --out "$work/busy"
kill -INT "$bg"; wait_gone "$bg" 30; bg=
[ "$rc" -eq 130 ] || fail "the first train exited $rc after SIGINT"
study_args="--corpus $corpus --sizes d16_L1_H2 --lrs 1e-3,3e-3 --warmup 1 --batch 2 --seq 16 --eval-batches 1 --no-report"
# shellcheck disable=SC2086
"$study" $study_args --steps 100000 --out "$work/study" >"$work/study.log" 2>&1 &
bg=$!
wait_for "$work/study/.lock" "^$bg\$"
# shellcheck disable=SC2086
one_line 2 "^study: error: .*'$work/study' is in use by pid $bg " "$study" $study_args --steps 100000 --out "$work/study"
# shellcheck disable=SC2086
one_line 2 "is in use by pid $bg " "$study" $study_args --steps 100000 --shard 0/2 --out "$work/study"
kill -INT "$bg"; wait_gone "$bg" 30; bg=
# shellcheck disable=SC2086
"$study" $study_args --steps 100000 --shard 0/2 --out "$work/shards" >"$work/shard.log" 2>&1 &
bg=$!
wait_for "$work/shards/.lock.0-of-2" "^$bg\$"
# shellcheck disable=SC2086
one_line 2 "is in use by pid $bg " "$study" $study_args --steps 100000 --shard 0/2 --out "$work/shards"
# shellcheck disable=SC2086
one_line 2 "is in use by another process" "$study" merge "$work/shards" $study_args --steps 100000
kill -INT "$bg"; wait_gone "$bg" 30; bg=
echo "2. a second train, a second study, the same shard twice and a merge during a shard: refused, naming the holder"

# 3. SIGINT inside a long evaluation (the first one, l0: 200000 validation batches).
# shellcheck disable=SC2086
"$train" $tiny --steps 12 --eval-batches 200000 --out "$work/long_eval" >"$work/long_eval.log" 2>&1 &
bg=$!
wait_for "$work/long_eval/metrics.jsonl" '"type":"header"'
sleep 0.2
kill -INT "$bg"; wait_gone "$bg" 5; bg=
[ "$rc" -eq 130 ] || fail "SIGINT during the evaluation: exit $rc, expected 130"
grep -q "interrupted after step 0" "$work/long_eval.log" || fail "no clean stop: $(cat "$work/long_eval.log")"
[ -f "$work/long_eval/checkpoint/checkpoint.json" ] || fail "no checkpoint after SIGINT during the evaluation"
echo "3. SIGINT during a 200000-batch evaluation: stopped at once, checkpoint of step 0"

# 4. A second SIGINT while the first is pending, during a long training step (about 1.5 s on the
#    2-core machine this was written on): the process ends by the signal, not by the clean-stop path.
big="--corpus $corpus --d-model 256 --n-heads 4 --n-layers 4 --context 128 --seq 128 --batch 192 --warmup 1"
# shellcheck disable=SC2086
"$train" $big --steps 50 --eval-interval 0 --eval-batches 1 --log-interval 1 --out "$work/twice" >"$work/twice.log" 2>&1 &
bg=$!
wait_for "$work/twice/metrics.jsonl" '"type":"step"' 240
kill -INT "$bg"; sleep 0.3; kill -INT "$bg"; wait_gone "$bg" 5; bg=
[ "$rc" -eq 130 ] || fail "two SIGINTs: exit $rc, expected 130 (killed by SIGINT)"
if grep -q "interrupted after step" "$work/twice.log"; then fail "the second SIGINT did not end the process at once"; fi
echo "4. a second SIGINT during a step: ended at once by the signal"
