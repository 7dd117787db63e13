#!/usr/bin/env bash
# A throw-away Slurm cluster on this machine, for fanout's Slurm tests (and for trying
# `--executor slurm` by hand): one node on localhost, or several nodes that are real hosts to
# Slurm (own network and hostname) sharing this file system, as cluster nodes share NFS.
# Debian packages: slurmd, slurmctld, slurm-client, munge.
#
#   .ci/slurm-cluster.sh up       install if missing, write the config, start munged, slurmctld and
#                                 slurmd(s) in the background, wait until every node is idle
#   .ci/slurm-cluster.sh down     cancel leftover jobs, stop the daemons by their recorded PIDs
#   .ci/slurm-cluster.sh status   recorded PIDs and sinfo
#
# Memory limits (--mem) are enforced by polling (jobacct_gather/linux + OverMemoryKill, 1 s):
# a task over its --mem is killed by slurmstepd, as on clusters without cgroup enforcement.
# Env: SLURM_NODES (default 1): 1 = one node "localhost" on 127.0.0.1; N > 1 = nodes n1..nN, each
#        slurmd in its own network and UTS namespace on a bridge (10.78.0.11 and up); CPUs and
#        memory are split between them. `up` restarts a cluster that has another node count.
#      SLURM_STATE_DIR (default /var/tmp/fanout-slurm): state, logs and pid files.
#      SLURM_REAL_MEM_MB (default 80% of MemTotal), SLURM_CPUS (default nproc): the whole cluster's.
# Root only. Never kills by name: only PIDs this script recorded, checked against /proc/PID/comm.
set -euo pipefail

STATE=${SLURM_STATE_DIR:-/var/tmp/fanout-slurm}
NODES=${SLURM_NODES:-1}
[[ $NODES =~ ^[1-9][0-9]?$ ]] || { echo "SLURM_NODES must be 1 to 99, not '$NODES'" >&2; exit 2; }
# slurmd drains a node that claims more memory than it has: claim 80% of what is there
REALMEM=${SLURM_REAL_MEM_MB:-$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)}
CPUS=${SLURM_CPUS:-$(nproc)}
CONF_DIR=/etc/slurm # Debian's compiled-in default: sbatch, squeue and srun find it without SLURM_CONF
CONF=$CONF_DIR/slurm.conf
PIDS=$STATE/pids
LOG=$STATE/log
BRIDGE=br-fanout
NET=10.78.0

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
  local c packages=()
  for c in slurmctld slurmd sbatch munged; do
    command -v "$c" >/dev/null || { packages=(slurmd slurmctld slurm-client munge); break; }
  done
  # several nodes need network namespaces, a bridge and veth pairs
  if [[ $NODES != 1 ]] && ! command -v ip >/dev/null; then packages+=(iproute2); fi
  [[ ${#packages[@]} == 0 ]] && return 0
  log "installing ${packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
}

node_names() { if [[ $NODES == 1 ]]; then echo localhost; else seq -f 'n%g' 1 "$NODES"; fi; }

write_config() {
  local ctld nodeline
  mkdir -p "$CONF_DIR" "$PIDS" "$LOG" "$STATE/ctld"
  rm -f "$CONF_DIR/cgroup.conf"
  if [[ $NODES == 1 ]]; then
    ctld=localhost
    nodeline="NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$REALMEM State=UNKNOWN"
  else
    # the controller listens on the bridge, where every node's namespace can reach it
    ctld="$(hostname)($NET.1)"
    nodeline="NodeName=n[1-$NODES] NodeAddr=$NET.[11-$((10 + NODES))] CPUs=$(((CPUS + NODES - 1) / NODES)) RealMemory=$((REALMEM / NODES)) State=UNKNOWN"
  fi
  cat >"$CONF" <<CONF
# written by fanout's .ci/slurm-cluster.sh: $NODES node(s)
ClusterName=fanout-ci
SlurmctldHost=$ctld
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool/%n
SlurmctldPidFile=$STATE/slurmctld.daemonpid
SlurmdPidFile=$STATE/slurmd-%n.daemonpid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd-%n.log
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
$nodeline
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

net_up() { # a bridge, and per node a network namespace with a veth on it
  [[ $NODES == 1 ]] && return 0
  local i n
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$NET.1/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
  fi
  for i in $(seq 1 "$NODES"); do
    n=n$i
    ip netns list | grep -qw "fanout-$n" && continue
    ip netns add "fanout-$n"
    ip link add "vf$n" type veth peer name eth0 netns "fanout-$n"
    ip link set "vf$n" master "$BRIDGE" up
    ip -n "fanout-$n" addr add "$NET.$((10 + i))/24" dev eth0
    ip -n "fanout-$n" link set eth0 up
    ip -n "fanout-$n" link set lo up
  done
}

net_down() {
  local ns
  command -v ip >/dev/null || return 0
  for ns in $(ip netns list 2>/dev/null | awk '/^fanout-n[0-9]+/ {print $1}'); do
    ip netns del "$ns"
    ip link del "vf${ns#fanout-}" 2>/dev/null || true
  done
  if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link del "$BRIDGE"; fi
}

all_alive() {
  local n
  alive munged munged && alive slurmctld slurmctld || return 1
  for n in $(node_names); do alive "slurmd-$n" slurmd || return 1; done
}

up() {
  [[ $(id -u) == 0 ]] || { log "must run as root"; exit 1; }
  local t0=$SECONDS idle=0 n
  install_packages
  mkdir -p "$PIDS" "$LOG"
  if [[ $(cat "$STATE/nodes" 2>/dev/null) == "$NODES" ]] && all_alive && sinfo -h >/dev/null 2>&1; then
    log "already up ($NODES node(s))"
    return 0
  fi
  stop_all
  rm -rf "$LOG" "$STATE/spool"
  mkdir -p "$LOG"
  for n in $(node_names); do mkdir -p "$STATE/spool/$n"; done
  write_config
  net_up
  start_munge
  # -D: foreground, so $! is the daemon; -c: forget jobs saved by an earlier cluster
  slurmctld -D -c -f "$CONF" >"$LOG/slurmctld.out" 2>&1 &
  echo $! >"$PIDS/slurmctld.pid"
  for n in $(node_names); do
    if [[ $NODES == 1 ]]; then
      slurmd -D -N "$n" -f "$CONF" >"$LOG/slurmd-$n.out" 2>&1 &
    else
      # nsenter rather than `ip netns exec`, which remounts /sys; nsenter, unshare and exec all
      # replace the process, so $! is slurmd itself. The munge socket is a file: shared.
      nsenter --net="/run/netns/fanout-$n" -- unshare --uts -- \
        sh -c "hostname $n && exec slurmd -D -N $n -f $CONF" >"$LOG/slurmd-$n.out" 2>&1 &
    fi
    echo $! >"$PIDS/slurmd-$n.pid"
  done
  echo "$NODES" >"$STATE/nodes"
  for _ in $(seq 1 300); do
    idle=$(sinfo -h -t idle -o %D 2>/dev/null | head -1)
    [[ ${idle:-0} == "$NODES" ]] && break
    all_alive || break
    sleep 0.1
  done
  if [[ ${idle:-0} != "$NODES" ]]; then
    log "the cluster did not become idle (${idle:-0} of $NODES node(s) idle)"
    tail -n 8 "$LOG"/*.out >&2 || true
    stop_all
    return 1
  fi
  log "up in $((SECONDS - t0)) s ($NODES node(s)); pids: $(cat "$PIDS"/*.pid | tr '\n' ' ')"
}

stop_all() {
  local f
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
  for f in "$PIDS"/slurmd*.pid; do
    [[ -e $f ]] || continue
    stop_one "$(basename "$f" .pid)" slurmd
  done
  stop_one slurmctld slurmctld
  stop_one munged munged
  net_down
  rm -f "$STATE/nodes"
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
