#!/usr/bin/env bash
# The changelog can be released: fragments lint clean, changelogs/changelog.yaml is valid,
# `antsibull-changelog release` succeeds on a temporary copy of the collection (the real tree's
# fragments are never consumed), and every module, plugin and role is in the resulting notes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV_BIN="$ROOT/.venv/bin"
VERSION="$(sed -n 's/^version:[[:space:]]*//p' "$ROOT/galaxy.yml" | tr -d "\"'")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export PATH="$VENV_BIN:$PATH"

cd "$ROOT"
echo "check-changelog: antsibull-changelog lint (fragments in changelogs/fragments/)"
antsibull-changelog lint
antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml

# The copy must sit at ansible_collections/genai/stack so ansible-doc resolves it as genai.stack.
copy="$work/ansible_collections/genai/stack"
mkdir -p "$copy"
tar -C "$ROOT" -c \
    --exclude=./.git --exclude=./.venv --exclude=./.sandbox --exclude=./.collections \
    --exclude=./collections --exclude=./tests/output --exclude=./bench/results . | tar -C "$copy" -x

echo "check-changelog: antsibull-changelog release --version $VERSION in a temporary copy (about 5 s)"
(cd "$copy" && ANSIBLE_COLLECTIONS_PATH="$work" antsibull-changelog release --version "$VERSION" >"$work/release.log" 2>&1) || {
    cat "$work/release.log"
    echo "check-changelog: FAILED: antsibull-changelog release would fail; fix the fragments above."
    exit 1
}
grep -v 'no release_summary section' "$work/release.log" || true
"$VENV_BIN/python" "$ROOT/tests/docs/changelog_coverage.py" "$copy"
