"""Drive a module's main() with arguments and read its JSON result (no process, no network)."""
import json

import pytest

from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes


class ModuleExit(Exception):
    def __init__(self, result, failed):
        super().__init__(result.get('msg'))
        self.result = result
        self.failed = failed


def _exit_json(self, **kwargs):
    kwargs.setdefault('changed', False)
    raise ModuleExit(kwargs, failed=False)


def _fail_json(self, **kwargs):
    kwargs['failed'] = True
    raise ModuleExit(kwargs, failed=True)


@pytest.fixture
def run_module(monkeypatch):
    """run_module(module, args) -> (result dict, failed bool)."""

    def runner(module, args, check_mode=False, diff=False):
        payload = dict(args)
        payload['_ansible_check_mode'] = check_mode
        payload['_ansible_diff'] = diff
        payload.setdefault('_ansible_remote_tmp', '/tmp')
        payload.setdefault('_ansible_keep_remote_files', False)
        monkeypatch.setattr(basic, '_ANSIBLE_ARGS', to_bytes(json.dumps({'ANSIBLE_MODULE_ARGS': payload})))
        monkeypatch.setattr(basic, '_ANSIBLE_PROFILE', 'legacy', raising=False)
        monkeypatch.setattr(basic.AnsibleModule, 'exit_json', _exit_json)
        monkeypatch.setattr(basic.AnsibleModule, 'fail_json', _fail_json)
        try:
            module.main()
        except ModuleExit as done:
            return done.result, done.failed
        raise AssertionError('module returned without exit_json or fail_json')

    return runner


@pytest.fixture
def offline_aws(monkeypatch):
    """moto in-process: no endpoint or profile from the environment, dummy credentials."""
    for var in ('AWS_ENDPOINT_URL', 'AWS_PROFILE', 'AWS_DEFAULT_PROFILE'):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv('AWS_ACCESS_KEY_ID', 'testing')
    monkeypatch.setenv('AWS_SECRET_ACCESS_KEY', 'testing')
