"""What the unit tests that render charts share: where the vendors' chart packages are (the folder
GENAI_STACK_CHART_DIR names, else ../shared/vendor-charts beside the checkout) and which helm renders them."""
import glob
import os
import shutil

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
CHART_DIR = os.environ.get('GENAI_STACK_CHART_DIR') or os.path.join(ROOT, '..', 'shared', 'vendor-charts')


def helm_binary():
    """HELM_BIN, helm on PATH, or the newest helm among the sandbox's tools (SANDBOX_CACHE or
    ~/.cache/genai-stack); None when there is none."""
    found = os.environ.get('HELM_BIN') or shutil.which('helm')
    if not found:
        cache = os.environ.get('SANDBOX_CACHE') or os.path.expanduser('~/.cache/genai-stack')
        candidates = sorted(glob.glob(os.path.join(cache, 'bin-*', 'helm')))
        found = candidates[-1] if candidates else None
    return found


def require_helm(what):
    """The helm binary, or the test skips saying what could not be rendered."""
    found = helm_binary()
    if not found:
        pytest.skip('no helm binary (HELM_BIN, PATH or the sandbox tools in ~/.cache/genai-stack): %s' % what)
    return found
