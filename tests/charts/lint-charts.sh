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
  # A chart without usable defaults (the real arthur-genai-engine ships no values.yaml, and so does its
  # stand-in) is linted with each of its ci/*-values.yaml, as chart-testing does; others as they are.
  runs=()
  for values in "$dir"/ci/*-values.yaml; do [[ -f "$values" ]] && runs+=("$values"); done
  (( ${#runs[@]} )) || runs=("")
  for values in "${runs[@]}"; do
    count=$((count + 1))
    if ! out="$("$HELM" lint "$dir" ${values:+-f "$values"} 2>&1)"; then
      failed=$((failed + 1)); echo "helm lint $dir${values:+ -f $values} FAILED:"; echo "$out"
    fi
  done
done < <(git ls-files -co --exclude-standard -- '*Chart.yaml' | grep -v '^collections/' | sort)
echo "helm lint: $count chart lints, $failed failed"
[[ $count -gt 0 && $failed -eq 0 ]]
