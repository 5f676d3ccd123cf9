#!/usr/bin/env bash
# OCI registry (distribution v3) on loopback, plain HTTP, htpasswd (bcrypt) auth; the test charts
# under tests/fixtures/charts/*/ are pushed to oci://$SANDBOX_REGISTRY/charts.
# A chart mirror at oci://$SANDBOX_REGISTRY/mirror holds one chart per pin of
# playbooks/vars/chart_pins.yml: the vendor's real package when GENAI_STACK_CHART_DIR has it (copied
# by playbooks/chart_mirror.yml), else the stand-in of the same name and version; the stand-ins'
# names are in $SANDBOX_DIR/registry/standins and SANDBOX_STANDIN_CHARTS.
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

# "<name> <version> <real package or stand-in directory>" for each pinned chart: the package from
# GENAI_STACK_CHART_DIR when it is there, else the fixture whose Chart.yaml has the same name and
# version ("-" when there is none).
mirror_plan() {
  "$PY" - "$REPO_ROOT" "${GENAI_STACK_CHART_DIR:-}" <<'PY'
import glob, os, sys
import yaml
root, chart_dir = sys.argv[1], sys.argv[2]
with open(os.path.join(root, 'playbooks/vars/chart_pins.yml')) as handle:
    pins = yaml.safe_load(handle)['genai_stack_chart_pins']
standins = {}
for chart_yaml in sorted(glob.glob(os.path.join(root, 'tests/fixtures/charts/*/Chart.yaml'))):
    with open(chart_yaml) as handle:
        meta = yaml.safe_load(handle)
    standins[(str(meta['name']), str(meta['version']))] = os.path.dirname(chart_yaml)
for pin in pins:
    name, version = str(pin['name']), str(pin['version'])
    real = os.path.join(chart_dir, '%s-%s.tgz' % (name, version)) if chart_dir else ''
    if real and os.path.isfile(real):
        print(name, version, 'real', real)
    else:
        print(name, version, 'standin', standins.get((name, version), '-'))
PY
}

# Fills oci://$REG/mirror. What was pushed for each chart is remembered in $R/mirror-pushed/<name>
# (the package's or the stand-in's sum), so a re-up with nothing changed pushes nothing and runs
# no playbook.
fill_mirror() {
  local plan name version kind src sum tmp real=() standin_names=() want=()
  # The sandbox keeps the chart directory it was filled from until GENAI_STACK_CHART_DIR says
  # otherwise (set and empty: stand-ins): a `make demo` typed after .ci/run must not swap the
  # vendors' charts for stand-ins under releases installed from them. sandboxctl reset carries it over.
  if [[ -z "${GENAI_STACK_CHART_DIR+set}" && -s "$R/chart-dir" ]]; then
    GENAI_STACK_CHART_DIR="$(cat "$R/chart-dir")"
    echo "30-registry: charts from $GENAI_STACK_CHART_DIR, as when this sandbox was filled (GENAI_STACK_CHART_DIR= for stand-ins only)"
  fi
  if [[ -n "${GENAI_STACK_CHART_DIR:-}" ]]; then
    # A misspelt directory would quietly leave every chart a stand-in: refuse it instead.
    [[ -d "$GENAI_STACK_CHART_DIR" ]] || { echo "30-registry: GENAI_STACK_CHART_DIR=$GENAI_STACK_CHART_DIR is not a directory" >&2; return 1; }
    GENAI_STACK_CHART_DIR="$(cd "$GENAI_STACK_CHART_DIR" && pwd)"
  fi
  plan="$(mirror_plan)" || return 1
  mkdir -p "$R/mirror-pushed"
  tmp="$(mktemp -d)"
  helm_env
  while read -r name version kind src; do
    if [[ "$kind" == real ]]; then
      sum="real $(sha256sum "$src" | cut -c1-64)"
      [[ "$(cat "$R/mirror-pushed/$name" 2>/dev/null)" == "$sum" ]] || real+=("$name")
      want+=("$name $sum")
      continue
    fi
    if [[ "$src" == - ]]; then
      echo "30-registry: no stand-in chart $name $version in tests/fixtures/charts and none in GENAI_STACK_CHART_DIR; the mirror lacks it" >&2
      continue
    fi
    standin_names+=("$name")
    sum="standin $(cd "$src" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64)"
    [[ "$(cat "$R/mirror-pushed/$name" 2>/dev/null)" == "$sum" ]] && continue
    "$HELM" package "$src" -d "$tmp/$name" >/dev/null
    "$HELM" push "$tmp/$name"/*.tgz "oci://127.0.0.1:$PORT/mirror" --plain-http >/dev/null 2>"$tmp/err" \
      || { cat "$tmp/err" >&2; rm -rf "$tmp"; return 1; }
    echo "$sum" >"$R/mirror-pushed/$name"
    echo "30-registry: mirror holds the stand-in $name $version"
  done <<<"$plan"
  if (( ${#real[@]} )); then
    # The vendors' packages go through the collection's own playbook, as a user's mirror would be
    # filled; overwrite replaces a stand-in pushed before under the same version. The password
    # goes in a private vars file, never on the command line.
    local ap="$REPO_ROOT/.venv/bin/ansible-playbook"
    [[ -x "$ap" ]] || { echo "30-registry: $ap missing (make venv) to copy the charts of GENAI_STACK_CHART_DIR" >&2; rm -rf "$tmp"; return 1; }
    (umask 077; printf '%s' "$PASSWORD" | "$PY" -c 'import json, sys; print(json.dumps(dict(
        genai_stack_chart_mirror=sys.argv[1], genai_stack_chart_mirror_username=sys.argv[2],
        genai_stack_chart_mirror_password=sys.stdin.read(), genai_stack_chart_mirror_plain_http=True,
        genai_stack_chart_dir=sys.argv[3], genai_stack_chart_mirror_charts=sys.argv[5:],
        genai_stack_chart_mirror_overwrite=True, genai_stack_chart_mirror_helm=sys.argv[4])))' \
      "oci://127.0.0.1:$PORT/mirror" "$USER_NAME" "$GENAI_STACK_CHART_DIR" "$HELM" "${real[@]}" >"$tmp/vars.json")
    (cd "$REPO_ROOT" && ANSIBLE_CONFIG="$REPO_ROOT/ansible.cfg" "$ap" -i localhost, playbooks/chart_mirror.yml \
      -e "@$tmp/vars.json" >"$LOGS/chart-mirror.log" 2>&1) \
      || { tail -30 "$LOGS/chart-mirror.log" >&2; echo "30-registry: playbooks/chart_mirror.yml failed (log: $LOGS/chart-mirror.log)" >&2
           rm -rf "$tmp"; return 1; }
    echo "30-registry: mirror holds the vendor's ${real[*]} from $GENAI_STACK_CHART_DIR"
  fi
  local entry
  for entry in "${want[@]}"; do echo "${entry#* }" >"$R/mirror-pushed/${entry%% *}"; done
  if (( ${#standin_names[@]} )); then printf '%s\n' "${standin_names[@]}"; fi >"$R/standins.tmp"
  mv "$R/standins.tmp" "$R/standins"
  printf '%s' "${GENAI_STACK_CHART_DIR:-}" >"$R/chart-dir"
  STANDINS="$(IFS=,; echo "${standin_names[*]}")"
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
  fill_mirror
  cat >"$ENV_FILE" <<ENV
export SANDBOX_REGISTRY="127.0.0.1:$PORT"
export SANDBOX_REGISTRY_USER="$USER_NAME"
export SANDBOX_REGISTRY_PASSWORD="$PASSWORD"
export SANDBOX_CHART_MIRROR="oci://127.0.0.1:$PORT/mirror"
export SANDBOX_STANDIN_CHARTS="$STANDINS"
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
