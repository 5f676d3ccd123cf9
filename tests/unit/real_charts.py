"""What the unit tests that render charts share: where the vendors' chart packages are (the folder
GENAI_STACK_CHART_DIR names, else ../shared/vendor-charts beside the checkout) and which helm renders them."""
import glob
import os
import shutil

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
CHART_DIR = os.environ.get('GENAI_STACK_CHART_DIR') or os.path.join(ROOT, '..', 'shared', 'vendor-charts')


def sandbox_cache():
    """Where the sandbox keeps its tools: the same rule as sandbox/sandboxctl (SANDBOX_CACHE, else
    $XDG_CACHE_HOME/genai-stack, else ~/.cache/genai-stack)."""
    return os.environ.get('SANDBOX_CACHE') or os.path.join(os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache'), 'genai-stack')


def helm_binary():
    """HELM_BIN, helm on PATH, or the newest helm among the sandbox's tools (sandbox_cache());
    None when there is none."""
    found = os.environ.get('HELM_BIN') or shutil.which('helm')
    if not found:
        candidates = sorted(glob.glob(os.path.join(sandbox_cache(), 'bin-*', 'helm')))
        found = candidates[-1] if candidates else None
    return found


def missing_helm(what):
    """No helm: the test skips saying what could not be rendered; in CI (CI set), where make demo
    has built the sandbox's tools before make test, it fails instead, so that no render is skipped
    unnoticed."""
    message = 'no helm binary (HELM_BIN, PATH or the sandbox tools in %s): %s' % (sandbox_cache(), what)
    if os.environ.get('CI'):
        pytest.fail(message)
    pytest.skip(message)


def require_helm(what):
    """The helm binary, or missing_helm(what)."""
    found = helm_binary()
    if not found:
        missing_helm(what)
    return found
