#!/bin/sh
# Data-parallel training through the CLI (examples/train.cpp as `train` and `train_mpi`), under mpirun:
#   train_data_parallel.sh identity POLICY   one process (--microbatches 4, 2 threads) vs mpirun -np 1, 2, 4
#                                            (1 thread per rank): weights, checkpoint tensors (optimizer
#                                            state) byte for byte, metrics.jsonl apart from timing fields
#   train_data_parallel.sh kill              SIGKILL one of 2 ranks mid-run: the job stops with a message;
#                                            resume on 4 ranks, then compare with an uninterrupted run
#   train_data_parallel.sh bad               K not dividing M; ranks with different configs: one error per rank
# Environment: TRAIN, TRAIN_MPI, MPIEXEC, MPIFLAGS, CORPUS, WORK, PYTHON3.
set -eu
mode=$1
policy=${2:-paper_default}
W="$WORK/$mode-$policy"
rm -rf "$W"; mkdir -p "$W"
tiny="--policy $policy --corpus $CORPUS --d-model 16 --n-heads 2 --n-layers 1 --context 16 --seq 16 --batch 8
      --warmup 3 --eval-interval 5 --eval-batches 2 --log-interval 1 --microbatches 4"
fail() { echo "FAIL: $*"; exit 1; }
strip() { "$PYTHON3" -c '
import json, sys
drop = {"tokens_per_s", "tokens_per_second", "train_seconds", "wall_seconds", "elapsed_seconds", "threads",
        "checkpoint_dir", "metrics_path"}
def s(x):
    if isinstance(x, dict): return {k: s(v) for k, v in x.items() if k not in drop}
    if isinstance(x, list): return [s(v) for v in x]
    return x
for line in open(sys.argv[1]):
    if line.strip(): print(json.dumps(s(json.loads(line)), sort_keys=True))' "$1"; }
same_run() { # same_run DIR_A DIR_B: weights, final checkpoint tensors, metrics
    cmp -s "$1/weights.safetensors" "$2/weights.safetensors" || fail "weights differ: $1 $2"
    a=$(ls "$1"/checkpoint/tensors-*.safetensors); b=$(ls "$2"/checkpoint/tensors-*.safetensors)
    [ "$(basename "$a")" = "$(basename "$b")" ] || fail "checkpoint steps differ: $a $b"
    cmp -s "$a" "$b" || fail "checkpoint tensors (weights + optimizer state) differ: $a $b"
    if [ "${3:-metrics}" = metrics ]; then
        strip "$1/metrics.jsonl" > "$W/a.jsonl"; strip "$2/metrics.jsonl" > "$W/b.jsonl"
        cmp -s "$W/a.jsonl" "$W/b.jsonl" || { diff "$W/a.jsonl" "$W/b.jsonl" | head -5; fail "metrics differ: $1 $2"; }
    fi
    echo "same bits: $1 = $2"
}
case $mode in
identity)
    "$TRAIN" $tiny --steps 20 --threads 2 --out "$W/one" > "$W/one.log" 2>&1 || { cat "$W/one.log"; fail "one process"; }
    for k in 1 2 4; do
        timeout 120 $MPIEXEC -np $k $MPIFLAGS "$TRAIN_MPI" $tiny --steps 20 --threads 1 --out "$W/k$k" \
            > "$W/k$k.log" 2>&1 || { cat "$W/k$k.log"; fail "mpirun -np $k"; }
        same_run "$W/one" "$W/k$k"
    done
    ;;
kill)
    "$TRAIN" $tiny --steps 300 --threads 2 --out "$W/straight" > "$W/straight.log" 2>&1 || fail "straight run"
    timeout 120 $MPIEXEC -np 2 $MPIFLAGS "$TRAIN_MPI" $tiny --steps 300 --threads 1 --checkpoint-interval 10 \
        --out "$W/dp" > "$W/dp.log" 2>&1 &
    job=$!
    i=0
    until [ -f "$W/dp/checkpoint/checkpoint.json" ]; do
        i=$((i + 1)); [ $i -lt 600 ] || fail "no checkpoint after 60 s"; sleep 0.1
    done
    launcher=$(pgrep -P $job | head -1) # $job is `timeout`; its child is mpirun, whose children are the ranks
    victim=$(pgrep -P "$launcher" | tail -1)
    [ -n "$victim" ] || fail "no rank process under mpirun ($launcher) to kill"
    kill -9 "$victim"
    if wait $job; then fail "the job survived a killed rank"; fi
    grep -Ei "signal 9|killed|exited" "$W/dp.log" > /dev/null || { cat "$W/dp.log"; fail "no message about the killed rank"; }
    echo "job stopped: $(grep -Ei 'signal 9|killed' "$W/dp.log" | head -1)"
    timeout 120 $MPIEXEC -np 4 $MPIFLAGS "$TRAIN_MPI" $tiny --steps 300 --threads 1 --checkpoint-interval 10 \
        --out "$W/dp" --resume > "$W/resume.log" 2>&1 || { cat "$W/resume.log"; fail "resume on 4 ranks"; }
    same_run "$W/straight" "$W/dp" weights-only
    ;;
bad)
    set +e
    timeout 60 $MPIEXEC -np 3 $MPIFLAGS "$TRAIN_MPI" $tiny --steps 4 --out "$W/k3" > "$W/k3.log" 2>&1
    rc=$?
    set -e
    [ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "3 ranks with M = 4: exit $rc (124: hang)"
    n=$(grep -c "ballast: trainer: the 3 data-parallel ranks do not divide microbatches = 4" "$W/k3.log" || true)
    [ "$n" = 3 ] || { cat "$W/k3.log"; fail "expected the error on each of 3 ranks, got $n"; }
    echo "K not dividing M: $n ranks said so"
    set +e
    timeout 60 $MPIEXEC $MPIFLAGS -np 1 "$TRAIN_MPI" $tiny --steps 4 --lr 0.01 --out "$W/mix" : \
        -np 1 "$TRAIN_MPI" $tiny --steps 4 --lr 0.02 --out "$W/mix" > "$W/mix.log" 2>&1
    rc=$?
    set -e
    [ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "different configs: exit $rc (124: hang)"
    n=$(grep -c "ballast: trainer: data-parallel ranks disagree on the run" "$W/mix.log" || true)
    [ "$n" = 2 ] || { cat "$W/mix.log"; fail "expected the error on each of 2 ranks, got $n"; }
    echo "different configs: $n ranks said so"
    ;;
*) fail "unknown mode $mode" ;;
esac
echo PASS
