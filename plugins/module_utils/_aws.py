# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to genai.stack; not a public API.

The AWS side of every genai.stack module: amazon.aws's AnsibleAWSModule for credentials,
profiles, endpoint and `fail_json_aws`, plus the retry policy and waiting used by our modules.
"""

from __future__ import annotations

import time

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports the missing library

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.genai.stack.plugins.module_utils._validation import (
    InputErrors, NamingAnsibleModule, fail_on_input_errors, fail_on_option,
)

# Throttling and 5xx are retried with jittered backoff by every call made with aws_retry=True.
# ResourceInUseException is EKS's answer while a previous update of the node group still runs.
RETRY_CODES = ['ThrottlingException', 'Throttling', 'TooManyRequestsException', 'RequestLimitExceeded',
               'InternalFailure', 'InternalError', 'InternalServerError', 'ServerException',
               'ServiceUnavailable', 'ServiceUnavailableException']


def retry_decorator(retries=10, delay=1, max_delay=20):
    return AWSRetry.jittered_backoff(retries=retries, delay=delay, max_delay=max_delay,
                                     catch_extra_error_codes=RETRY_CODES)


# The client() parameter of the same name shadows it inside the class.
_default_retry = retry_decorator


def error_code(exc):
    """The service's error code of a botocore ClientError, or None."""
    try:
        return exc.response['Error']['Code']
    except (AttributeError, KeyError, TypeError):
        return None


def eks_problems(items, code_key='code', message_key='message'):
    """EKS's account of a failure, one line: an update's errors (errorCode, errorMessage) or a node
    group's health issues (code, message), each with the resources it names."""
    parts = []
    for item in items or []:
        text = '%s: %s' % (item.get(code_key) or 'Unknown', item.get(message_key) or '(no message)')
        if item.get('resourceIds'):
            text += ' (%s)' % ', '.join(item['resourceIds'])
        parts.append(text)
    return '; '.join(parts) or 'EKS gave no error detail'


def is_not_found(exc, codes=('ResourceNotFoundException', 'NotFoundException', 'NoSuchEntity',
                             'InvalidLaunchTemplateName.NotFoundException',
                             'InvalidLaunchTemplateId.NotFound', 'ParameterNotFound',
                             'InvalidLaunchTemplateId.Malformed', 'ValidationError')):
    return isinstance(exc, botocore.exceptions.ClientError) and error_code(exc) in codes


class GenaiAWSModule(AnsibleAWSModule):
    """AnsibleAWSModule with our conventions: retrying clients, input checks, waits."""

    def __init__(self, **kwargs):
        # amazon.aws builds its AnsibleModule from the class-wide default_settings (not from a
        # module_class argument), so the choice is made there, inside this module's own process.
        AnsibleAWSModule.default_settings['module_class'] = NamingAnsibleModule
        super().__init__(**kwargs)

    def client(self, service, retry_decorator=None, **extra_params):  # pylint: disable=redefined-outer-name
        if retry_decorator is None:
            retry_decorator = _default_retry()
        return super().client(service, retry_decorator=retry_decorator, **extra_params)

    def fail_input(self, errors):
        fail_on_input_errors(self, errors)

    def fail_option(self, option, text, **extra):
        """Fail for one option at fault; the result names it (`option`, `errors`) as data."""
        fail_on_option(self, option, text, **extra)

    def validate(self, validator, *args):
        """Run a validator that raises InputErrors; fail the module with every problem found."""
        try:
            return validator(*args)
        except InputErrors as exc:
            self.fail_input(exc)

    def wait_for_eks_update(self, eks, cluster_name, nodegroup_name, update_id, what, timeout):
        """Wait for an EKS node group update to end Successful; fail naming the update and EKS's
        errors when it ends Failed or Cancelled, and after `timeout` seconds."""
        def probe():
            try:
                update = eks.describe_update(name=cluster_name, nodegroupName=nodegroup_name, updateId=update_id,
                                             aws_retry=True)['update']
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
                self.fail_json_aws(exc, msg='Could not describe %s' % what)
            if update.get('status') in ('Failed', 'Cancelled'):
                errors = update.get('errors') or []
                self.fail_json(msg='%s ended %s: %s' % (what, update['status'], eks_problems(errors, 'errorCode', 'errorMessage')),
                               eks_update={'id': update_id, 'status': update['status'], 'type': update.get('type'), 'errors': errors})
            return update if update.get('status') == 'Successful' else None

        return self.wait_until('%s to finish' % what, probe, timeout)

    def wait_until(self, what, probe, timeout, interval=5, min_interval=0.5):
        """Poll `probe()` until it returns a truthy value; fail with `what` after `timeout` seconds.

        The poll interval starts at `min_interval`, so that a quick change is seen quickly, and doubles up to `interval`.
        """
        deadline = time.monotonic() + timeout
        delay = min_interval
        while True:
            result = probe()
            if result:
                return result
            if time.monotonic() >= deadline:
                self.fail_json(msg='Timed out after %ss waiting for %s' % (timeout, what))
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, interval)
