"""Shared by the sandbox's live tests: the environment check every test module needs."""
import os

import pytest


@pytest.fixture(scope="module")
def env(request):
    """os.environ, after checking the variables the test module lists in REQUIRED are set."""
    missing = [k for k in getattr(request.module, "REQUIRED", ()) if not os.environ.get(k)]
    if missing:
        pytest.fail(f"sandbox environment missing {missing}: run sandbox/sandboxctl up and source .sandbox/env")
    return os.environ
