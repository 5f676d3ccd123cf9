# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to genai.stack; not a public API.

The Kubernetes side of genai.stack modules: the connection options shared with kubernetes.core,
an API client built by kubernetes.core's own client code, and helpers that compare and mask
Kubernetes objects (secret values are only ever shown as fingerprints: `Fingerprints`, keyed per run,
for anything a user sees of a Secret's values; `value_hash`, unkeyed, only for content that is not secret).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import importlib
import os
import re
import traceback

from ansible_collections.genai.stack.plugins.module_utils._kube_auth import KUBE_AUTH_ARGSPEC, auth_params, client_kwargs, secret_values
from ansible_collections.genai.stack.plugins.module_utils._validation import input_error_fields

# The kubernetes library takes a good part of a second to import; it is imported by the functions
# that talk to the API (get_client, get_object), so validation failures, helm-only paths and the
# module import itself do not pay for it.


class _MissingNotFoundError(Exception):
    """Stand-in for kubernetes' NotFoundError when the library is absent (nothing raises it)."""


def _kubernetes_import_error():
    """None when the kubernetes library imports, else the traceback of the failed import."""
    try:
        importlib.import_module('kubernetes.dynamic')
    except ImportError:
        return traceback.format_exc()
    return None


def _not_found_error():
    try:
        from kubernetes.dynamic.exceptions import NotFoundError
    except ImportError:
        return _MissingNotFoundError
    return NotFoundError


MASK = 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'
SECRET_DATA_KEY = re.compile(r'^[-._a-zA-Z0-9]{1,253}$')


def kube_argument_spec(**own):
    """The module's own options plus the shared connection options."""
    spec = copy.deepcopy(KUBE_AUTH_ARGSPEC)
    spec.update(own)
    return spec


def protect_kubeconfig(module):
    """A kubeconfig given as a dictionary holds credentials: they are masked in everything the
    module returns, as no_log options are."""
    module.no_log_values.update(secret_values(module.params.get('kubeconfig')))


def namespace_exists(client, name):
    """True or False; errors other than 404 propagate."""
    return get_object(client, 'v1', 'Namespace', name) is not None


def missing_namespace(module, client, name, option, hint):
    """Before a create into namespace `name`: the message naming `option` when the namespace does
    not exist, else None. In check mode it only warns (an earlier task of the same run, which did
    not run either, may create it); a credential that may not read namespaces only warns too.
    `client` is a callable returning the API client, so it is built only here."""
    try:
        if namespace_exists(client(), name):
            return None
    except Exception as exc:  # pylint: disable=broad-except
        module.warn('%s: could not check that namespace %r exists (%s)' % (option, name, api_error_message(exc)))
        return None
    text = '%s: %r does not exist; %s' % (option, name, hint)
    if module.check_mode:
        module.warn(text + '; a real run fails here unless an earlier task creates it')
        return None
    return text


def get_client(module):
    """A kubernetes.core K8SClient (dynamic client) for the module's connection options."""
    import_error = _kubernetes_import_error()
    if import_error:
        from ansible.module_utils.basic import missing_required_lib
        module.fail_json(msg=missing_required_lib('kubernetes'), exception=import_error)
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
    try:
        return get_api_client(**client_kwargs(auth_params(module.params)))
    except Exception as exc:  # pylint: disable=broad-except  # kubeconfig errors come in many types
        module.fail_json(msg='Could not create a Kubernetes client: %s' % exc, exception=traceback.format_exc(),
                         **input_error_fields([('kubeconfig', 'could not create a Kubernetes client: %s' % exc)]))


def get_object(client, api_version, kind, name, namespace=None):
    """The live object as a dict, or None when it does not exist (or its kind is not served)."""
    try:
        resource = client.resource(kind, api_version)
    except Exception as exc:  # pylint: disable=broad-except
        if type(exc).__name__ in ('ResourceNotFoundError', 'ResourceNotUniqueError'):
            return None
        raise
    try:
        if resource.namespaced:
            found = resource.get(name=name, namespace=namespace or 'default')
        else:
            found = resource.get(name=name)
    except _not_found_error():
        return None
    return found.to_dict()


def api_error_message(exc):
    """A short text for an API error: status, reason and the server's message, no request body."""
    status = getattr(exc, 'status', None)
    summary = getattr(exc, 'summary', None)
    if callable(summary):
        try:
            return summary()
        except Exception:  # pylint: disable=broad-except
            pass
    reason = getattr(exc, 'reason', None)
    if status or reason:
        return '%s %s' % (status or '', reason or '')
    return str(exc)


def value_hash(value):
    """`sha256:<16 hex>` of a value (bytes or str), unkeyed: for comparing content that is not secret
    (values files, manifests). A secret value's fingerprint is `Fingerprints.of`: an unkeyed hash of a
    human-chosen password can be tested against guesses offline by anyone who reads the output."""
    if isinstance(value, str):
        value = value.encode('utf-8')
    return 'sha256:' + hashlib.sha256(value).hexdigest()[:16]


def hashed(data):
    """A dict of values as unkeyed hashes, keys kept (see value_hash: not for secret values)."""
    return {key: value_hash(value) for key, value in sorted((data or {}).items())}


class Fingerprints:
    """Fingerprints of secret values: `hmac-sha256:<16 hex>`, an HMAC-SHA256 under a random key made
    for this run of the module and never returned or logged.

    Two fingerprints of one run compare (the before and after of a diff show which keys change), but
    a fingerprint cannot be tested against guessed values offline, and the same value has another
    fingerprint in every run, Secret and task, so logs kept by AWX or CI tell nothing about it.
    """

    PREFIX = 'hmac-sha256:'

    def __init__(self, key=None):
        self._key = key if key is not None else os.urandom(32)

    def of(self, value):
        if isinstance(value, str):
            value = value.encode('utf-8')
        return self.PREFIX + hmac.new(self._key, value, hashlib.sha256).hexdigest()[:16]

    def of_data(self, data):
        """A dict of secret values as fingerprints, keys kept, sorted."""
        return {key: self.of(value) for key, value in sorted((data or {}).items())}


def mask_secret(obj, fingerprints=None):
    """A copy of a Secret manifest whose `data` and `stringData` values are fingerprints: keyed
    (`Fingerprints.of`) when `fingerprints` is given, else unkeyed `value_hash` (kept for callers
    that do not pass one yet; they should)."""
    if not isinstance(obj, dict) or obj.get('kind') != 'Secret':
        return obj
    digest = fingerprints.of if fingerprints is not None else value_hash
    masked = copy.deepcopy(obj)
    for field in ('data', 'stringData'):
        if isinstance(masked.get(field), dict):
            masked[field] = {k: digest(str(v)) for k, v in masked[field].items()}
    return masked


# Kubernetes quantities, so that a manifest's `cpu: 0.5` matches the server's `500m`.
_QUANTITY = re.compile(r'^([+-]?[0-9.]+)([eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$')
_SUFFIX = {None: 1, 'n': 1e-9, 'u': 1e-6, 'm': 1e-3, 'k': 1e3, 'M': 1e6, 'G': 1e9, 'T': 1e12, 'P': 1e15,
           'E': 1e18, 'Ki': 2 ** 10, 'Mi': 2 ** 20, 'Gi': 2 ** 30, 'Ti': 2 ** 40, 'Pi': 2 ** 50, 'Ei': 2 ** 60}


def _quantity(value):
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    match = _QUANTITY.match(str(value))
    if not match:
        return None
    try:
        number = float(match.group(1))
    except ValueError:
        return None
    suffix = match.group(2)
    if suffix and suffix[0] in 'eE':
        return number * 10 ** int(suffix[1:])
    return number * _SUFFIX[suffix]


def scalars_equal(desired, live):
    if desired == live:
        return True
    if isinstance(desired, bool) or isinstance(live, bool):
        return False
    if str(desired) == str(live):
        return True
    left, right = _quantity(desired), _quantity(live)
    return left is not None and right is not None and abs(left - right) <= 1e-9 * max(abs(left), abs(right), 1)


def _empty(value):
    """A value the API server does not store: null, empty, or the zero value of a field it serializes with
    `omitempty` (false, 0): a manifest's `hostNetwork: false` or `initialDelaySeconds: 0` is absent live."""
    if value is None or value is False or value == {} or value == [] or value == '':
        return True
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0


def drifted_fields(desired, live, path=''):
    """Paths of the fields `desired` sets that differ in `live` (fields only `live` has are ignored).

    Lists are compared element by element and must have the same length; an empty, null, false or zero
    desired field matches an absent live field (the API server drops them).
    """
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return [] if _empty(desired) and _empty(live) else [path or '.']
        found = []
        for key, value in desired.items():
            sub = '%s.%s' % (path, key) if path else str(key)
            if key not in live:
                if not _empty(value):
                    found.append(sub)
                continue
            found.extend(drifted_fields(value, live[key], sub))
        return found
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return [] if _empty(desired) and _empty(live) else [path or '.']
        found = []
        for index, (d_item, l_item) in enumerate(zip(desired, live)):
            found.extend(drifted_fields(d_item, l_item, '%s[%d]' % (path, index)))
        return found
    if desired is None:
        return []
    return [] if scalars_equal(desired, live) else [path or '.']


def secret_drift(desired, live):
    """drifted_fields for a Secret, where `stringData` in a manifest is `data` (base64) live."""
    import base64
    desired = copy.deepcopy(desired)
    string_data = desired.pop('stringData', None) or {}
    if string_data:
        data = desired.setdefault('data', {}) or {}
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode('utf-8')).decode('ascii')
        desired['data'] = data
    return drifted_fields(desired, live)


def project(desired, live):
    """The part of `live` that `desired` sets (what a diff shows as the live side of a drift)."""
    if isinstance(desired, dict) and isinstance(live, dict):
        return {k: project(v, live[k]) for k, v in desired.items() if k in live}
    if isinstance(desired, list) and isinstance(live, list):
        return [project(d, lv) for d, lv in zip(desired, live)]
    return live
