#!/usr/bin/env bash
# The node mirror: EKS node groups in the AWS emulator -> Kubernetes Nodes played by kwok
# (sandbox/kube/nodemirror.py, as user sandbox-nodemirror). Needs 10-aws and 20-kube.
set -euo pipefail

: "${REPO_ROOT:?}" "${SANDBOX_DIR:?}"
. "$REPO_ROOT/sandbox/kube/lib.sh"

K="$SANDBOX_DIR/kube"
RUN="$K/run"
LOGS="$SANDBOX_DIR/logs"
ENV_FILE="$SANDBOX_DIR/env.d/40-nodes.env"
PY="${SANDBOX_PYTHON:-python3}"

# The node mirror of each cluster: with one cluster, one mirror of every EKS cluster's node groups
# (the one-cluster sandbox's); in a fleet (SANDBOX_FLEET, 20-kube) one per cluster, each writing only
# its cluster's Nodes to that cluster's apiserver, the first also the declared TPU Nodes.
MIRROR="$REPO_ROOT/sandbox/kube/nodemirror.py"
FLEET=(${SANDBOX_FLEET:-sandbox})

# mirror_args NAME: the arguments cluster NAME's mirror runs with.
mirror_args() {
  local c
  c="$(cluster_dir "$1")"
  echo "--kubeconfig $c/nodemirror.kubeconfig"
  (( ${#FLEET[@]} == 1 )) && return 0
  if [[ "$1" == sandbox ]]; then echo "--cluster sandbox"; else echo "--cluster $1 --no-tpu"; fi
}

# mirror_up NAME: start cluster NAME's mirror, or restart one running with other arguments (the
# fleet grew: the first cluster's mirror now keeps to its own cluster) or older code (its files changed
# since it started: e.g. a Node annotation added); adds NAME to STARTED if so.
mirror_up() {
  local run args
  run="$(cluster_dir "$1")/run"
  args=$(mirror_args "$1" | tr '\n' ' ')
  if [[ "$(cmdline_of "$run/nodemirror.pid" || true)" == *" $MIRROR $args" ]] \
     && ! [[ "$MIRROR" -nt "$run/nodemirror.pid" || "$(dirname "$MIRROR")/nodeboot.py" -nt "$run/nodemirror.pid" ]]; then
    return 0
  fi
  [[ -f "$(cluster_dir "$1")/nodemirror.kubeconfig" ]] || { echo "40-nodes: 20-kube is not up for $1" >&2; return 1; }
  stop_proc nodemirror "$run"
  # shellcheck disable=SC2086 # the arguments are words without spaces
  start_proc nodemirror "$(cluster_logs "$1")" "$run" env SANDBOX_DIR="$SANDBOX_DIR" "$PY" "$MIRROR" $args
  STARTED+=("$1")
}

mirror_alive() {
  local run logs
  run="$(cluster_dir "$1")/run" logs="$(cluster_logs "$1")"
  alive "$run/nodemirror.pid" || { echo "40-nodes: nodemirror of $1 exited; see $logs/nodemirror.log" >&2
    tail -20 "$logs/nodemirror.log" >&2; return 1; }
}

up() {
  local name
  STARTED=()
  : "${AWS_ENDPOINT_URL:?40-nodes: AWS_ENDPOINT_URL unset (is 10-aws up?)}"
  [[ -f "$K/nodemirror.kubeconfig" ]] || { echo "40-nodes: 20-kube is not up" >&2; return 1; }
  mkdir -p "$RUN" "$LOGS"
  for name in "${FLEET[@]}"; do mirror_up "$name"; done
  if (( ${#STARTED[@]} )); then
    sleep 1
    for name in "${STARTED[@]}"; do mirror_alive "$name"; done
  fi
  cat >"$ENV_FILE" <<ENV
export SANDBOX_NODEMIRROR_USER="sandbox-nodemirror"
export SANDBOX_NODEMIRROR_LOG="$LOGS/nodemirror.log"
export SANDBOX_TPU_NODES_FILE="$SANDBOX_DIR/tpu-nodes.json"
ENV
}

down() {
  local name
  for name in $(extra_clusters); do stop_proc nodemirror "$(cluster_dir "$name")/run"; done
  stop_proc nodemirror "$RUN"
  rm -f "$ENV_FILE"
}

status() {
  local name run rc=0
  for name in sandbox $(extra_clusters); do
    run="$(cluster_dir "$name")/run"
    [[ "$name" == sandbox ]] && name="" || name=" of $name"
    if alive "$run/nodemirror.pid"; then
      echo "40-nodes: nodemirror$name running (pid $(cat "$run/nodemirror.pid"), RSS $(rss_of "$run/nodemirror.pid"))"
    else
      echo "40-nodes: nodemirror$name not running"; rc=1
    fi
  done
  return $rc
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
