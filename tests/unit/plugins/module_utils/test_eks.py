"""plan_label_update: the UpdateNodegroupConfig labels payload both node group modules send."""
import pytest

from ansible_collections.genai.stack.plugins.module_utils._eks import plan_label_update


@pytest.mark.parametrize('current, wanted, payload', [
    ({'a': '1'}, {'a': '1'}, None),
    (None, {}, None),
    ({}, {'a': '1'}, {'addOrUpdateLabels': {'a': '1'}}),
    ({'a': '1'}, {'a': '2'}, {'addOrUpdateLabels': {'a': '2'}}),
    ({'a': '1', 'b': '2', 'c': '3'}, {'a': '1'}, {'removeLabels': ['b', 'c']}),
    ({'b': '2', 'a': '1'}, {'a': '9', 'd': '4'}, {'addOrUpdateLabels': {'a': '9', 'd': '4'}, 'removeLabels': ['b']}),
])
def test_plan_label_update(current, wanted, payload):
    assert plan_label_update(current, wanted) == payload


# The EKS service layer ------------------------------------------------------------------------

import botocore.exceptions  # noqa: E402

from ansible_collections.genai.stack.plugins.module_utils import _aws  # noqa: E402
from ansible_collections.genai.stack.plugins.module_utils._aws import AWSServiceError  # noqa: E402
from ansible_collections.genai.stack.plugins.module_utils._eks import (  # noqa: E402
    EKS, EKSUpdateFailed, autoscaling_group_of, waiter_config, waiter_timed_out,
)

from fake_aws import FakeClient, client_error  # noqa: E402


def test_describe_nodegroup_is_none_when_eks_does_not_know_it():
    client = FakeClient(describe_nodegroup=client_error('ResourceNotFoundException'))
    assert EKS(client).describe_nodegroup('c', 'ng') is None
    assert client.calls == [('describe_nodegroup', {'clusterName': 'c', 'nodegroupName': 'ng'})]


def test_describe_cluster_fails_on_other_errors_naming_it():
    with pytest.raises(AWSServiceError, match="^Could not describe EKS cluster 'c'"):
        EKS(FakeClient(describe_cluster=client_error('AccessDeniedException'))).describe_cluster('c')


@pytest.mark.parametrize('nodegroup, group', [
    ({'resources': {'autoScalingGroups': [{'name': 'asg-1'}, {'name': 'asg-2'}]}}, 'asg-1'),
    ({'resources': {'autoScalingGroups': []}}, None),
    ({'status': 'CREATING'}, None),
    (None, None),
])
def test_autoscaling_group_of(nodegroup, group):
    assert autoscaling_group_of(nodegroup) == group


def test_wait_for_update_polls_until_successful(monkeypatch):
    monkeypatch.setattr(_aws.time, 'sleep', lambda seconds: None)
    statuses = iter(['InProgress', 'InProgress', 'Successful'])
    client = FakeClient(describe_update=lambda params: {'update': {'id': params['updateId'], 'status': next(statuses)}})
    update = EKS(client).wait_for_update('c', 'ng', 'u-1', 'label update u-1', 60)
    assert update['status'] == 'Successful' and len(client.calls) == 3
    assert client.calls[0] == ('describe_update', {'name': 'c', 'nodegroupName': 'ng', 'updateId': 'u-1'})


@pytest.mark.parametrize('status', ['Failed', 'Cancelled'])
def test_wait_for_update_raises_with_eks_errors(status):
    errors = [{'errorCode': 'NodeCreationFailure', 'errorMessage': 'no capacity', 'resourceIds': ['i-1']}]
    client = FakeClient(describe_update={'update': {'status': status, 'type': 'VersionUpdate', 'errors': errors}})
    with pytest.raises(EKSUpdateFailed) as raised:
        EKS(client).wait_for_update('c', 'ng', 'u-2', 'VersionUpdate u-2', 60)
    assert str(raised.value) == 'VersionUpdate u-2 ended %s: NodeCreationFailure: no capacity (i-1)' % status
    assert raised.value.result() == {'id': 'u-2', 'status': status, 'type': 'VersionUpdate', 'errors': errors}


@pytest.mark.parametrize('timeout, config', [
    (2, {'Delay': 2, 'MaxAttempts': 2}),
    (15, {'Delay': 15, 'MaxAttempts': 2}),
    (1200, {'Delay': 15, 'MaxAttempts': 81}),
])
def test_waiter_config_gives_up_after_the_timeout(timeout, config):
    assert waiter_config(timeout) == config


def test_waiter_timed_out_tells_a_timeout_from_a_failure_state():
    timeout = botocore.exceptions.WaiterError(name='NodegroupActive', reason='Max attempts exceeded', last_response={})
    failed = botocore.exceptions.WaiterError(name='NodegroupActive', reason='Waiter encountered a terminal failure state', last_response={})
    assert waiter_timed_out(timeout) and not waiter_timed_out(failed)
    assert not waiter_timed_out(TimeoutError('Max attempts exceeded'))


class _FailingModule:
    """What run_or_fail needs of a module: its two ways to fail, recorded."""

    def __init__(self):
        self.failed = []

    def fail_service(self, exc):
        self.failed.append(('service', exc.message))

    def fail_json(self, **kwargs):
        self.failed.append(('json', kwargs))


def test_run_or_fail_returns_the_result_or_ends_on_each_failure():
    from ansible_collections.genai.stack.plugins.module_utils import _eks  # pylint: disable=import-outside-toplevel
    module = _FailingModule()
    assert _eks.run_or_fail(module, lambda a, b: a + b, 1, 2) == 3 and module.failed == []

    def raise_(exc):
        raise exc
    _eks.run_or_fail(module, raise_, TimeoutError('Timed out after 5s waiting for x'))
    update = {'id': 'u1', 'status': 'Failed', 'type': 'ConfigUpdate', 'errors': []}
    _eks.run_or_fail(module, raise_, _eks.EKSUpdateFailed('label update', update))
    assert module.failed[0] == ('json', {'msg': 'Timed out after 5s waiting for x'})
    assert module.failed[1][1]['eks_update'] == {'id': 'u1', 'status': 'Failed', 'type': 'ConfigUpdate', 'errors': []}
    assert module.failed[1][1]['msg'].startswith('label update ended Failed')
