"""The base of the service layers (_aws): one error type, per-call not-found codes, waits, and
GenaiAWSModule's AnsibleModule class without a lasting change to amazon.aws's settings."""
import botocore.exceptions
import pytest

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.genai.stack.plugins.module_utils import _aws
from ansible_collections.genai.stack.plugins.module_utils._aws import AWSService, AWSServiceError, is_not_found, wait_until

from fake_aws import FakeClient, client_error


def test_call_passes_aws_retry_and_returns_the_answer():
    client = FakeClient(describe_thing={'Thing': 1})
    assert AWSService(client).call('describe thing', 'describe_thing', Name='x') == {'Thing': 1}
    assert client.calls == [('describe_thing', {'Name': 'x'})]


@pytest.mark.parametrize('error', [client_error('AccessDenied'), botocore.exceptions.EndpointConnectionError(endpoint_url='http://x')])
def test_call_raises_one_error_type_naming_the_operation(error):
    with pytest.raises(AWSServiceError) as raised:
        AWSService(FakeClient(describe_thing=error)).call('describe thing x', 'describe_thing')
    assert raised.value.exception is error
    assert raised.value.operation == 'describe thing x'
    assert raised.value.message == 'Could not describe thing x'


def test_lookup_is_none_only_for_the_calls_own_not_found_codes():
    service = AWSService(FakeClient(get_a=client_error('NoSuchEntity'), get_b=client_error('ValidationError')))
    assert service.lookup('get a', 'get_a', ('NoSuchEntity',)) is None
    with pytest.raises(AWSServiceError) as raised:
        service.lookup('get b', 'get_b', ('NoSuchEntity',))
    assert raised.value.code == 'ValidationError'


def test_is_not_found_reads_botocore_and_service_errors():
    error = client_error('ResourceNotFoundException')
    assert is_not_found(error, ('ResourceNotFoundException',))
    assert is_not_found(AWSServiceError('x', error), ('ResourceNotFoundException',))
    assert not is_not_found(error, ('NoSuchEntity',))
    assert not is_not_found(ValueError('ResourceNotFoundException'), ('ResourceNotFoundException',))


def test_paginate_merges_pages_and_wraps_errors():
    client = FakeClient(list_things=[{'Things': [1, 2]}, {'Things': [3]}], list_other=client_error('AccessDenied'))
    service = AWSService(client)
    assert service.paginate('list things', 'list_things', Prefix='p') == {'Things': [1, 2, 3]}
    assert client.calls == [('list_things', {'Prefix': 'p'})]
    with pytest.raises(AWSServiceError):
        service.paginate('list other', 'list_other')


def test_wait_until_returns_the_first_truthy_answer(monkeypatch):
    slept = []
    monkeypatch.setattr(_aws.time, 'sleep', slept.append)
    answers = iter([None, None, None, 'done'])
    assert wait_until('x', lambda: next(answers), timeout=600, interval=15, first_interval=2) == 'done'
    assert slept == [2, 4, 8]


def test_wait_until_times_out_naming_what(monkeypatch):
    clock = iter(range(0, 1000, 10))
    monkeypatch.setattr(_aws.time, 'monotonic', lambda: next(clock))
    monkeypatch.setattr(_aws.time, 'sleep', lambda seconds: None)
    with pytest.raises(TimeoutError, match='^Timed out after 25s waiting for the thing$'):
        wait_until('the thing', lambda: None, timeout=25)


def test_module_class_is_set_only_while_the_module_is_built():
    before = AnsibleAWSModule.default_settings['module_class']
    with _aws._module_class(_aws.NamingAnsibleModule):
        assert AnsibleAWSModule.default_settings['module_class'] is _aws.NamingAnsibleModule
    assert AnsibleAWSModule.default_settings['module_class'] is before
    with pytest.raises(SystemExit):
        with _aws._module_class(_aws.NamingAnsibleModule):
            raise SystemExit(1)
    assert AnsibleAWSModule.default_settings['module_class'] is before
