# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to genai.stack; not a public API.

Input validation that runs on the whole input before the first mutating call. Every problem is
reported with the option it belongs to, so a user sees all of them at once.
"""

from __future__ import annotations

import os
import re

from ansible.module_utils.basic import AnsibleModule

SUBNET_ID = re.compile(r'^subnet-[0-9a-f]{8}(?:[0-9a-f]{9})?$')
SECURITY_GROUP_ID = re.compile(r'^sg-[0-9a-f]{8}(?:[0-9a-f]{9})?$')
AMI_ID = re.compile(r'^ami-[0-9a-f]{8}(?:[0-9a-f]{9})?$')
IAM_ROLE_ARN = re.compile(r'^arn:aws(?:-cn|-us-gov|-iso|-iso-b)?:iam::\d{12}:role/[\w+=,.@/-]{1,512}$')
KMS_KEY = re.compile(r'^(?:arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(?:key|alias)/[\w/-]+|alias/[\w/-]+|[0-9a-f-]{36})$')
# EKS: "The name can contain only alphanumeric characters (case-sensitive), hyphens, and
# underscores. It must start with an alphanumeric character and can't be longer than 63."
EKS_NAME = re.compile(r'^[0-9A-Za-z][A-Za-z0-9_-]{0,62}$')
# Kubernetes label keys: optional DNS-subdomain prefix, then a name of at most 63 characters.
_LABEL_NAME = r'([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)'
LABEL_KEY = re.compile(r'^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?' + _LABEL_NAME + r'$')
LABEL_VALUE = re.compile(r'^(' + _LABEL_NAME + r')?$')
DNS_SUBDOMAIN = re.compile(r'^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$')
DNS_LABEL = re.compile(r'^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$')
TAINT_EFFECTS = ('NO_SCHEDULE', 'NO_EXECUTE', 'PREFER_NO_SCHEDULE')


class InputErrors(Exception):
    """All problems found in one input, each tied to an option."""

    def __init__(self, errors):
        self.errors = errors
        super().__init__(self.message)

    @property
    def message(self):
        return '; '.join('%s: %s' % (option, text) for option, text in self.errors)


class Checker:
    """Collects errors; `raise_if_any()` ends validation with all of them."""

    def __init__(self):
        self.errors = []

    def error(self, option, text):
        self.errors.append((option, text))

    def require(self, condition, option, text):
        if not condition:
            self.error(option, text)
        return bool(condition)

    def match(self, pattern, value, option, what):
        if value is None:
            return True
        if not isinstance(value, str) or not pattern.match(value):
            self.error(option, '%r is not %s' % (value, what))
            return False
        return True

    def in_range(self, value, option, low=None, high=None, what=None):
        """`what` says what the value is ("a percentage") in the message; `option` stays the bare path."""
        if value is None:
            return True
        if low is not None and value < low or high is not None and value > high:
            bounds = []
            if low is not None:
                bounds.append('>= %s' % low)
            if high is not None:
                bounds.append('<= %s' % high)
            self.error(option, '%smust be %s, got %s' % ('is %s and ' % what if what else '', ' and '.join(bounds), value))
            return False
        return True

    def labels(self, labels, option):
        for key, value in (labels or {}).items():
            self.match(LABEL_KEY, key, option, 'a valid Kubernetes label key')
            if not isinstance(value, str):
                self.error(option, 'value of %r must be a string, got %r' % (key, value))
            else:
                self.match(LABEL_VALUE, value, option, 'a valid Kubernetes label value (key %r)' % key)

    def raise_if_any(self):
        if self.errors:
            raise InputErrors(self.errors)


def fail_on_input_errors(module, errors, **extra):
    """One failure path for input errors: every message names its option.

    Besides the message, the result names the options as data, for playbooks and AWX to read
    without parsing text: `errors` lists `{option, message}` (the option as a path, such as
    `scaling_config.desired_size`), and `option` is set when a single option is at fault.
    """
    module.fail_json(msg='Invalid input: ' + errors.message, **input_error_fields(errors.errors, extra))


def fail_on_option(module, option, text, **extra):
    """Fail for one option at fault (a missing resource, a conflict with what exists): the
    message reads `<option>: <text>`, and `errors` and `option` carry it as data."""
    module.fail_json(msg='%s: %s' % (option, text), **input_error_fields([(option, text)], extra))


def input_error_fields(errors, extra=None):
    """The result fields that name the options of input errors, a list of (option, text)."""
    fields = dict(extra or {})
    fields['errors'] = [{'option': o, 'message': m} for o, m in errors]
    options = set(o for o, m in errors)
    if len(options) == 1:
        fields['option'] = options.pop()
    return fields


def user_path(value):
    """Expand `~` in a path given inside a dict or list option, where argspec `type='path'` cannot reach."""
    return os.path.expanduser(value)


class NamingAnsibleModule(AnsibleModule):
    """AnsibleModule whose argument validation failures always name the option.

    ansible-core converts a string given for a dict option with suboptions twice: while
    collecting no_log values (whose error, "dictionary requested, could not parse JSON or
    key=value", names nothing) and in the type check (whose error names the option). The first
    error recorded is the one reported, so the unnamed one wins; this reports the named one.
    """

    def fail_json(self, msg, **kwargs):  # pylint: disable=arguments-differ
        result = getattr(self, 'validation_result', None)
        errors = list(getattr(result, 'errors', None) or [])
        if errors and type(errors[0]).__name__ == 'NoLogError' and not getattr(self, '_genai_renamed', False):
            self._genai_renamed = True
            named = [e for e in errors[1:] if type(e).__name__ != 'NoLogError']
            if named:
                msg = named[0].args[0] if named[0].args else str(named[0])
        super().fail_json(msg=msg, **kwargs)

    def fail_option(self, option, text, **extra):
        """Fail for one option at fault; the result names it (`option`, `errors`) as data."""
        fail_on_option(self, option, text, **extra)
