#!/usr/bin/env bash
# Build cm-sandbox (main.go beside this file) into the sandbox's cache:
#   $SANDBOX_CACHE/cert-manager-<version>/bin/cm-sandbox, marked done with .ok.
# usage: sandbox/certmanager/build.sh          (env: SANDBOX_CACHE, CERT_MANAGER_VERSION)
#
# Why a main of our own: the Go module proxy serves cert-manager's main module
# (github.com/cert-manager/cert-manager v1.21.0-v1.21.2, with pkg/ and internal/) but not the
# modules its commands live in (cmd/controller, cmd/webhook, cmd/cainjector: 404 for the list and
# for every version), so `go install .../cmd/controller@v1.21.1` cannot work here. main.go wires
# the served packages (controllers, issuers, webhook, CA injector) into one binary.
# Measured (2 cores, load ~9, warm module cache): go mod tidy 9 s, go build 8 min wall,
# 4 min user + 50 s sys CPU; binary 73 MB.
set -euo pipefail

: "${SANDBOX_CACHE:=$HOME/.cache/genai-stack}"
: "${CERT_MANAGER_VERSION:=v1.21.1}"   # the chart's appVersion (cluster_addons_cert_manager_chart_version)
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

export PATH="/usr/local/go/bin:$PATH"
export GOTOOLCHAIN=local CGO_ENABLED=0
export GOFLAGS="-buildvcs=false"
GO_P="${SANDBOX_GO_P:-2}"

dir="$SANDBOX_CACHE/cert-manager-$CERT_MANAGER_VERSION"
# The source is part of the key: a changed main.go is rebuilt.
key=$(cat "$here/main.go" "$here/build.sh" | sha256sum | cut -c1-16)
mkdir -p "$SANDBOX_CACHE"
exec 9>"$SANDBOX_CACHE/.build-cert-manager-$CERT_MANAGER_VERSION.lock"
flock 9
if [ -f "$dir/.ok" ] && [ "$(cat "$dir/.ok")" = "$key" ]; then
  echo "cert-manager $CERT_MANAGER_VERSION: cached in $dir"
  exit 0
fi
rm -rf "$dir/bin" "$dir/mod"
mkdir -p "$dir/bin" "$dir/mod"
cd "$dir/mod"
start=$(date +%s)
cp "$here/main.go" .
printf 'module github.com/cert-manager/cert-manager/genai-stack-sandbox\n\ngo 1.26.0\n\nrequire github.com/cert-manager/cert-manager %s\n' \
  "$CERT_MANAGER_VERSION" > go.mod
go mod tidy
go build -p "$GO_P" -trimpath -ldflags "-s -w" -o "$dir/bin/cm-sandbox" .
echo "$key" > "$dir/.ok"
echo "cert-manager $CERT_MANAGER_VERSION: built in $(( $(date +%s) - start )) s into $dir"
