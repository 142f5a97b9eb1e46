#!/bin/bash
# On a one-node Slurm cluster started for the test (slurm_cluster.sh): a job array of two tasks
# (sbatch --array=0-1 --wait) writes one file per task, and each task's `--shard auto` reads its shard
# (0/2, 1/2) and its cores (--cpus-per-task=1); then an srun step of two tasks reads 0/2 and 1/2 from the
# task variables. Exit 77 (skipped) where Slurm is absent or cannot start.
# usage: array_job_test.sh PATH/TO/ballast_shard_probe
set -u
probe=${1:?usage: array_job_test.sh PATH/TO/ballast_shard_probe}
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d "${TMPDIR:-/tmp}/ballast_array_job.XXXXXX")
trap 'rm -rf "$out"' EXIT
chmod 755 "$out"

cat > "$out/job.sh" << JOB
#!/bin/sh
#SBATCH --job-name=ballast-array-test
#SBATCH --cpus-per-task=1
#SBATCH --output=$out/slurm-%A_%a.out
echo "task \$SLURM_ARRAY_TASK_ID" > "$out/task.\$SLURM_ARRAY_TASK_ID.txt"
"$probe" >> "$out/task.\$SLURM_ARRAY_TASK_ID.txt"
JOB
chmod +x "$out/job.sh"

"$here/slurm_cluster.sh" --timeout 120 -- bash -c "
    sbatch --array=0-1 --wait '$out/job.sh' || exit 10
    sbatch --ntasks=2 --wait --output='$out/srun.out' --wrap='srun --ntasks=2 \"$probe\"' || exit 11
"
rc=$?
[ $rc -eq 77 ] && exit 77
if [ $rc -ne 0 ]; then
    echo "FAILED: the Slurm jobs exited with $rc"
    cat "$out"/*.out 2> /dev/null
    exit 1
fi

fail=0
for i in 0 1; do
    expected="task $i
shard $i/2 slurm-array cores 1 SLURM_CPUS_PER_TASK"
    got=$(cat "$out/task.$i.txt" 2> /dev/null)
    if [ "$got" != "$expected" ]; then
        echo "FAILED: array task $i wrote '$got', expected '$expected'"
        fail=1
    fi
done
# srun's tasks: one line each, in either order; the launcher is Slurm's task variables (or PMI's).
got=$(sed -E 's/ (slurm-tasks|pmi) / <tasks> /' "$out/srun.out" 2> /dev/null | sort)
expected="shard 0/2 <tasks> cores - -
shard 1/2 <tasks> cores - -"
if [ "$got" != "$expected" ]; then
    echo "FAILED: srun's tasks printed:"
    cat "$out/srun.out" 2> /dev/null
    echo "expected (sorted, launcher as <tasks>):"
    echo "$expected"
    fail=1
fi
[ $fail -eq 0 ] && echo "ok: a 2-task job array and a 2-task srun step each read their own shard"
exit $fail
