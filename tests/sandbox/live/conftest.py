"""Shared by the sandbox's live tests: the environment check every test module needs."""
import os

import pytest


def pytest_configure(config):
    # make test runs the tests marked so on the reliability suite's sandbox, alongside the main
    # sandbox's suites (Makefile: alongside); make integration alone runs them with the rest.
    config.addinivalue_line('markers', 'alongside: needs only a seeded sandbox and leaves nothing behind (refusals before any '
                            'change, private sandboxes); make test runs it on a sandbox of its own, off the critical path')


@pytest.fixture(scope="module")
def env(request):
    """os.environ, after checking the variables the test module lists in REQUIRED are set."""
    missing = [k for k in getattr(request.module, "REQUIRED", ()) if not os.environ.get(k)]
    if missing:
        pytest.fail(f"sandbox environment missing {missing}: run sandbox/sandboxctl up and source .sandbox/env")
    return os.environ
