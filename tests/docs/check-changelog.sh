#!/usr/bin/env bash
# The changelog is generated and can be released:
#  1. fragments and changelogs/changelog.yaml lint clean;
#  2. CHANGELOG.rst is exactly what `antsibull-changelog generate` makes from changelog.yaml
#     (nobody edits it by hand, and no release was left ungenerated);
#  3. when there are fragments (unreleased changes), galaxy.yml's version is not released yet and
#     `antsibull-changelog release` of it succeeds on a temporary copy (the real tree's fragments
#     are never consumed);
#  4. every module, plugin and role is named in the release notes (all releases plus the trial one).
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
    --exclude=./.git --exclude=./.venv --exclude='./.sandbox*' --exclude=./.collections \
    --exclude=./collections --exclude=./tests/output --exclude=./bench/results . | tar -C "$copy" -x

echo "check-changelog: CHANGELOG.rst is generated from changelogs/changelog.yaml"
(cd "$copy" && ANSIBLE_COLLECTIONS_PATH="$work" antsibull-changelog generate --output "$work/CHANGELOG.generated.rst" \
    --output-format rst >"$work/generate.log" 2>&1) || { cat "$work/generate.log"; echo "check-changelog: FAILED: generate"; exit 1; }
if ! diff -u "$ROOT/CHANGELOG.rst" "$work/CHANGELOG.generated.rst"; then
    echo "check-changelog: FAILED: CHANGELOG.rst differs from the generated one: run"
    echo "    .venv/bin/antsibull-changelog generate   (never edit CHANGELOG.rst by hand)"
    exit 1
fi

fragments="$(find changelogs/fragments -name '*.yml' -o -name '*.yaml' | wc -l)"
if [[ "$fragments" -gt 0 ]]; then
    if "$VENV_BIN/python" - "$VERSION" <<'PY'
import sys, yaml
releases = yaml.safe_load(open('changelogs/changelog.yaml', encoding='utf-8')).get('releases') or {}
sys.exit(0 if sys.argv[1] in releases else 1)
PY
    then
        echo "check-changelog: FAILED: $fragments fragment(s) in changelogs/fragments/ but galaxy.yml's version $VERSION"
        echo "    is already released: raise the version in galaxy.yml for the next release"
        exit 1
    fi
    echo "check-changelog: antsibull-changelog release --version $VERSION in a temporary copy ($fragments fragments)"
    (cd "$copy" && ANSIBLE_COLLECTIONS_PATH="$work" antsibull-changelog release --version "$VERSION" >"$work/release.log" 2>&1) || {
        cat "$work/release.log"
        echo "check-changelog: FAILED: antsibull-changelog release would fail; fix the fragments above."
        exit 1
    }
    grep -v 'no release_summary section' "$work/release.log" || true
else
    echo "check-changelog: no unreleased fragments"
    (cd "$copy" && ANSIBLE_COLLECTIONS_PATH="$work" antsibull-changelog generate --reload-plugins >/dev/null 2>&1) || true
fi
"$VENV_BIN/python" "$ROOT/tests/docs/changelog_coverage.py" "$copy"
