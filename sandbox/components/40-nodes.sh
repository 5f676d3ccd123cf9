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

up() {
  : "${AWS_ENDPOINT_URL:?40-nodes: AWS_ENDPOINT_URL unset (is 10-aws up?)}"
  [[ -f "$K/nodemirror.kubeconfig" ]] || { echo "40-nodes: 20-kube is not up" >&2; return 1; }
  mkdir -p "$RUN" "$LOGS"
  if ! alive "$RUN/nodemirror.pid"; then
    start_proc nodemirror "$LOGS" "$RUN" env SANDBOX_DIR="$SANDBOX_DIR" \
      "$PY" "$REPO_ROOT/sandbox/kube/nodemirror.py" --kubeconfig "$K/nodemirror.kubeconfig"
    sleep 1
    alive "$RUN/nodemirror.pid" || { echo "40-nodes: nodemirror exited; see $LOGS/nodemirror.log" >&2
      tail -20 "$LOGS/nodemirror.log" >&2; return 1; }
  fi
  cat >"$ENV_FILE" <<ENV
export SANDBOX_NODEMIRROR_USER="sandbox-nodemirror"
export SANDBOX_NODEMIRROR_LOG="$LOGS/nodemirror.log"
export SANDBOX_TPU_NODES_FILE="$SANDBOX_DIR/tpu-nodes.json"
ENV
}

down() {
  stop_proc nodemirror "$RUN"
  rm -f "$ENV_FILE"
}

status() {
  if alive "$RUN/nodemirror.pid"; then
    echo "40-nodes: nodemirror running (pid $(cat "$RUN/nodemirror.pid"), RSS $(rss_of "$RUN/nodemirror.pid"))"
  else
    echo "40-nodes: nodemirror not running"; return 1
  fi
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
