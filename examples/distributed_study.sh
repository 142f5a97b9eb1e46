#!/bin/bash
# distributed_study.sh MODE STUDY WORKDIR CORPUS [MPIEXEC [MPI FLAGS...]]: a tiny study across processes
# must equal the one-process study of the same grid, run line by run line (compare_studies.py).
#   shards  two static shards run concurrently (--shard 0/2, 1/2), then `study merge DIR`
#   kill    shard 0/2 SIGKILLed after its first run, the study relaunched as 3 shards, then merge: nothing
#           lost, nothing run twice, the same numbers
#   mixed   a shard of another study (other --steps) in the same directory is refused (exit 2, one line)
#   mpi     MPIEXEC -np 2 FLAGS study --mpi: rank 0 writes results.jsonl in grid order and the summaries
#   slurm   a real job array on a one-node Slurm (tests/cluster/slurm_cluster.sh): sbatch --array=0-1
#           --wait, each task --shard auto, then merge; exit 77 (skipped) where Slurm is absent
set -u
mode=$1; study=$2; work=$3; corpus=$4; shift 4
here=$(cd "$(dirname "$0")" && pwd)
py=$(command -v python3) || { echo "skipped: python3 not found"; exit 77; }
# 4 recipes x 2 sizes x 2 LRs = 16 runs of a few steps; one thread per run.
args=(--corpus "$corpus" --sizes d16_L1_H2,d32_L1_H2 --lrs 1e-3,1e-1 --steps 8 --warmup 1 --batch 2
      --seq 16 --eval-batches 1 --threads-per-run 1)
export OMP_NUM_THREADS=1
rm -rf "$work"; mkdir -p "$work"
chmod 755 "$work"
reference() {
    "$study" "${args[@]}" "$@" --out "$work/ref" > "$work/ref.log" 2>&1 || { echo "FAILED: the one-process study"; cat "$work/ref.log"; exit 1; }
}
check() { "$py" "$here/compare_studies.py" "$work/ref" "$work/dist" --runs 16; }
merge() {
    "$study" merge "$work/dist" "${args[@]}" "$@" > "$work/merge.log" 2>&1 || { echo "FAILED: merge"; cat "$work/merge.log"; exit 1; }
}
runs() { c=$(grep -c '"type":"run"' "$1" 2>/dev/null); echo "${c:-0}"; }

case "$mode" in
shards)
    reference
    "$study" "${args[@]}" --out "$work/dist" --shard 0/2 > "$work/s0.log" 2>&1 &
    p0=$!
    "$study" "${args[@]}" --out "$work/dist" --shard 1/2 > "$work/s1.log" 2>&1 &
    p1=$!
    wait $p0 || { echo "FAILED: shard 0/2"; cat "$work/s0.log"; exit 1; }
    wait $p1 || { echo "FAILED: shard 1/2"; cat "$work/s1.log"; exit 1; }
    [ "$(runs "$work/dist/results.0-of-2.jsonl")" -gt 0 ] && [ "$(runs "$work/dist/results.1-of-2.jsonl")" -gt 0 ] \
        || { echo "FAILED: a shard ran nothing"; exit 1; }
    merge
    check
    ;;
kill)
    args=("${args[@]/#8/150}") # longer runs, so the kill lands mid-study
    reference
    "$study" "${args[@]}" --jobs 1 --out "$work/dist" --shard 0/2 > "$work/s0.log" 2>&1 &
    pid=$!
    i=0
    until [ "$(runs "$work/dist/results.0-of-2.jsonl")" -ge 1 ]; do
        i=$((i + 1)); [ $i -lt 1200 ] || { echo "FAILED: shard 0/2 never recorded a run"; kill -9 $pid; exit 1; }
        sleep 0.05
    done
    kill -9 $pid; wait $pid 2> /dev/null
    before=$(runs "$work/dist/results.0-of-2.jsonl")
    [ "$before" -lt 8 ] || { echo "FAILED: shard 0/2 finished before it was killed: make the runs longer"; exit 1; }
    pids=()
    for s in 0 1 2; do
        "$study" "${args[@]}" --out "$work/dist" --shard $s/3 > "$work/t$s.log" 2>&1 &
        pids+=($!)
    done
    for s in 0 1 2; do
        wait "${pids[$s]}" || { echo "FAILED: shard $s/3"; cat "$work/t$s.log"; exit 1; }
    done
    merge
    check || exit 1
    echo "shard 0/2 was killed after $before runs; 3 shards finished the rest"
    ;;
mixed)
    "$study" "${args[@]}" --out "$work/dist" --shard 0/2 > "$work/s0.log" 2>&1 || { echo "FAILED: shard 0/2"; cat "$work/s0.log"; exit 1; }
    exec "$here/expect_error.sh" 2 "are not shards of one study.*config.train.steps: 9 vs 8" \
        "$study" "${args[@]/#8/9}" --out "$work/dist" --shard 1/2
    ;;
mpi)
    mpiexec=$1; shift
    reference
    "$mpiexec" -np 2 "$@" "$study" "${args[@]}" --out "$work/dist" --mpi > "$work/mpi.log" 2>&1 \
        || { echo "FAILED: $mpiexec -np 2 study --mpi"; cat "$work/mpi.log"; exit 1; }
    check
    ;;
slurm)
    command -v sbatch > /dev/null || { echo "skipped: Slurm (sbatch) not found; Debian: apt-get install slurm-wlm munge"; exit 77; }
    reference
    printf -v line '%q ' "$study" "${args[@]}" --out "$work/dist" --shard auto
    cat > "$work/job.sh" << JOB
#!/bin/sh
#SBATCH --job-name=ballast-study-array
#SBATCH --cpus-per-task=1
#SBATCH --output=$work/slurm-%A_%a.out
$line
JOB
    "$here/../tests/cluster/slurm_cluster.sh" --timeout 120 -- sbatch --array=0-1 --wait "$work/job.sh"
    rc=$?
    [ $rc -eq 77 ] && exit 77
    [ $rc -eq 0 ] || { echo "FAILED: the job array exited with $rc"; cat "$work"/slurm-*.out; exit 1; }
    [ -f "$work/dist/results.0-of-2.jsonl" ] && [ -f "$work/dist/results.1-of-2.jsonl" ] \
        || { echo "FAILED: the array tasks did not write results.0-of-2 and 1-of-2"; cat "$work"/slurm-*.out; exit 1; }
    merge
    check
    ;;
*) echo "distributed_study.sh: unknown mode '$mode'" >&2; exit 2 ;;
esac
