#!/usr/bin/env bash
# A throw-away one-node Slurm cluster on localhost, for fanout's Slurm tests (and for trying
# `--executor slurm` by hand). Debian packages: slurmd, slurmctld, slurm-client, munge.
#
#   .ci/slurm-cluster.sh up       install if missing, write the config, start munged, slurmctld and
#                                 slurmd in the background, wait until the node is idle
#   .ci/slurm-cluster.sh down     cancel leftover jobs, stop the daemons by their recorded PIDs
#   .ci/slurm-cluster.sh status   recorded PIDs and sinfo
#
# Memory limits (--mem) are enforced by polling (jobacct_gather/linux + OverMemoryKill, 1 s):
# a task over its --mem is killed by slurmstepd, as on clusters without cgroup enforcement.
# Env: SLURM_STATE_DIR (default /var/tmp/fanout-slurm): state, logs and pid files.
#      SLURM_REAL_MEM_MB (default 80% of MemTotal), SLURM_CPUS (default nproc).
# Root only. Never kills by name: only PIDs this script recorded, checked against /proc/PID/comm.
set -euo pipefail

STATE=${SLURM_STATE_DIR:-/var/tmp/fanout-slurm}
# slurmd drains a node that claims more memory than it has: claim 80% of what is there
REALMEM=${SLURM_REAL_MEM_MB:-$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)}
CPUS=${SLURM_CPUS:-$(nproc)}
CONF_DIR=/etc/slurm # Debian's compiled-in default: sbatch, squeue and srun find it without SLURM_CONF
CONF=$CONF_DIR/slurm.conf
PIDS=$STATE/pids
LOG=$STATE/log

log() { printf '[slurm-cluster %s] %s\n' "$(date +%T)" "$*" >&2; }

alive() { # alive NAME COMM: the PID recorded for NAME still runs COMM
  local f=$PIDS/$1.pid pid
  [[ -s $f ]] || return 1
  pid=$(<"$f")
  [[ -r /proc/$pid/comm ]] && [[ $(</proc/"$pid"/comm) == "$2" ]]
}

stop_one() { # stop_one NAME COMM: TERM, up to 10 s, then KILL; by recorded PID only
  local f=$PIDS/$1.pid pid
  [[ -s $f ]] || return 0
  pid=$(<"$f")
  if alive "$1" "$2"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do alive "$1" "$2" || break; sleep 0.1; done
    if alive "$1" "$2"; then
      log "$1 ($pid) ignored SIGTERM, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "stopped $1 (pid $pid)"
  fi
  rm -f "$f"
}

install_packages() {
  local c missing=0
  for c in slurmctld slurmd sbatch munged; do command -v "$c" >/dev/null || missing=1; done
  [[ $missing == 0 ]] && return 0
  log "installing slurmd slurmctld slurm-client munge"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurmd slurmctld slurm-client munge >/dev/null
}

write_config() {
  mkdir -p "$CONF_DIR" "$PIDS" "$LOG" "$STATE/ctld" "$STATE/spool"
  rm -f "$CONF_DIR/cgroup.conf"
  cat >"$CONF" <<CONF
# written by fanout's .ci/slurm-cluster.sh: one node on localhost
ClusterName=fanout-ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.daemonpid
SlurmdPidFile=$STATE/slurmd.daemonpid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ReturnToService=2
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# a job without --mem would otherwise be given the whole node's memory
DefMemPerCPU=512
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG/jobcomp.log
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
# finished jobs stay visible to squeue -t all for 10 minutes
MinJobAge=600
MaxArraySize=100001
MaxJobCount=200000
SchedulerParameters=sched_interval=1,bf_interval=1
InactiveLimit=0
KillWait=5
Waittime=0
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$REALMEM State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
}

start_munge() {
  alive munged munged && return 0
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
  if [[ ! -s /etc/munge/munge.key ]]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  # -F keeps munged in the foreground, so $! is munged itself
  setpriv --reuid=munge --regid=munge --init-groups -- /usr/sbin/munged -F >"$LOG/munged.out" 2>&1 &
  echo $! >"$PIDS/munged.pid"
  for _ in $(seq 1 50); do
    munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  log "munged did not come up"
  cat "$LOG/munged.out" >&2
  return 1
}

all_alive() { alive munged munged && alive slurmctld slurmctld && alive slurmd slurmd; }

up() {
  [[ $(id -u) == 0 ]] || { log "must run as root"; exit 1; }
  local t0=$SECONDS idle=0
  install_packages
  mkdir -p "$PIDS" "$LOG"
  if all_alive && sinfo -h >/dev/null 2>&1; then
    log "already up"
    return 0
  fi
  stop_all
  rm -rf "$LOG" && mkdir -p "$LOG" "$STATE/spool"
  write_config
  start_munge
  # -D: foreground, so $! is the daemon; -c: forget jobs saved by an earlier cluster
  slurmctld -D -c -f "$CONF" >"$LOG/slurmctld.out" 2>&1 &
  echo $! >"$PIDS/slurmctld.pid"
  slurmd -D -N localhost -f "$CONF" >"$LOG/slurmd.out" 2>&1 &
  echo $! >"$PIDS/slurmd.pid"
  for _ in $(seq 1 300); do
    idle=$(sinfo -h -t idle -o %D 2>/dev/null | head -1)
    [[ ${idle:-0} == 1 ]] && break
    all_alive || break
    sleep 0.1
  done
  if [[ ${idle:-0} != 1 ]]; then
    log "the node did not become idle"
    tail -n 8 "$LOG"/*.out >&2 || true
    stop_all
    return 1
  fi
  log "up in $((SECONDS - t0)) s; pids: $(cat "$PIDS"/*.pid | tr '\n' ' ')"
}

stop_all() {
  # cancel whatever is queued or running, so no slurmstepd outlives slurmd
  if alive slurmctld slurmctld; then
    local ids
    ids=$(squeue -h -o %A 2>/dev/null || true)
    if [[ -n $ids ]]; then
      # shellcheck disable=SC2086
      scancel $ids 2>/dev/null || true
      for _ in $(seq 1 100); do [[ -z $(squeue -h -o %A 2>/dev/null) ]] && break; sleep 0.1; done
    fi
  fi
  stop_one slurmd slurmd
  stop_one slurmctld slurmctld
  stop_one munged munged
}

status() {
  local f
  for f in "$PIDS"/*.pid; do
    [[ -e $f ]] || continue
    echo "$(basename "$f" .pid): pid $(<"$f") $(cat /proc/"$(<"$f")"/comm 2>/dev/null || echo '(not running)')"
  done
  sinfo 2>&1 || true
}

case ${1:-} in
  up) up ;;
  down) stop_all; log "down" ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
