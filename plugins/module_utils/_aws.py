# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to genai.stack; not a public API.

The AWS side of every genai.stack module: amazon.aws's AnsibleAWSModule for credentials,
profiles, endpoint and `fail_json_aws`, plus the retry policy shared by our clients and the base
of the service layers (_eks, _autoscaling, _cloudwatch, _ec2, _iam): each wraps its service's
calls so that a module sees one error type, AWSServiceError, and no botocore exception.
"""

from __future__ import annotations

import contextlib
import time

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports the missing library

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code, paginated_query_with_retries
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.genai.stack.plugins.module_utils._validation import (
    InputErrors, NamingAnsibleModule, fail_on_input_errors, fail_on_option,
)

# Throttling and 5xx are retried with jittered backoff by every call made with aws_retry=True.
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


def is_not_found(exc, codes):
    """True when `exc` (a botocore exception or an AWSServiceError) is a ClientError with one of
    `codes`, the not-found codes of the call that raised it (each service layer names its own)."""
    if isinstance(exc, AWSServiceError):
        exc = exc.exception
    return isinstance(exc, is_boto3_error_code(list(codes), exc))


class AWSServiceError(Exception):
    """A failed AWS call: `operation` says what was attempted, `exception` is botocore's error."""

    def __init__(self, operation, exception):
        super().__init__('Could not %s: %s' % (operation, exception))
        self.operation = operation
        self.exception = exception

    @property
    def code(self):
        return error_code(self.exception)

    @property
    def message(self):
        return 'Could not %s' % self.operation


class AWSService:
    """Calls of one AWS service through a client of GenaiAWSModule.client(): each retried with
    jittered backoff, and any botocore error raised again as AWSServiceError naming the operation."""

    def __init__(self, client, retry=None):
        self.client = client
        self.retry = retry or _default_retry()

    def call(self, operation, method, **kwargs):
        """`self.client.<method>(**kwargs)`, retried; `operation` names it in an error."""
        try:
            return getattr(self.client, method)(aws_retry=True, **kwargs)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise AWSServiceError(operation, exc) from exc

    def lookup(self, operation, method, not_found, **kwargs):
        """As call(), but None when the service answers with one of the `not_found` codes."""
        try:
            return self.call(operation, method, **kwargs)
        except AWSServiceError as exc:
            if is_not_found(exc, not_found):
                return None
            raise

    def paginate(self, operation, method, **kwargs):
        """Every page of `method` merged into one response (botocore's paginator), retried."""
        try:
            return paginated_query_with_retries(self.client, method, retry_decorator=self.retry, **kwargs)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise AWSServiceError(operation, exc) from exc


def wait_until(what, probe, timeout, interval=15, first_interval=2):
    """Poll `probe()` until it returns a truthy value and return that; TimeoutError naming `what`
    after `timeout` seconds. The delay starts at `first_interval` and doubles up to `interval`."""
    deadline = time.monotonic() + timeout
    delay = first_interval
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError('Timed out after %ss waiting for %s' % (timeout, what))
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, interval)


@contextlib.contextmanager
def _module_class(module_class):
    """amazon.aws (10.x) accepts a `module_class` setting but builds the AnsibleModule from
    AnsibleAWSModule.default_settings; set it there for the construction alone, then put it back."""
    settings = AnsibleAWSModule.default_settings
    before = settings['module_class']
    settings['module_class'] = module_class
    try:
        yield
    finally:
        settings['module_class'] = before


class GenaiAWSModule(AnsibleAWSModule):
    """AnsibleAWSModule with our conventions: retrying clients, input checks, failures of the
    service layers."""

    def __init__(self, **kwargs):
        # NamingAnsibleModule names the option at fault in argument validation errors.
        kwargs.setdefault('module_class', NamingAnsibleModule)
        with _module_class(kwargs['module_class']):
            super().__init__(**kwargs)

    def client(self, service, retry_decorator=None, **extra_params):  # pylint: disable=redefined-outer-name
        if retry_decorator is None:
            retry_decorator = _default_retry()
        return super().client(service, retry_decorator=retry_decorator, **extra_params)

    def fail_service(self, exc, msg=None, **extra):
        """Fail for an AWSServiceError with botocore's detail, as fail_json_aws does."""
        self.fail_json_aws(exc.exception, msg=msg or exc.message, **extra)

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
