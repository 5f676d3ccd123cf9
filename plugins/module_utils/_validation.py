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

from collections.abc import Mapping

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.validation import check_type_dict

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
# The taint effects of the EKS API (Kubernetes' NoSchedule, NoExecute, PreferNoSchedule).
TAINT_EFFECTS = ('NO_SCHEDULE', 'NO_EXECUTE', 'PREFER_NO_SCHEDULE')

# Kubernetes' rules for a qualified name (label and taint keys) and a label value (label and taint
# values): an optional prefix that is a DNS subdomain of at most 253 characters, a slash, then a name
# of at most 63 characters; a value of at most 63 characters, possibly empty.
_SUBDOMAIN = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')
_NAME_PART = re.compile(r'^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$')
_NAME_RULE = 'letters, digits, -, _ and ., starting and ending with a letter or digit'
NAME_MAX = 63
PREFIX_MAX = 253

# What a kubelet may put on its own Node (--node-labels): in the kubernetes.io and k8s.io
# namespaces only these keys, and keys under the kubelet.kubernetes.io and node.kubernetes.io
# namespaces (or their subdomains); it refuses to start with any other key of those namespaces.
# node-restriction.kubernetes.io/ is reserved for administrators: the NodeRestriction admission
# plugin refuses it from kubelets too. Source: the kubelet's well-known labels (k8s.io/kubelet
# pkg/apis) and https://kubernetes.io/docs/reference/access-authn-authz/admission-controllers/#noderestriction
KUBELET_LABELS = frozenset((
    'kubernetes.io/hostname', 'kubernetes.io/os', 'kubernetes.io/arch',
    'beta.kubernetes.io/os', 'beta.kubernetes.io/arch', 'beta.kubernetes.io/instance-type',
    'node.kubernetes.io/instance-type', 'topology.kubernetes.io/zone', 'topology.kubernetes.io/region',
    'failure-domain.beta.kubernetes.io/zone', 'failure-domain.beta.kubernetes.io/region',
))
KUBELET_LABEL_NAMESPACES = ('kubelet.kubernetes.io', 'node.kubernetes.io')
_RESERVED_NAMESPACES = ('kubernetes.io', 'k8s.io')


def _in_namespace(namespace, parent):
    return namespace == parent or namespace.endswith('.' + parent)


def qualified_name_problem(key):
    """Why `key` is not a valid Kubernetes label or taint key, or None."""
    if not isinstance(key, str) or not key:
        return 'must be a non-empty string'
    parts = key.split('/')
    if len(parts) > 2:
        return 'has more than one /'
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            return 'has an empty prefix before /'
        if len(prefix) > PREFIX_MAX:
            return 'has a prefix of %d characters (at most %d)' % (len(prefix), PREFIX_MAX)
        if not _SUBDOMAIN.match(prefix):
            return 'has a prefix %r that is not a DNS subdomain (lowercase letters, digits, - and .)' % prefix
    if not name:
        return 'has an empty name'
    if len(name) > NAME_MAX:
        return 'has a name of %d characters (at most %d)' % (len(name), NAME_MAX)
    if not _NAME_PART.match(name):
        return 'has a name %r with characters outside the rule (%s)' % (name, _NAME_RULE)
    return None


def label_value_problem(value):
    """Why `value` is not a valid Kubernetes label value, or None (the empty string is valid)."""
    if not isinstance(value, str):
        return 'must be a string, got %r' % (value,)
    if len(value) > NAME_MAX:
        return 'is %d characters long (at most %d)' % (len(value), NAME_MAX)
    if value and not _NAME_PART.match(value):
        return 'has characters outside the rule (%s)' % _NAME_RULE
    return None


def kubelet_label_problem(key):
    """Why a kubelet started with --node-labels holding `key` would refuse it, or None."""
    namespace = key.split('/', 1)[0] if '/' in key else ''
    if _in_namespace(namespace, 'node-restriction.kubernetes.io'):
        return ('uses the node-restriction.kubernetes.io/ prefix, which is reserved for administrators: the NodeRestriction '
                'admission plugin refuses it from a kubelet; label the Nodes through the API instead')
    if key in KUBELET_LABELS or any(_in_namespace(namespace, allowed) for allowed in KUBELET_LABEL_NAMESPACES):
        return None
    if any(_in_namespace(namespace, reserved) for reserved in _RESERVED_NAMESPACES):
        return ('is in the %s namespace, where the kubelet accepts in --node-labels only the keys under %s and %s; '
                'it would refuse to start' % (namespace, ', '.join(n + '/' for n in KUBELET_LABEL_NAMESPACES), ', '.join(sorted(KUBELET_LABELS))))
    return None


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

    def labels(self, labels, option, kubelet=False):
        """Kubernetes' rules for label keys and values; with `kubelet`, also what the kubelet
        refuses in --node-labels. Each error names the offending key."""
        for key, value in (labels or {}).items():
            problem = qualified_name_problem(key)
            if problem:
                self.error(option, 'key %r is not a valid Kubernetes label key: it %s' % (key, problem))
                continue
            if kubelet:
                problem = kubelet_label_problem(key)
                if problem:
                    self.error(option, 'key %r: it %s' % (key, problem))
            problem = label_value_problem(value)
            if problem:
                self.error(option, 'value of key %r is not a valid Kubernetes label value: it %s' % (key, problem))

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


def _unparsable_dict(value):
    """Whether ansible-core's dict conversion refuses `value` (a string it cannot read as JSON or
    key=value, or any other value that is not a mapping)."""
    if isinstance(value, Mapping):
        return False
    if not isinstance(value, str):
        return True
    try:
        check_type_dict(value)
    except TypeError:
        return True
    return False


def _dicts_given(option, value):
    """The mappings `value` gives for a dict option (or a list option of dicts) with suboptions, a
    string read as JSON or key=value; None when one of them cannot be read as a mapping."""
    if value is None:
        return []
    items = value if option.get('type') == 'list' and isinstance(value, list) else [value]
    if any(_unparsable_dict(item) for item in items):
        return None
    return [item if isinstance(item, Mapping) else check_type_dict(item) for item in items]


def _given(option_name, option, params):
    for name in [option_name] + list(option.get('aliases') or []):
        if name in params:
            return params[name]
    return None


def unreadable_dict_option(spec, params):
    """The first dict option (or list option of dicts) with suboptions that `params` give as
    something not readable as a mapping, as a spec and parameters that hold only the path to it,
    the option itself without its suboptions; None when there is none.

    ansible-core reads such a value twice: first to collect the suboptions' no_log values, in an
    error that names no option ("dictionary requested, could not parse JSON or key=value"), then in
    its type check, which names the option. Without the suboptions only the second reading is left.
    """
    for name, option in spec.items():
        if option.get('options') is None or option.get('type') not in ('dict', 'list'):
            continue
        value = _given(name, option, params)
        dicts = _dicts_given(option, value)
        if dicts is None:
            return {name: dict((k, v) for k, v in option.items() if k != 'options')}, {name: value}
        for item in dicts:
            found = unreadable_dict_option(option['options'], item)
            if found:
                narrowed = dict(option, options=found[0])
                return {name: narrowed}, {name: [found[1]] if option.get('type') == 'list' else found[1]}
    return None


def option_naming_message(spec, params):
    """ansible-core's own message, from its public validator, for the first dict option that
    `params` give as something not readable as a mapping (see unreadable_dict_option): it names
    the option. None when every such option is readable."""
    found = unreadable_dict_option(spec, params)
    if not found:
        return None
    messages = ArgumentSpecValidator(found[0]).validate(found[1]).error_messages
    return messages[0] if messages else None


class NamingAnsibleModule(AnsibleModule):
    """AnsibleModule whose argument validation failures always name the option.

    Given a string for a dict option with suboptions, ansible-core reports "dictionary requested,
    could not parse JSON or key=value", which names nothing (see spec_without_unreadable_suboptions).
    When the module fails while it is being built, its own argument spec and parameters are checked
    for such an option with ansible-core's public validator, and the failure reports the message
    that names it.
    """

    def __init__(self, *args, **kwargs):
        self._genai_building = True
        super().__init__(*args, **kwargs)
        self._genai_building = False

    def fail_json(self, msg, **kwargs):  # pylint: disable=arguments-differ
        if getattr(self, '_genai_building', False) and isinstance(getattr(self, 'params', None), dict):
            self._genai_building = False
            msg = option_naming_message(self.argument_spec, self.params) or msg
        super().fail_json(msg=msg, **kwargs)

    def fail_option(self, option, text, **extra):
        """Fail for one option at fault; the result names it (`option`, `errors`) as data."""
        fail_on_option(self, option, text, **extra)
