#!/usr/bin/env bash
# A one-node SLURM cluster on 127.0.0.1 for the tests: munged, slurmctld and slurmd, one
# partition "debug" of 2 CPUs, every file (config, state, logs, pid files) under one folder.
#   .ci/services/slurm.sh start DIR   start it; prints SLURM_CONF=DIR/slurm.conf
#   .ci/services/slurm.sh stop DIR    stop the daemons started by `start`, by their recorded pids
# Clients (sbatch, squeue, submitit) find the cluster through SLURM_CONF. Runs as root (slurmd
# starts jobs as the submitting user); exit code 3 when SLURM or munge is not installed.
set -euo pipefail

action=${1:?usage: slurm.sh start|stop DIR}
dir=$(realpath -m "${2:?usage: slurm.sh start|stop DIR}")
SBIN=${SLURM_SBIN:-/usr/sbin}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

stop_pid_file() {  # stop the process whose pid a file records, then wait for it to exit
  local file=$1 pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

stop() {
  stop_pid_file "$dir/slurmd.pid"
  stop_pid_file "$dir/slurmctld.pid"
  stop_pid_file "$dir/munged.pid"
}

start() {
  for bin in "$SBIN/munged" "$SBIN/slurmctld" "$SBIN/slurmd" /usr/bin/sbatch /usr/bin/sinfo; do
    if [ ! -x "$bin" ]; then
      echo "SLURM is not installed: $bin is missing (apt-get install slurm-wlm munge)" >&2
      exit 3
    fi
  done
  if [ "$(id -u)" -ne 0 ]; then
    echo "the one-node SLURM cluster needs root (slurmd starts jobs as their user)" >&2
    exit 3
  fi
  stop  # a previous cluster in the same folder
  mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
  chmod 700 "$dir/munge"
  # munge: its own key and socket, so it never touches a system munged.
  if [ ! -f "$dir/munge/munge.key" ]; then
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$dir/munge/munge.key"
  fi
  "$SBIN/munged" --force --key-file "$dir/munge/munge.key" --socket "$dir/munge/munge.socket" \
    --pid-file "$dir/munged.pid" --log-file "$dir/munged.log" --seed-file "$dir/munge/seed" \
    --num-threads 2
  local ctld_port slurmd_port
  ctld_port=$(free_port)
  slurmd_port=$(free_port)
  cat > "$dir/slurm.conf" <<CONF
ClusterName=ragtune-ci
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
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
MpiDefault=none
ReturnToService=2
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=600
KillWait=5
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory=4096 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=60 State=UP
CONF
  export SLURM_CONF="$dir/slurm.conf"
  "$SBIN/slurmctld" -f "$SLURM_CONF"
  "$SBIN/slurmd" -f "$SLURM_CONF" -N localhost
  # Ready when the node is idle in the partition (slurmd registered with slurmctld).
  for _ in $(seq 1 120); do
    if [ "$(sinfo -h -n localhost -o %t 2>/dev/null)" = "idle" ]; then
      echo "SLURM_CONF=$SLURM_CONF"
      return 0
    fi
    sleep 0.5
  done
  echo "SLURM did not become ready within 60 s; logs in $dir" >&2
  tail -n 20 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
  stop
  exit 1
}

case "$action" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: slurm.sh start|stop DIR" >&2; exit 2 ;;
esac
