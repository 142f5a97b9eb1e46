#!/bin/bash
# On a one-node Slurm cluster started for the test (slurm_cluster.sh): a 2-task batch job runs
# `mpirun -np 2` of the MPI work-queue test program (tests/mpi/work_queue_mpi.cpp), which checks the
# communicator, `--shard auto` from Open MPI's variables inside Slurm, and the work queue against one
# process. Exit 77 (skipped) where Slurm is absent or cannot start.
# usage: mpi_job_test.sh MPIEXEC PATH/TO/ballast_mpi_work_queue [MPIEXEC FLAGS...]
set -u
mpiexec=${1:?usage: mpi_job_test.sh MPIEXEC PROGRAM [FLAGS...]}
program=${2:?usage: mpi_job_test.sh MPIEXEC PROGRAM [FLAGS...]}
shift 2
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d "${TMPDIR:-/tmp}/ballast_mpi_job.XXXXXX")
trap 'rm -rf "$out"' EXIT
chmod 755 "$out"
# sbatch passes the environment on (--export=ALL): Open MPI's root and container settings reach mpirun.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMP_NUM_THREADS=1

"$here/slurm_cluster.sh" --timeout 120 -- \
    sbatch --ntasks=2 --wait --output="$out/job.out" --wrap="$mpiexec -np 2 $* $program"
rc=$?
[ $rc -eq 77 ] && exit 77
cat "$out/job.out" 2> /dev/null
if [ $rc -ne 0 ]; then
    echo "FAILED: the Slurm job exited with $rc"
    exit 1
fi
grep -q "^ok: 2 ranks, 12 runs" "$out/job.out" || { echo "FAILED: no 'ok: 2 ranks, 12 runs' line"; exit 1; }
echo "ok: mpirun -np 2 inside a Slurm job"
