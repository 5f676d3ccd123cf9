#!/usr/bin/env bash
# Fails when docs/reference/ differs from what the code renders: a module's or plugin's
# DOCUMENTATION, or a role's meta/argument_specs.yml, changed (or one was added or removed)
# without regenerating the reference. Renders into a temporary directory; the tree is not touched.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
committed="$ROOT/docs/reference"
fresh="$(mktemp -d)"
trap 'rm -rf "$fresh"' EXIT

echo "check-docs: rendering the reference from the code into a temporary directory (antsibull-docs, about 10 s)"
"$ROOT/tests/docs/build-docs.sh" "$fresh"

if [[ ! -d "$committed" ]]; then
    echo "check-docs: FAILED: docs/reference/ does not exist; run make docs and commit docs/reference/."
    exit 1
fi
if ! stale="$(diff -rq "$committed" "$fresh")"; then
    echo "check-docs: these reference pages differ from what the code renders:"
    sed -e "s|$fresh|<generated>|g" -e "s|$ROOT/||g" <<<"$stale" | sed 's/^/  /'
    echo "check-docs: first lines of the difference (committed -> generated):"
    diff -ru "$committed" "$fresh" | sed -e "s|$fresh|<generated>|g" -e "s|$ROOT/||g" | head -n 40 || true
    echo "check-docs: FAILED: docs/reference/ is out of date with the code ($(wc -l <<<"$stale") file(s))."
    echo "check-docs: run make docs, review the result and commit docs/reference/ with your change."
    exit 1
fi
echo "check-docs: OK: docs/reference/ matches the code ($(find "$committed" -type f | wc -l) pages)"
