# Shared helpers of the Kubernetes-side sandbox components (sourced, not run).

# free_port: print a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
  "${SANDBOX_PYTHON:-python3}" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# port_of NAME FILE: the port stored under NAME in FILE, allocating and storing one if absent.
port_of() {
  local name="$1" file="$2" p
  if [[ -f "$file" ]] && p=$(grep -E "^$name=" "$file" | cut -d= -f2) && [[ -n "$p" ]]; then
    echo "$p"; return
  fi
  p=$(free_port)
  echo "$name=$p" >>"$file"
  echo "$p"
}

# alive PIDFILE: true when the process recorded in PIDFILE runs (and is the binary it names).
alive() {
  local pidfile="$1" pid
  [[ -f "$pidfile" ]] || return 1
  pid=$(cat "$pidfile")
  [[ -n "$pid" && -d /proc/$pid ]] || return 1
  # Guard against a recycled pid: the command line must still name what we started.
  grep -qa -- "$(basename "$pidfile" .pid)" "/proc/$pid/cmdline" 2>/dev/null
}

# start NAME LOGDIR RUNDIR CMD...: start CMD detached (own session), record its pid.
# The pid file is RUNDIR/NAME.pid; NAME must appear in CMD's command line (see alive).
start_proc() {
  local name="$1" logdir="$2" rundir="$3"; shift 3
  mkdir -p "$logdir" "$rundir"
  if alive "$rundir/$name.pid"; then return 0; fi
  setsid nohup "$@" >>"$logdir/$name.log" 2>&1 </dev/null &
  echo $! >"$rundir/$name.pid"
}

# stop_proc NAME RUNDIR: TERM, wait up to 10 s, then KILL; only the recorded pid.
stop_proc() {
  local name="$1" rundir="$2" pid i
  local pidfile="$rundir/$name.pid"
  if alive "$pidfile"; then
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do [[ -d /proc/$pid ]] || break; sleep 0.2; done
    [[ -d /proc/$pid ]] && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# wait_for DESCRIPTION SECONDS CMD...: retry CMD every 0.5 s until it succeeds.
wait_for() {
  local what="$1" secs="$2"; shift 2
  local deadline=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    if (( $(date +%s) >= deadline )); then
      echo "sandbox: timed out after ${secs}s waiting for $what" >&2
      return 1
    fi
    sleep 0.5
  done
}

# rss_of PIDFILE: resident set size in MiB.
rss_of() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 0
  awk '/VmRSS/ {printf "%d MiB", $2/1024}' "/proc/$pid/status" 2>/dev/null
}

# cmdline_of PIDFILE: the recorded process's command line, arguments joined by spaces (and one
# after the last), so a component can tell whether a running process has the arguments it wants.
cmdline_of() {
  alive "$1" && tr '\0' ' ' <"/proc/$(cat "$1")/cmdline"
}

# --- The fleet: one control plane per seeded EKS cluster (20-kube) ----------------------------
# fleet_names N: the EKS clusters the AWS emulator seeds for SANDBOX_EKS_CLUSTERS=N, in seeded order
# (sandbox/aws/seed.py cluster_names; tests/sandbox/unit/test_fleet_layout.py checks they agree).
fleet_names() {
  local i
  echo sandbox
  for ((i = 2; i <= $1; i++)); do echo "sandbox-$i"; done
}

# cluster_dir NAME: the state directory of cluster NAME's control plane. The first cluster keeps
# the one-cluster sandbox's layout ($SANDBOX_DIR/kube); each further one has kube/clusters/NAME.
cluster_dir() {
  if [[ "$1" == sandbox ]]; then echo "$SANDBOX_DIR/kube"; else echo "$SANDBOX_DIR/kube/clusters/$1"; fi
}

# cluster_logs NAME: where cluster NAME's processes log ($SANDBOX_DIR/logs for the first).
cluster_logs() {
  if [[ "$1" == sandbox ]]; then echo "$SANDBOX_DIR/logs"; else echo "$SANDBOX_DIR/logs/clusters/$1"; fi
}

# extra_clusters: the further clusters that have control plane state here, in seeded order.
extra_clusters() {
  local d
  for d in "$SANDBOX_DIR"/kube/clusters/*/; do if [[ -d "$d" ]]; then basename "$d"; fi; done | sort -V
}
