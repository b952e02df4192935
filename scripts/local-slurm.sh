#!/usr/bin/env bash
# A throwaway Slurm cluster on this machine, for dfwe's Slurm tests and for trying
# `--executor slurm` without a real cluster: munged with its own key and socket, slurmctld, and
# two slurmd (nodes n1 and n2) on non-default ports. No systemd, no accounting daemon.
#
#   scripts/local-slurm.sh start [DIR]   # prints `export SLURM_CONF=…`; eval it
#   scripts/local-slurm.sh stop [DIR]
#
# Needs Debian's slurm-wlm and munge (apt-get install -y slurm-wlm munge), and root: slurmd
# runs jobs as their submitting user.
set -euo pipefail
cmd=${1:?usage: local-slurm.sh start|stop [DIR]}
dir=${2:-/tmp/dfwe-slurm}

stop() {
  for pidfile in "$dir"/slurmd-n1.pid "$dir"/slurmd-n2.pid "$dir"/slurmctld.pid "$dir"/munge/munged.pid; do
    [[ -f $pidfile ]] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  # Daemons write their pid files after forking: wait for them to go, so a restart finds the ports free.
  for _ in $(seq 50); do
    pgrep -f "$dir/slurm.conf" >/dev/null || pgrep -f "$dir/munge" >/dev/null || return 0
    sleep 0.1
  done
}

start() {
  stop
  rm -rf "$dir"
  mkdir -p "$dir"/{munge,state,spool}
  chmod 700 "$dir"/munge
  mungekey --create --keyfile="$dir/munge/munge.key" --force
  chmod 600 "$dir/munge/munge.key"
  munged --force --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed"
  local host cpus
  host=$(hostname -s)
  cpus=$(nproc)
  cat > "$dir/slurm.conf" <<CONF
ClusterName=dfwe-local
SlurmctldHost=$host
SlurmctldPort=16817
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerParameters=batch_sched_delay=0
DependencyParameters=kill_invalid_depend
MinJobAge=3600
ReturnToService=2
MpiDefault=none
NodeName=n1 NodeHostname=$host NodeAddr=127.0.0.1 Port=16821 CPUs=$cpus State=UNKNOWN
NodeName=n2 NodeHostname=$host NodeAddr=127.0.0.1 Port=16822 CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF=$dir/slurm.conf
  slurmctld -f "$SLURM_CONF"
  slurmd -f "$SLURM_CONF" -N n1
  slurmd -f "$SLURM_CONF" -N n2
  # Ready when both nodes take jobs.
  for _ in $(seq 100); do
    if [[ $(sinfo -h -N -t idle -o %N 2>/dev/null | sort -u | wc -l) -eq 2 ]]; then
      echo "export SLURM_CONF=$SLURM_CONF"
      return 0
    fi
    sleep 0.1
  done
  echo "local-slurm: the cluster did not come up; logs in $dir" >&2
  tail -n 20 "$dir"/*.log >&2 || true
  return 1
}

case $cmd in
  start) start ;;
  stop) stop ;;
  *) echo "usage: local-slurm.sh start|stop [DIR]" >&2; exit 2 ;;
esac
