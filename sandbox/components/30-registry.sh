#!/usr/bin/env bash
# OCI registry (distribution v3) on loopback, plain HTTP, htpasswd (bcrypt) auth; the test charts
# under tests/fixtures/charts/*/ are pushed to oci://$SANDBOX_REGISTRY/charts.
# State: $SANDBOX_DIR/registry (storage, htpasswd, generated password); helm's own files for the
# push live in $SANDBOX_DIR/registry/helm, never in the user's helm configuration.
set -euo pipefail

: "${REPO_ROOT:?}" "${SANDBOX_DIR:?}" "${SANDBOX_CACHE:?}"
. "$REPO_ROOT/sandbox/kube/lib.sh"
. "$REPO_ROOT/sandbox/kube/pins.sh"

R="$SANDBOX_DIR/registry"
RUN="$SANDBOX_DIR/kube/run"
LOGS="$SANDBOX_DIR/logs"
ENV_FILE="$SANDBOX_DIR/env.d/30-registry.env"
BIN="$(cache_dir registry)/bin/registry"
HELM="$(cache_dir helm3)/bin/helm"
PY="${SANDBOX_PYTHON:-python3}"
USER_NAME=sandbox

# password on stdin -> bcrypt hash ($2b$), via the bcrypt module or crypt(3). Cost 4 (the
# minimum): the registry checks the hash on every request, and at the default cost 12 each
# request took ~0.5 s here; the password is random and the registry listens on loopback only.
bcrypt_hash() {
  "$PY" -W ignore -c '
import sys
pw = sys.stdin.read()
try:
    import bcrypt
    print(bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=4)).decode())
except ImportError:
    import crypt
    h = crypt.crypt(pw, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    if not h or not h.startswith("$2"):
        sys.exit("no bcrypt: install the bcrypt package")
    print(h)
'
}

registry_ready() { # the API answers and insists on credentials
  [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/v2/")" == 401 ]]
}

helm_env() {
  export HELM_REGISTRY_CONFIG="$R/helm/registry.json" HELM_CONFIG_HOME="$R/helm/config" \
    HELM_CACHE_HOME="$R/helm/cache" HELM_DATA_HOME="$R/helm/data" \
    HELM_REPOSITORY_CONFIG="$R/helm/config/repositories.yaml"
}

push_charts() {
  local charts=() c name sum tmp
  for c in "$REPO_ROOT"/tests/fixtures/charts/*/; do
    [[ -f "$c/Chart.yaml" ]] && charts+=("${c%/}")
  done
  (( ${#charts[@]} )) || return 0
  helm_env
  mkdir -p "$R/helm" "$R/pushed"
  tmp="$(mktemp -d)"
  printf '%s' "$PASSWORD" | "$HELM" registry login "127.0.0.1:$PORT" --plain-http \
    -u "$USER_NAME" --password-stdin >"$tmp/err" 2>&1 || { cat "$tmp/err" >&2; rm -rf "$tmp"; return 1; }
  for c in "${charts[@]}"; do
    name="$(basename "$c")"
    # Push again only when the chart's files change (the registry's storage persists).
    sum="$(cd "$c" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64)"
    [[ "$(cat "$R/pushed/$name" 2>/dev/null)" == "$sum" ]] && continue
    "$HELM" package "$c" -d "$tmp/$name" >/dev/null
    "$HELM" push "$tmp/$name"/*.tgz "oci://127.0.0.1:$PORT/charts" --plain-http >/dev/null 2>"$tmp/err" \
      || { cat "$tmp/err" >&2; rm -rf "$tmp"; return 1; }
    echo "$sum" >"$R/pushed/$name"
    echo "30-registry: pushed chart $name as oci://127.0.0.1:$PORT/charts/$(basename "$tmp/$name"/*.tgz .tgz)"
  done
  rm -rf "$tmp"
}

up() {
  [[ -x "$BIN" && -x "$HELM" ]] || { echo "30-registry: binaries missing; run 05-tools first" >&2; return 1; }
  mkdir -p "$R/storage" "$RUN" "$LOGS"; chmod 700 "$R"
  PORT=$(port_of registry "$SANDBOX_DIR/kube/ports")
  if [[ ! -s "$R/password" ]]; then
    (umask 077; "$PY" -c 'import secrets; print(secrets.token_urlsafe(24))' >"$R/password")
    rm -f "$R/htpasswd"
  fi
  PASSWORD="$(cat "$R/password")"
  if [[ ! -s "$R/htpasswd" ]]; then
    (umask 077; echo "$USER_NAME:$(printf '%s' "$PASSWORD" | bcrypt_hash)" >"$R/htpasswd")
  fi
  if [[ ! -s "$R/config.yml" ]]; then
    (umask 077; cat >"$R/config.yml" <<YAML
version: 0.1
log:
  level: warn
  accesslog: {disabled: true}
storage:
  filesystem: {rootdirectory: $R/storage}
  delete: {enabled: true}
http:
  addr: 127.0.0.1:$PORT
  secret: $("$PY" -c 'import secrets; print(secrets.token_hex(16))')
auth:
  htpasswd: {realm: sandbox-registry, path: $R/htpasswd}
YAML
)
  fi
  OTEL_TRACES_EXPORTER=none OTEL_SDK_DISABLED=true start_proc registry "$LOGS" "$RUN" "$BIN" serve "$R/config.yml"
  wait_for registry 30 registry_ready || { tail -20 "$LOGS/registry.log" >&2; return 1; }
  push_charts
  cat >"$ENV_FILE" <<ENV
export SANDBOX_REGISTRY="127.0.0.1:$PORT"
export SANDBOX_REGISTRY_USER="$USER_NAME"
export SANDBOX_REGISTRY_PASSWORD="$PASSWORD"
ENV
  chmod 600 "$ENV_FILE"
}

down() {
  stop_proc registry "$RUN"
  rm -f "$ENV_FILE"
}

status() {
  if alive "$RUN/registry.pid"; then
    echo "30-registry: registry running (pid $(cat "$RUN/registry.pid"), RSS $(rss_of "$RUN/registry.pid"))"
  else
    echo "30-registry: registry not running"; return 1
  fi
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
