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

# antsibull-docs writes links to other collections' plugins (seealso) as relative .rst files that
# only exist on a docsite holding every collection; point them at docs.ansible.com instead, so the
# reference (which ships in the tarball) has no link to a file it lacks (tests/unit/test_tarball.py).
"$VENV_BIN/python" - "$work" <<'PY'
import pathlib, re, sys
work = pathlib.Path(sys.argv[1])
link = re.compile(r'`((?:[a-z0-9_]+)\.(?:[a-z0-9_]+)\.[A-Za-z0-9_\\]+) <([a-z0-9_]+)_(module|lookup|filter|test|inventory|callback|connection)\.rst>`__')
def url(match):
    text, name, kind = match.groups()
    if (work / ('%s_%s.rst' % (name, kind))).exists():
        return match.group(0)
    namespace, collection = text.split('.')[:2]
    return '`%s <https://docs.ansible.com/ansible/latest/collections/%s/%s/%s_%s.html>`__' % (text, namespace, collection, name, kind)
for page in work.glob('*.rst'):
    text = page.read_text(encoding='utf-8')
    page.write_text(link.sub(url, text), encoding='utf-8')
PY

# Replace the destination as a whole so pages of removed plugins do not linger.
mkdir -p "$DEST"
find "$DEST" -mindepth 1 -delete
cp -R "$work"/. "$DEST"/
