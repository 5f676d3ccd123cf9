"""The plugins speak of AWS, Kubernetes and Helm as users meet them: no word of the project's test
sandbox (its name, its AWS emulator, moto, kwok) in plugins/, neither in code, comments nor the
documentation ansible-doc shows (examples use a user's cluster name, not the sandbox's)."""
import os
import re

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
SANDBOX_WORDS = re.compile(r'\b(sandbox\w*|emulator\w*|moto|kwok)\b', re.I)


def _plugin_files():
    for folder, _dirs, files in os.walk(os.path.join(ROOT, 'plugins')):
        for name in sorted(files):
            if name.endswith(('.py', '.yml', '.yaml')):
                yield os.path.join(folder, name)


def sandbox_mentions(text):
    """(line number, line) of every line that names the sandbox."""
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1) if SANDBOX_WORDS.search(line)]


@pytest.mark.parametrize('text,expected', [
    ('# moto (before the patch) answers without PolicyARN', [1]),
    ('    cluster_name: sandbox', [1]),
    ('ok\nthe emulator echoes\nthe Sandboxed run', [2, 3]),
    ('kwok nodes', [1]),
    ('motors, emulsions and kwokka', []),
    ('a prod-eks cluster, promoted', []),
])
def test_the_check_finds_the_words(text, expected):
    assert [number for number, _line in sandbox_mentions(text)] == expected


def test_plugins_do_not_speak_of_the_sandbox():
    files = list(_plugin_files())
    assert len(files) > 10, files
    found = {}
    for path in files:
        with open(path, encoding='utf-8') as handle:
            mentions = sandbox_mentions(handle.read())
        if mentions:
            found[os.path.relpath(path, ROOT)] = mentions
    assert found == {}, found
