#!/bin/bash
# A throw-away one-node Slurm cluster on localhost, for tests: writes a slurm.conf in a scratch directory,
# starts munged, slurmctld and slurmd (recording their pids), waits (bounded) until the node is idle, runs
# the given command with SLURM_CONF pointing at the cluster, then stops the daemons by pid and removes the
# scratch directory.
#
# usage: slurm_cluster.sh [--keep] [--timeout SECONDS] [--] COMMAND [ARGS...]
#   --keep            keep the scratch directory (config, daemon logs) and print its path
#   --timeout S       bound on COMMAND (default 300 s)
# COMMAND sees SLURM_CONF and BALLAST_SLURM_DIR (the scratch directory, shared by the node and the caller).
# Exit code: COMMAND's; 77 with "skipped: <reason>" when Slurm or munge is absent or the cluster cannot
# start (ctest's SKIP_RETURN_CODE); 2 for bad usage.
#
# Needs Debian's slurm-wlm and munge (apt-get install slurm-wlm munge). Runs as root or as a plain user
# (the daemons then run as that user and can only run that user's jobs). Ports: 6817/6818, or the next free
# pair (BALLAST_SLURM_PORT sets the first to try).
set -u

keep=0
cmd_timeout=300
while [ $# -gt 0 ]; do
    case "$1" in
        --keep) keep=1; shift ;;
        --timeout) cmd_timeout=${2:-}; shift 2 ;;
        --) shift; break ;;
        -*) echo "slurm_cluster.sh: unknown option '$1'" >&2; exit 2 ;;
        *) break ;;
    esac
done
if [ $# -eq 0 ]; then
    echo "usage: slurm_cluster.sh [--keep] [--timeout SECONDS] [--] COMMAND [ARGS...]" >&2
    exit 2
fi
case "$cmd_timeout" in '' | *[!0-9]*) echo "slurm_cluster.sh: --timeout needs seconds" >&2; exit 2 ;; esac

skip() {
    echo "skipped: $*"
    exit 77
}

PATH="$PATH:/usr/sbin:/sbin"
for prog in munged munge slurmctld slurmd sbatch sinfo scancel timeout; do
    command -v "$prog" > /dev/null 2>&1 || skip "'$prog' not found (Debian: apt-get install slurm-wlm munge)"
done

dir=$(mktemp -d "${TMPDIR:-/tmp}/ballast_slurm.XXXXXX") || skip "cannot create a scratch directory"
chmod 755 "$dir"
pids=()
names=()

log_tails() {
    for f in "$dir"/munge/munged.log "$dir"/slurmctld.log "$dir"/slurmd.log; do
        [ -f "$f" ] && { echo "--- tail of $f"; tail -n 15 "$f"; }
    done >&2
}

stop_daemons() {
    # Cancel what is left, then stop slurmd, slurmctld, munged (reverse start order), each bounded.
    if [ ${#pids[@]} -ge 3 ]; then
        timeout 10 scancel --full --user="$(id -un)" > /dev/null 2>&1
    fi
    local i
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        local pid=${pids[$i]}
        kill -TERM "$pid" 2> /dev/null || continue
        local waited=0
        while kill -0 "$pid" 2> /dev/null && [ $waited -lt 100 ]; do
            sleep 0.1
            waited=$((waited + 1))
        done
        if kill -0 "$pid" 2> /dev/null; then
            echo "slurm_cluster.sh: ${names[$i]} (pid $pid) did not stop in 10 s; killing it" >&2
            kill -KILL "$pid" 2> /dev/null
        fi
        wait "$pid" 2> /dev/null
    done
    pids=()
}

cleanup() {
    stop_daemons
    if [ $keep -eq 1 ]; then
        echo "slurm_cluster.sh: kept $dir" >&2
    else
        rm -rf "$dir"
    fi
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# wait_for SECONDS DESCRIPTION COMMAND...: poll every 0.2 s until COMMAND succeeds.
wait_for() {
    local limit=$(($1 * 5)) what=$2 n=0
    shift 2
    until "$@" > /dev/null 2>&1; do
        n=$((n + 1))
        if [ $n -ge $limit ]; then
            log_tails
            skip "$what within $((limit / 5)) s"
        fi
        for pid in "${pids[@]}"; do
            kill -0 "$pid" 2> /dev/null || { log_tails; skip "a daemon (pid $pid) exited while waiting for: $what"; }
        done
        sleep 0.2
    done
}

# -- munge: a private daemon with its own key and socket ---------------------------------------------------
mkdir -p "$dir/munge" && chmod 755 "$dir/munge"
dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none || skip "cannot write a munge key"
chmod 400 "$dir/munge/munge.key"
socket="$dir/munge/munge.socket.2"
munged -F --key-file="$dir/munge/munge.key" --socket="$socket" --pid-file="$dir/munge/munged.pid" \
    --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed" > "$dir/munge/munged.out" 2>&1 &
pids+=($!)
names+=(munged)
munge_works() { munge -n -S "$socket" | unmunge -S "$socket"; }
wait_for 10 "munged did not answer" munge_works

# -- ports: 6817/6818 or the next free pair ---------------------------------------------------------------
port_busy() { (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null; }
port=${BALLAST_SLURM_PORT:-6817}
for _ in $(seq 1 50); do
    if ! port_busy "$port" && ! port_busy $((port + 1)); then break; fi
    port=$((port + 2))
done
port_busy "$port" && skip "no free port pair found from ${BALLAST_SLURM_PORT:-6817}"

# -- slurm.conf ---------------------------------------------------------------------------------------------
host=$(hostname -s)
user=$(id -un)
mkdir -p "$dir/state" "$dir/spool"
# The node line as slurmd sees the hardware (a mismatch would drain the node), without its UpTime line.
node=$(slurmd -C 2> /dev/null | grep '^NodeName=' | head -n 1)
[ -n "$node" ] || node="NodeName=$host CPUs=$(nproc) RealMemory=1000"
node=$(echo "$node" | sed -E "s/^NodeName=[^ ]+/NodeName=$host/")
cat > "$dir/slurm.conf" << EOF
# Written by tests/cluster/slurm_cluster.sh for a throw-away one-node cluster.
ClusterName=ballast
SlurmctldHost=$host
SlurmUser=$user
SlurmdUser=$user
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MailProg=/bin/true
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
$node State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$dir/slurm.conf"
export BALLAST_SLURM_DIR="$dir"

# -- the daemons, in the foreground of their own background processes ------------------------------------
slurmctld -D -i > "$dir/slurmctld.out" 2>&1 &
pids+=($!)
names+=(slurmctld)
wait_for 20 "slurmctld did not answer" scontrol ping
slurmd -D > "$dir/slurmd.out" 2>&1 &
pids+=($!)
names+=(slurmd)
node_idle() { [ "$(sinfo -h -n "$host" -o %T 2> /dev/null | head -n 1)" = idle ]; }
wait_for 30 "the node did not become idle" node_idle

# -- the command --------------------------------------------------------------------------------------------
timeout --kill-after=10 "$cmd_timeout" "$@"
rc=$?
if [ $rc -eq 124 ]; then
    echo "slurm_cluster.sh: '$*' did not finish within $cmd_timeout s" >&2
fi
if [ $rc -ne 0 ]; then
    log_tails
fi
exit $rc
