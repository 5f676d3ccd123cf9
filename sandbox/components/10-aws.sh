#!/usr/bin/env bash
# The sandbox's AWS emulator: moto in server mode behind the project's journal / fault-injection
# middleware and patches (sandbox/aws/, sandbox/README.md "AWS emulator").
#   up      start it on a free loopback port (kept in $SANDBOX_DIR/aws/port), wait until healthy,
#           seed it, write $SANDBOX_DIR/env.d/10-aws.env; does nothing if already healthy
#   down    stop it
#   status  exit 0 iff healthy
set -euo pipefail

: "${REPO_ROOT:?}" "${SANDBOX_DIR:?}" "${SANDBOX_PYTHON:?}"
STATE="$SANDBOX_DIR/aws"
PID_FILE="$STATE/server.pid"
PORT_FILE="$STATE/port"
SEEDED_FILE="$STATE/seeded"
JOURNAL="$STATE/journal.jsonl"
LOG="$SANDBOX_DIR/logs/aws.log"
ENV_FILE="$SANDBOX_DIR/env.d/10-aws.env"
CLUSTERS="${SANDBOX_EKS_CLUSTERS:-1}"
# IAM enforcement (sandbox/aws/iam_enforce.py): strict (default) checks requests signed by IAM
# users' keys and refuses keys that are no IAM user's, except SANDBOX_AWS_ROOT_KEYS (the account
# root: the sandbox's own `testing`, PREFIX* for a suite's made-up keys); the env holds the keys of
# an administrator user, sandbox-admin. users lets any other key act as the account root; off: none.
export SANDBOX_AWS_IAM="${SANDBOX_AWS_IAM:-strict}"
export SANDBOX_AWS_ROOT_KEYS="${SANDBOX_AWS_ROOT_KEYS:-testing}"
ADMIN_FILE="$STATE/admin-keys"
ACCESS_FILE="$STATE/admin-access-entries"
export PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}"

port() { [[ -s "$PORT_FILE" ]] && cat "$PORT_FILE"; }

healthy() {
  local p
  p="$(port)" || return 1
  curl -fsS --max-time 2 "http://127.0.0.1:$p/_sandbox/health" >/dev/null 2>&1
}

# The pid in the pid file, if that process is still our server.
server_pid() {
  local pid
  [[ -s "$PID_FILE" ]] || return 1
  pid="$(cat "$PID_FILE")"
  [[ -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "sandbox.aws.server" \
    && echo "$pid"
}

port_free() {
  "$SANDBOX_PYTHON" - "$1" <<'EOF'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
EOF
}

pick_port() {
  "$SANDBOX_PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# strict: an IAM user with AdministratorAccess, made once per emulator process (state is in memory).
admin_keys() {
  local marker
  marker="pid=$(server_pid || true)"
  if [[ -s "$ADMIN_FILE" && "$(head -1 "$ADMIN_FILE")" == "$marker" ]]; then
    return 0
  fi
  {
    echo "$marker"
    AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-2 \
      "$SANDBOX_PYTHON" - "http://127.0.0.1:$(port)" <<'PY'
import sys
import boto3
iam = boto3.client("iam", endpoint_url=sys.argv[1])
iam.create_user(UserName="sandbox-admin")
iam.attach_user_policy(UserName="sandbox-admin", PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
key = iam.create_access_key(UserName="sandbox-admin")["AccessKey"]
print(key["AccessKeyId"])
print(key["SecretAccessKey"])
PY
  } >"$ADMIN_FILE.tmp" && mv "$ADMIN_FILE.tmp" "$ADMIN_FILE"
}

# strict: sandbox-admin (the env's identity) gets, on every seeded cluster, the access entry a cluster
# creator gets (AmazonEKSClusterAdminPolicy, cluster-wide), so EKS tokens it signs authenticate on the
# sandbox's kube-apiserver. Once per emulator process and cluster count (state is in memory).
admin_access_entries() {
  local marker
  [[ "$SANDBOX_AWS_IAM" == strict ]] || return 0
  marker="pid=$(server_pid || true) clusters=$CLUSTERS"
  if [[ -s "$ACCESS_FILE" && "$(cat "$ACCESS_FILE")" == "$marker" ]]; then
    return 0
  fi
  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-2 \
    "$SANDBOX_PYTHON" - "http://127.0.0.1:$(port)" "$CLUSTERS" <<'PY' >>"$LOG" 2>&1 \
    || { echo "aws: access entries for sandbox-admin failed; see $LOG" >&2; return 1; }
import sys
import boto3
from sandbox.aws.seed import cluster_names
endpoint, count = sys.argv[1], int(sys.argv[2])
internal = lambda request, **_: request.headers.__setitem__("x-sandbox-internal", "seed")  # noqa: E731
iam, eks = (boto3.client(s, endpoint_url=endpoint) for s in ("iam", "eks"))
for client in (iam, eks):
    client.meta.events.register("before-send.*.*", internal)
arn = iam.get_user(UserName="sandbox-admin")["User"]["Arn"]
for name in cluster_names(count):
    if arn not in eks.list_access_entries(clusterName=name)["accessEntries"]:
        eks.create_access_entry(clusterName=name, principalArn=arn)
    eks.associate_access_policy(clusterName=name, principalArn=arn, accessScope={"type": "cluster"},
                                policyArn="arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy")
    print(f"aws: access entry of {arn} on cluster {name}: AmazonEKSClusterAdminPolicy")
PY
  echo "$marker" >"$ACCESS_FILE"
}

write_env() {
  local p tmp key_id=testing secret=testing
  p="$(port)"
  tmp="$ENV_FILE.tmp"
  if [[ "$SANDBOX_AWS_IAM" == strict ]]; then
    admin_keys
    key_id="$(sed -n 2p "$ADMIN_FILE")"
    secret="$(sed -n 3p "$ADMIN_FILE")"
  fi
  cat >"$tmp" <<EOF
export AWS_ENDPOINT_URL=http://127.0.0.1:$p
export AWS_ACCESS_KEY_ID=$key_id
export AWS_SECRET_ACCESS_KEY=$secret
export SANDBOX_AWS_IAM=$SANDBOX_AWS_IAM
export SANDBOX_AWS_ROOT_KEYS="$SANDBOX_AWS_ROOT_KEYS"
export AWS_REGION=us-east-2
export AWS_DEFAULT_REGION=us-east-2
export SANDBOX_AWS_JOURNAL=$JOURNAL
EOF
  mv "$tmp" "$ENV_FILE"
}

seed() {
  local pid marker
  pid="$(server_pid || true)"
  marker="pid=$pid clusters=$CLUSTERS"
  if [[ -s "$SEEDED_FILE" && "$(cat "$SEEDED_FILE")" == "$marker" ]]; then
    return 0
  fi
  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
    "$SANDBOX_PYTHON" -m sandbox.aws.seed --endpoint "http://127.0.0.1:$(port)" --clusters "$CLUSTERS" \
    >>"$LOG" 2>&1 || { echo "aws: seeding failed; see $LOG" >&2; tail -20 "$LOG" >&2; return 1; }
  echo "$marker" >"$SEEDED_FILE"
}

stop() {
  local pid
  if pid="$(server_pid)"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PID_FILE" "$SEEDED_FILE" "$ADMIN_FILE" "$ACCESS_FILE"
}

up() {
  mkdir -p "$STATE" "$SANDBOX_DIR/logs" "$SANDBOX_DIR/env.d"
  if healthy && server_pid >/dev/null; then
    seed
    write_env
    admin_access_entries
    return 0
  fi
  stop
  local p
  p="$(port || true)"
  if [[ -z "$p" ]] || ! port_free "$p"; then
    p="$(pick_port)"
    echo "$p" >"$PORT_FILE"
  fi
  : >>"$JOURNAL"
  (
    cd "$REPO_ROOT"
    exec setsid "$SANDBOX_PYTHON" -m sandbox.aws.server --host 127.0.0.1 --port "$p" \
      --journal "$JOURNAL" </dev/null >>"$LOG" 2>&1
  ) &
  echo $! >"$PID_FILE"
  for _ in $(seq 1 300); do
    if healthy; then break; fi
    if ! kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
      echo "aws: the emulator exited during start; see $LOG" >&2
      tail -20 "$LOG" >&2
      return 1
    fi
    sleep 0.1
  done
  healthy || { echo "aws: not healthy after 30 s; see $LOG" >&2; return 1; }
  seed
  write_env
  admin_access_entries
  echo "aws: emulator on http://127.0.0.1:$p (pid $(cat "$PID_FILE"))"
}

case "${1:-}" in
  up) up ;;
  down) stop; rm -f "$ENV_FILE" ;;
  status)
    if healthy; then echo "aws: healthy on http://127.0.0.1:$(port)"; else echo "aws: down" >&2; exit 1; fi
    ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
