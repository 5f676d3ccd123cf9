#!/usr/bin/env bash
# `helm lint` every chart of the repository (test fixtures and charts shipped inside roles).
# Helm templates are not YAML, so ansible-test's yamllint leaves them to this check.
set -euo pipefail
cd "$(dirname "$0")/../.."
HELM="${HELM_BIN:-helm}"
failed=0; count=0
while IFS= read -r chart; do
  dir="$(dirname "$chart")"
  # Subcharts are linted through their parent.
  [[ "$(basename "$(dirname "$dir")")" == charts && -f "$(dirname "$(dirname "$dir")")/Chart.yaml" ]] && continue
  count=$((count + 1))
  if ! out="$("$HELM" lint "$dir" 2>&1)"; then
    failed=$((failed + 1)); echo "helm lint $dir FAILED:"; echo "$out"
  fi
done < <(git ls-files -co --exclude-standard -- '*Chart.yaml' | grep -v '^collections/' | sort)
echo "helm lint: $count charts, $failed failed"
[[ $count -gt 0 && $failed -eq 0 ]]
