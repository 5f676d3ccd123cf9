#!/usr/bin/env bash
# CloudWatch alarm evaluation (sandbox/cloudwatch/evaluator.py): moto keeps alarms and metric
# data but never evaluates an alarm; this process does, on a schedule, and applies the step-scaling
# policies the alarms name, so the Auto Scaling group (and through the node mirror, the Nodes)
# follows. Beside it, the node agents (sandbox/cloudwatch/publisher.py): the CloudWatch agent each
# EKS Node's user data starts and EC2's CPU metrics, published on the same clock, so the alarms get
# the data a real account's would. Needs 10-aws and 20-kube (the sandbox-agents kubeconfig of each
# cluster of the fleet).
set -euo pipefail

: "${REPO_ROOT:?}" "${SANDBOX_DIR:?}"
. "$REPO_ROOT/sandbox/kube/lib.sh"

D="$SANDBOX_DIR/cloudwatch"
RUN="$D/run"
LOGS="$SANDBOX_DIR/logs"
ENV_FILE="$SANDBOX_DIR/env.d/45-alarms.env"
PY="${SANDBOX_PYTHON:-python3}"

up() {
  : "${AWS_ENDPOINT_URL:?45-alarms: AWS_ENDPOINT_URL unset (is 10-aws up?)}"
  mkdir -p "$D" "$RUN" "$LOGS"
  # The clock starts as the wall clock; tests may run it faster (sandbox/cloudwatch/clock.py).
  [[ -f "$D/clock.json" ]] || "$PY" -c 'import sys; sys.path.insert(0, sys.argv[1]); from sandbox.cloudwatch import clock; clock.set_speed(sys.argv[2], 1)' \
    "$REPO_ROOT" "$D/clock.json"
  # The sandbox-agents kubeconfig of every cluster of the fleet (SANDBOX_FLEET, 20-kube), in order.
  local name kubeconfigs=()
  for name in ${SANDBOX_FLEET:-sandbox}; do
    kubeconfigs+=(--kubeconfig "$(cluster_dir "$name")/agents.kubeconfig")
    [[ -f "${kubeconfigs[-1]}" ]] || { echo "45-alarms: ${kubeconfigs[-1]} missing (is 20-kube up?)" >&2; return 1; }
  done
  if ! alive "$RUN/evaluator.pid"; then
    start_proc evaluator "$LOGS" "$RUN" env AWS_ENDPOINT_URL="$AWS_ENDPOINT_URL" AWS_REGION="${AWS_REGION:-us-east-2}" \
      "$PY" "$REPO_ROOT/sandbox/cloudwatch/evaluator.py" --clock "$D/clock.json" --history "$D/history.jsonl" \
      --interval "${SANDBOX_ALARM_INTERVAL:-10}"
    sleep 1
    alive "$RUN/evaluator.pid" || { echo "45-alarms: evaluator exited; see $LOGS/evaluator.log" >&2
      tail -20 "$LOGS/evaluator.log" >&2; return 1; }
  fi
  # A publisher reading other API servers than the fleet's (the fleet grew) is restarted.
  if [[ "$(cmdline_of "$RUN/agents.pid" || true)" != *" --clock $D/clock.json ${kubeconfigs[*]} --load "* ]]; then
    stop_proc agents "$RUN"
    start_proc agents "$LOGS" "$RUN" env AWS_ENDPOINT_URL="$AWS_ENDPOINT_URL" AWS_REGION="${AWS_REGION:-us-east-2}" \
      "$PY" "$REPO_ROOT/sandbox/cloudwatch/publisher.py" --clock "$D/clock.json" "${kubeconfigs[@]}" \
      --load "$D/load.json" --interval "${SANDBOX_ALARM_INTERVAL:-10}"
    sleep 1
    alive "$RUN/agents.pid" || { echo "45-alarms: node agents exited; see $LOGS/agents.log" >&2
      tail -20 "$LOGS/agents.log" >&2; return 1; }
  fi
  cat >"$ENV_FILE" <<ENV
export SANDBOX_CLOUDWATCH_CLOCK="$D/clock.json"
export SANDBOX_CLOUDWATCH_HISTORY="$D/history.jsonl"
export SANDBOX_CLOUDWATCH_LOG="$LOGS/evaluator.log"
export SANDBOX_CLOUDWATCH_LOAD="$D/load.json"
export SANDBOX_AGENTS_LOG="$LOGS/agents.log"
ENV
}

down() {
  stop_proc agents "$RUN"
  stop_proc evaluator "$RUN"
  rm -f "$ENV_FILE"
  rm -rf "$D"
}

status() {
  if alive "$RUN/evaluator.pid"; then
    echo "45-alarms: evaluator running (pid $(cat "$RUN/evaluator.pid"), RSS $(rss_of "$RUN/evaluator.pid"))"
  else
    echo "45-alarms: evaluator not running"; return 1
  fi
  if alive "$RUN/agents.pid"; then
    echo "45-alarms: node agents running (pid $(cat "$RUN/agents.pid"), RSS $(rss_of "$RUN/agents.pid"))"
  else
    echo "45-alarms: node agents not running"; return 1
  fi
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
