#!/usr/bin/env bash
# Render the reference of every module, plugin and role of genai.stack from the code:
#   tests/docs/build-docs.sh [DEST]        (default: docs/reference; `make docs` runs this)
# antsibull-docs reads the collection as ansible-doc sees it (--use-current), so anything added
# under plugins/ or roles/*/meta/argument_specs.yml appears without touching this script.
# Output: simplified RST (antsibull-docs has no Markdown writer), one page per plugin or role
# plus index.rst; it renders on GitHub/GitLab without Sphinx.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEST="${1:-$ROOT/docs/reference}"
VENV_BIN="$ROOT/.venv/bin"

if [[ ! -x "$VENV_BIN/antsibull-docs" ]]; then
    echo "build-docs: $VENV_BIN/antsibull-docs is missing; run make venv (requirements-dev.txt pins it)" >&2
    exit 2
fi

work="$(mktemp -d)"
cfg="$(mktemp --suffix=.cfg)"
trap 'rm -rf "$work" "$cfg" "$work.log"' EXIT

# .collections/ansible_collections/genai/stack is a symlink to the checkout; the dependencies
# (amazon.aws doc fragments, ...) come from the `ansible` package in the venv's site-packages.
# antsibull-docs runs `ansible-doc --metadata-dump`, which must be the venv's; an empty ansible.cfg
# keeps the caller's configuration (roles_path, other collections) out of the reference.
PATH="$VENV_BIN:$PATH" \
ANSIBLE_COLLECTIONS_PATH="$ROOT/.collections" \
ANSIBLE_CONFIG="$cfg" \
ANSIBLE_NOCOLOR=1 \
    "$VENV_BIN/antsibull-docs" collection \
        --use-current \
        --squash-hierarchy \
        --output-format simplified-rst \
        --no-add-antsibull-docs-version \
        --fail-on-error \
        --dest-dir "$work" \
        genai.stack >"$work.log" 2>&1 || { cat "$work.log" >&2; exit 1; }

# Replace the destination as a whole so pages of removed plugins do not linger.
mkdir -p "$DEST"
find "$DEST" -mindepth 1 -delete
cp -R "$work"/. "$DEST"/
