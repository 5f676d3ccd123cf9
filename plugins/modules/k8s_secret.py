#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_secret
short_description: Kubernetes Secrets from literals, files or AWS Secrets Manager, with format checks
version_added: 0.1.0
author:
  - genai.stack maintainers (@genai-stack)
description:
  - Creates, updates or deletes an Opaque, docker-registry or TLS C(Secret), or an External Secrets Operator
    C(ExternalSecret) that makes the operator create the Secret.
  - The data comes from O(aws_secret) (an AWS Secrets Manager secret), O(data_files), O(data) (base64-encoded
    values, as in a Secret's C(data)), O(string_data) (plain text, as in a Secret's C(stringData)),
    O(docker_registry) or O(tls). When several sources give the same key, the later one in that list wins, except
    that a key may not be in both O(data) and O(string_data).
  - Since 0.2.0 O(data) has the meaning it has in Kubernetes and in M(kubernetes.core.k8s) (base64-encoded values);
    before, it took plain text, which is now O(string_data). A value of O(data) that is not valid base64 fails the
    task naming C(data.<key>) and pointing to O(string_data), before anything is read or written.
  - The whole input, including the format checks O(required_keys), O(min_length) and O(format), is validated
    before the first request that changes anything; every problem is reported at once, naming its option and
    never showing a value.
  - The live Secret is read first and compared on its decoded values; nothing is written, not even a no-op
    update, when it already matches.
  - Results show the keys, never a value. With C(--diff), the diff and RV(secret.hashes) show a fingerprint of each
    value, an HMAC-SHA256 under a random key made for this run and never shown; fingerprints of one result compare
    (which keys change), but cannot be tested against guessed values, nor matched across runs.
  - The Secret's data is exactly the given keys (keys not given are removed); O(labels) and O(annotations) are
    added or updated and other labels and annotations are left alone. A change of O(type), or a change of an
    immutable Secret, deletes and recreates the Secret because Kubernetes refuses to update either.
extends_documentation_fragment:
  - genai.stack.attributes
  - genai.stack.kube
  - genai.stack.attributes.actiongroup_k8s
options:
  name:
    description: Name of the Secret (and of the ExternalSecret with O(external_secret)).
    type: str
    required: true
  namespace:
    description:
      - Namespace of the Secret. It must exist; before a create the module reads it and fails naming this option when it
        does not (in check mode it only warns, since an earlier task of the same run may create it).
    type: str
    default: default
  state:
    description: Whether the Secret (or ExternalSecret) should exist.
    type: str
    choices: [present, absent]
    default: present
  type:
    description:
      - The Secret's type.
      - Defaults to V(kubernetes.io/dockerconfigjson) with O(docker_registry), V(kubernetes.io/tls) with O(tls)
        and V(Opaque) otherwise. Any other type (for example V(kubernetes.io/basic-auth)) can be given with
        O(data).
    type: str
  data:
    description:
      - Keys and base64-encoded values, as in a Kubernetes Secret's C(data) (standard alphabet with padding; line breaks
        are ignored). Use it for binary values or values kept base64-encoded (the content of a C(.b64) file, a Secret's
        C(data) copied from a manifest).
      - A value that is not valid base64 fails naming C(data.<key>); plain text goes in O(string_data).
      - A value that is valid base64 but decodes to bytes that are not UTF-8 text is written, with a warning naming
        C(data.<key>), because plain text can happen to be valid base64 (for example a 16-character password of letters and
        digits), and is then decoded to other bytes.
      - Changed in 0.2.0 (before, plain text; see the changelog's porting guide).
    type: dict
  string_data:
    description:
      - Keys and plain text values, as in a Kubernetes Secret's C(stringData); the module encodes them. Numbers are
        written as their decimal text.
      - A key may not be in both O(data) and O(string_data).
    type: dict
    version_added: 0.2.0
  data_files:
    description:
      - Keys and paths of files on the controller whose content (bytes, unchanged) becomes the value.
    type: dict
  aws_secret:
    description:
      - An AWS Secrets Manager secret whose value is a JSON object; each of its keys becomes a key of the Secret
        (string values as they are, other values as JSON text).
      - Credentials come from the environment or O(aws_secret.profile), as for amazon.aws modules.
    type: dict
    suboptions:
      secret_id:
        description: Name or ARN of the secret.
        type: str
        required: true
      version_stage:
        description: Version stage to read.
        type: str
        default: AWSCURRENT
      region:
        description: AWS region; E(AWS_REGION) or E(AWS_DEFAULT_REGION) when not given.
        type: str
      endpoint_url:
        description: Endpoint of Secrets Manager; E(AWS_ENDPOINT_URL) when not given.
        type: str
      profile:
        description: AWS profile to use; E(AWS_PROFILE) when not given.
        type: str
  docker_registry:
    description: Credentials of a container registry, written as a V(kubernetes.io/dockerconfigjson) Secret.
    type: dict
    suboptions:
      server:
        description: Registry host (for example V(ghcr.io)).
        type: str
        required: true
      username:
        description: User name.
        type: str
        required: true
      password:
        description: Password or token.
        type: str
        required: true
      email:
        description: E-mail address recorded with the credentials.
        type: str
  tls:
    description: A certificate and its private key, written as a V(kubernetes.io/tls) Secret (C(tls.crt), C(tls.key)).
    type: dict
    suboptions:
      cert:
        description: PEM certificate (chain). Mutually exclusive with O(tls.cert_file).
        type: str
      key:
        description: PEM private key. Mutually exclusive with O(tls.key_file).
        type: str
      cert_file:
        description: Path of a PEM certificate on the controller.
        type: path
      key_file:
        description: Path of a PEM private key on the controller.
        type: path
  external_secret:
    description:
      - Create an External Secrets Operator C(ExternalSecret) named O(name) instead of a Secret; the operator then
        creates and refreshes the Secret from the secret store.
      - Mutually exclusive with the data sources and the format checks (the module never sees the values).
    type: dict
    suboptions:
      secret_store:
        description: Name of the C(SecretStore) or C(ClusterSecretStore).
        type: str
        required: true
      secret_store_kind:
        description: Kind of the secret store.
        type: str
        choices: [SecretStore, ClusterSecretStore]
        default: SecretStore
      remote_key:
        description: Key (name) of the secret in the external store.
        type: str
        required: true
      properties:
        description:
          - Secret keys and the property of the remote secret each one takes.
          - When not given, every property of the remote secret becomes a key (C(dataFrom.extract)).
        type: dict
      refresh_interval:
        description: How often the operator refreshes the Secret, as a duration (V(1h), V(30m), V(0) for never).
        type: str
        default: 1h
      target_name:
        description: Name of the Secret the operator creates; O(name) when not given.
        type: str
      creation_policy:
        description: The operator's creation policy for the target Secret.
        type: str
        choices: [Owner, Orphan, Merge, None]
        default: Owner
      api_version:
        description: API version of the ExternalSecret resource served by the installed operator.
        type: str
        default: external-secrets.io/v1
  labels:
    description: Labels to set on the object.
    type: dict
  annotations:
    description: Annotations to set on the object.
    type: dict
  required_keys:
    description: Keys the Secret must have; a missing one fails the task before anything is written.
    type: list
    elements: str
  min_length:
    description:
      - Minimum length (characters of the decoded value) of every key (an integer), or of named keys (a dict of key
        and length).
    type: raw
  format:
    description:
      - Keys and the format their value must have.
      - V(openai_endpoints) is C(NAME::ENDPOINT::KEY[,NAME::ENDPOINT::KEY...]) with http(s) endpoints (the
        Arthur GenAI Engine's OpenAI connection string).
      - V(url) is one http(s) URL; V(json) is any JSON document; V(pem) is one or more PEM blocks.
    type: dict
notes:
  - Requires the C(kubernetes) Python library, and C(boto3) for O(aws_secret).
seealso:
  - module: kubernetes.core.k8s
  - name: External Secrets Operator
    description: The ExternalSecret resource.
    link: https://external-secrets.io/latest/api/externalsecret/
"""

EXAMPLES = r"""
- name: The OpenAI connection string of the Arthur GenAI Engine, checked before it is written
  genai.stack.k8s_secret:
    name: genai-engine-secrets
    namespace: arthur
    string_data:
      open_ai_gpt_model_names_endpoints_keys: "{{ vault_openai_endpoints }}"
      postgres_password: "{{ vault_db_password }}"
    required_keys: [open_ai_gpt_model_names_endpoints_keys, postgres_password]
    min_length:
      postgres_password: 16
    format:
      open_ai_gpt_model_names_endpoints_keys: openai_endpoints

- name: Pull secret for a private registry
  genai.stack.k8s_secret:
    name: registry-creds
    namespace: adaptive
    docker_registry:
      server: ghcr.io
      username: deploy-bot
      password: "{{ vault_ghcr_token }}"

- name: TLS secret from files
  genai.stack.k8s_secret:
    name: engine-tls
    namespace: arthur
    tls:
      cert_file: files/engine.crt
      key_file: files/engine.key

- name: Keys of an AWS Secrets Manager secret, plus one literal
  genai.stack.k8s_secret:
    name: adaptive-db
    namespace: adaptive
    aws_secret:
      secret_id: prod/adaptive/db
      region: us-east-2
    string_data:
      sslmode: verify-full
    min_length: 8

- name: A binary keystore given base64-encoded, as in a Secret's data
  genai.stack.k8s_secret:
    name: engine-keystore
    namespace: arthur
    data:
      keystore.jks: "{{ lookup('ansible.builtin.file', 'files/keystore.jks.b64') }}"
    string_data:
      keystore-password: "{{ vault_keystore_password }}"

- name: Let the External Secrets Operator keep the cookie secret in sync
  genai.stack.k8s_secret:
    name: adaptive-cookie
    namespace: adaptive
    external_secret:
      secret_store: aws-secrets-manager
      secret_store_kind: ClusterSecretStore
      remote_key: prod/adaptive/cookie
      properties:
        cookie_secret: value
      refresh_interval: 1h

- name: Remove a Secret
  genai.stack.k8s_secret:
    name: registry-creds
    namespace: adaptive
    state: absent
"""

RETURN = r"""
secret:
  description: The Secret (or ExternalSecret) after the task, without its values.
  returned: when O(state=present)
  type: dict
  contains:
    kind:
      description: V(Secret) or V(ExternalSecret).
      type: str
      sample: Secret
    name:
      description: Name.
      type: str
      sample: genai-engine-secrets
    namespace:
      description: Namespace.
      type: str
      sample: arthur
    type:
      description: Secret type (Secrets only).
      type: str
      sample: Opaque
    keys:
      description: The keys of the data, sorted (Secrets only).
      type: list
      elements: str
      sample: [open_ai_gpt_model_names_endpoints_keys, postgres_password]
    hashes:
      description:
        - Each key with C(hmac-sha256:) and the first 16 hex digits of the HMAC-SHA256 of its value under a random key
          made for this run and never shown (Secrets only, and only with C(--diff)).
        - Comparable with the fingerprints of the same result's diff only; the same value has another fingerprint in
          every run. Before 0.2.0 an unkeyed sha256 prefix, returned always.
      type: dict
      returned: with C(--diff)
      sample: {postgres_password: "hmac-sha256:9c1e0a7f3b52d846"}
    spec:
      description: The ExternalSecret's spec (ExternalSecrets only).
      type: dict
      sample: {refreshInterval: 1h}
    labels:
      description: Labels.
      type: dict
      sample: {app: genai}
    annotations:
      description: Annotations.
      type: dict
      sample: {}
actions:
  description: The writes made (or, in check mode, that would be made), in order.
  returned: always
  type: list
  elements: str
  sample: [create Secret arthur/genai-engine-secrets]
"""

import base64
import binascii
import json
import os
import re
import traceback
from urllib.parse import urlparse

from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.common.text.converters import to_bytes, to_text

from ansible_collections.genai.stack.plugins.module_utils._diff import DifferenceTracker
from ansible_collections.genai.stack.plugins.module_utils._kube import (
    SECRET_DATA_KEY, Fingerprints, api_error_message, get_client, get_object, kube_argument_spec, drifted_fields,
    missing_namespace, protect_kubeconfig,
)
from ansible_collections.genai.stack.plugins.module_utils._kube_auth import check_connection
from ansible_collections.genai.stack.plugins.module_utils._validation import (
    DNS_LABEL, DNS_SUBDOMAIN, LABEL_KEY, Checker, InputErrors, NamingAnsibleModule, fail_on_input_errors, input_error_fields, user_path,
)

try:
    import boto3
    import botocore.exceptions
    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
except ImportError:
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = traceback.format_exc()

TYPE_DOCKER = 'kubernetes.io/dockerconfigjson'
TYPE_TLS = 'kubernetes.io/tls'
FORMATS = ('openai_endpoints', 'url', 'json', 'pem')
DURATION = re.compile(r'^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$')
ENDPOINT_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$')
PEM_BLOCK = re.compile(r'-----BEGIN ([A-Z0-9 ]+)-----\r?\n[A-Za-z0-9+/=\r\n]+-----END \1-----')


def argument_spec():
    return kube_argument_spec(
        name=dict(type='str', required=True),
        namespace=dict(type='str', default='default'),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        type=dict(type='str'),
        data=dict(type='dict', no_log=True),
        string_data=dict(type='dict', no_log=True),
        data_files=dict(type='dict'),
        aws_secret=dict(type='dict', no_log=False, options=dict(
            secret_id=dict(type='str', required=True, no_log=False),
            version_stage=dict(type='str', default='AWSCURRENT'),
            region=dict(type='str'),
            endpoint_url=dict(type='str'),
            profile=dict(type='str'),
        )),
        docker_registry=dict(type='dict', options=dict(
            server=dict(type='str', required=True),
            username=dict(type='str', required=True),
            password=dict(type='str', required=True, no_log=True),
            email=dict(type='str'),
        )),
        tls=dict(type='dict', options=dict(
            cert=dict(type='str'),
            key=dict(type='str', no_log=True),
            cert_file=dict(type='path'),
            key_file=dict(type='path', no_log=False),
        ), mutually_exclusive=[['cert', 'cert_file'], ['key', 'key_file']]),
        external_secret=dict(type='dict', no_log=False, options=dict(
            secret_store=dict(type='str', required=True, no_log=False),
            secret_store_kind=dict(type='str', no_log=False, choices=['SecretStore', 'ClusterSecretStore'], default='SecretStore'),
            remote_key=dict(type='str', required=True, no_log=False),
            properties=dict(type='dict'),
            refresh_interval=dict(type='str', default='1h'),
            target_name=dict(type='str'),
            creation_policy=dict(type='str', choices=['Owner', 'Orphan', 'Merge', 'None'], default='Owner'),
            api_version=dict(type='str', default='external-secrets.io/v1'),
        )),
        labels=dict(type='dict'),
        annotations=dict(type='dict'),
        required_keys=dict(type='list', elements='str', no_log=False),
        min_length=dict(type='raw'),
        format=dict(type='dict'),
    )


MUTUALLY_EXCLUSIVE = [
    ['docker_registry', 'tls'],
    ['external_secret', 'data'], ['external_secret', 'string_data'], ['external_secret', 'data_files'], ['external_secret', 'aws_secret'],
    ['external_secret', 'docker_registry'], ['external_secret', 'tls'],
    ['external_secret', 'required_keys'], ['external_secret', 'min_length'], ['external_secret', 'format'],
]


# ---------------------------------------------------------------------------------------------
# Validation: static checks of the options, then format checks of the assembled data.

def check_options(params):
    """Every problem of the options themselves, before any file, AWS or Kubernetes read."""
    check = Checker()
    check.match(DNS_SUBDOMAIN, params['name'], 'name', 'a valid Secret name (lowercase DNS subdomain, at most 253 characters)')
    check.match(DNS_LABEL, params['namespace'], 'namespace', 'a valid namespace name (lowercase DNS label, at most 63 characters)')
    check.labels(params.get('labels'), 'labels')
    for key, value in (params.get('annotations') or {}).items():
        check.match(LABEL_KEY, key, 'annotations', 'a valid annotation key')
        if not isinstance(value, str):
            check.error('annotations', 'value of %r must be a string' % key)
    check_connection(check, params)
    if params['state'] == 'absent':
        check.raise_if_any()
        return
    _check_inline_data(check, params)
    _check_typed_sources(check, params)
    _check_remote_sources(check, params)
    _check_content_rules(check, params)
    check.raise_if_any()


def _check_inline_data(check, params):
    """data (base64), string_data (plain text) and data_files (paths), each key given once."""
    string_data = params.get('string_data') or {}
    for key, value in (params.get('data') or {}).items():
        if not _check_key(check, 'data', key):
            continue
        option = 'data.%s' % key
        if not isinstance(value, str):
            check.error(option, 'must be a base64-encoded string, as in a Secret\'s data, got a %s; plain text and numbers go in string_data.%s'
                        % (type(value).__name__, key))
        elif decode_data_value(value) is None:
            check.error(option, 'is not valid base64: data takes base64-encoded values, as a Kubernetes Secret\'s data does '
                        '(since genai.stack 0.2.0); give plain text in string_data.%s instead' % key)
        if key in string_data:
            check.error(option, 'is also given in string_data.%s; give each key once (data: base64-encoded, string_data: plain text)' % key)
    for key, value in string_data.items():
        _check_key(check, 'string_data', key)
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            check.error('string_data', 'value of key %r must be a string or a number, got a %s' % (key, type(value).__name__))
    for key, path in (params.get('data_files') or {}).items():
        _check_key(check, 'data_files', key)
        if not isinstance(path, str) or not os.path.isfile(user_path(path)):
            check.error('data_files', 'key %r: %r is not a readable file' % (key, path))
        elif not os.access(user_path(path), os.R_OK):
            check.error('data_files', 'key %r: %r is not readable' % (key, path))


def _check_typed_sources(check, params):
    """type, and the docker_registry and tls shortcuts that imply one."""
    secret_type = params.get('type')
    if secret_type is not None and not re.match(r'^[A-Za-z0-9./_-]{1,253}$', secret_type):
        check.error('type', '%r is not a valid Secret type' % secret_type)
    registry = params.get('docker_registry')
    if registry:
        check.require(secret_type in (None, TYPE_DOCKER), 'type', 'must be %s (or unset) with docker_registry' % TYPE_DOCKER)
        check.require(re.match(r'^[A-Za-z0-9.-]+(:[0-9]+)?(/[^\s]*)?$|^https?://[^\s]+$', registry['server'] or ''),
                      'docker_registry.server', 'must be a registry host such as ghcr.io or host:port')
        check.require(registry['username'], 'docker_registry.username', 'must not be empty')
        check.require(registry['password'], 'docker_registry.password', 'must not be empty')
    tls = params.get('tls')
    if tls:
        check.require(secret_type in (None, TYPE_TLS), 'type', 'must be %s (or unset) with tls' % TYPE_TLS)
        for pem, path, what in (('cert', 'cert_file', 'CERTIFICATE'), ('key', 'key_file', 'PRIVATE KEY')):
            if tls.get(pem) is None and tls.get(path) is None:
                check.error('tls', 'one of tls.%s or tls.%s is required' % (pem, path))
            elif tls.get(path) is not None and not os.path.isfile(tls[path]):
                check.error('tls.%s' % path, '%r is not a readable file' % tls[path])
            elif tls.get(pem) is not None and not _is_pem(tls[pem], what):
                check.error('tls.%s' % pem, 'is not a PEM %s block' % what.lower())


def _check_remote_sources(check, params):
    """aws_secret (read by the module) and external_secret (an ExternalSecret for the operator)."""
    aws = params.get('aws_secret')
    if aws:
        check.require(aws['secret_id'].strip(), 'aws_secret.secret_id', 'must not be empty')
        if aws.get('endpoint_url'):
            check.require(urlparse(aws['endpoint_url']).scheme in ('http', 'https'), 'aws_secret.endpoint_url', 'must be an http(s) URL')
    external = params.get('external_secret')
    if external:
        check.require(external['remote_key'].strip(), 'external_secret.remote_key', 'must not be empty')
        check.require(external['secret_store'].strip(), 'external_secret.secret_store', 'must not be empty')
        check.match(DURATION, external['refresh_interval'], 'external_secret.refresh_interval',
                    'a duration such as 1h, 30m or 0')
        if external.get('target_name') is not None:
            check.match(DNS_SUBDOMAIN, external['target_name'], 'external_secret.target_name', 'a valid Secret name')
        for key, prop in (external.get('properties') or {}).items():
            _check_key(check, 'external_secret.properties', key)
            if not isinstance(prop, str) or not prop:
                check.error('external_secret.properties', 'property of key %r must be a non-empty string' % key)


def _check_content_rules(check, params):
    """required_keys, min_length and format: the rules the assembled data must meet."""
    for key in params.get('required_keys') or []:
        _check_key(check, 'required_keys', key)
    min_length = params.get('min_length')
    if min_length is not None:
        if isinstance(min_length, dict):
            for key, length in min_length.items():
                if not _is_count(length):
                    check.error('min_length', 'length of key %r must be a non-negative integer' % key)
        elif not _is_count(min_length):
            check.error('min_length', 'must be a non-negative integer or a dict of key and length')
    for key, fmt in (params.get('format') or {}).items():
        if fmt not in FORMATS:
            check.error('format', 'key %r: unknown format %r (known: %s)' % (key, fmt, ', '.join(FORMATS)))


def _check_key(check, option, key):
    return check.require(isinstance(key, str) and SECRET_DATA_KEY.match(key), option,
                         '%r is not a valid Secret key (letters, digits, "-", "_" and ".")' % (key,))


def decode_data_value(value):
    """The bytes of a `data` value, or None when Kubernetes would refuse it as base64 (the standard alphabet
    with padding; line breaks are skipped, as Go's decoder does)."""
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value.replace('\r', '').replace('\n', ''), validate=True)
    except (binascii.Error, ValueError):
        return None


def _is_utf8(value):
    try:
        value.decode('utf-8')
    except UnicodeDecodeError:
        return False
    return True


def _is_count(value):
    if isinstance(value, bool):
        return False
    if isinstance(value, str) and value.isdigit():
        return True
    return isinstance(value, int) and value >= 0


def _is_pem(text, what):
    text = to_text(text)
    return any(m.group(1).endswith(what) for m in PEM_BLOCK.finditer(text))


def check_formats(params, data):
    """Checks of the values themselves; messages name the option and key, never the value."""
    check = Checker()
    for key in params.get('required_keys') or []:
        check.require(key in data, 'required_keys', 'key %r is missing from the Secret data' % key)
    min_length = params.get('min_length')
    if isinstance(min_length, dict):
        limits = {key: int(length) for key, length in min_length.items()}
        for key in limits:
            check.require(key in data, 'min_length', 'key %r is missing from the Secret data' % key)
    elif min_length is not None:
        limits = dict.fromkeys(data, int(min_length))
    else:
        limits = {}
    for key, limit in sorted(limits.items()):
        if key in data:
            length = len(to_text(data[key], errors='surrogate_or_replace'))
            check.require(length >= limit, 'min_length', 'key %r is %d characters long, at least %d required' % (key, length, limit))
    for key, fmt in sorted((params.get('format') or {}).items()):
        if key not in data:
            check.error('format', 'key %r is missing from the Secret data' % key)
            continue
        problem = format_problem(fmt, to_text(data[key], errors='surrogate_or_replace'))
        if problem:
            check.error('format', 'key %r (%s): %s' % (key, fmt, problem))
    check.raise_if_any()


def _http_url(text):
    try:
        parsed = urlparse(text)
    except ValueError:
        return False
    return parsed.scheme in ('http', 'https') and bool(parsed.netloc) and not any(c.isspace() for c in text)


def format_problem(fmt, value):
    """What is wrong with `value` for `fmt`, described without quoting it; None when it is fine."""
    if fmt == 'openai_endpoints':
        if not value.strip():
            return 'is empty'
        for index, entry in enumerate(value.split(','), start=1):
            parts = entry.strip().split('::')
            if len(parts) != 3:
                return 'entry %d has %d "::"-separated fields, expected NAME::ENDPOINT::KEY' % (index, len(parts))
            name, endpoint, key = parts
            if not ENDPOINT_NAME.match(name):
                return 'entry %d: NAME is empty or has characters other than letters, digits and ._:/@+-' % index
            if not _http_url(endpoint):
                return 'entry %d: ENDPOINT is not an http(s) URL' % index
            if not key or any(c.isspace() for c in key):
                return 'entry %d: KEY is empty or contains whitespace' % index
        return None
    if fmt == 'url':
        return None if _http_url(value.strip()) else 'is not an http(s) URL'
    if fmt == 'json':
        try:
            json.loads(value)
        except ValueError:
            return 'is not valid JSON'
        return None
    if fmt == 'pem':
        return None if PEM_BLOCK.search(value) else 'has no PEM block'
    return 'unknown format'


# ---------------------------------------------------------------------------------------------
# Assembling the desired Secret.

def read_aws_secret(module, aws):
    if not HAS_BOTO3:
        module.fail_json(msg=missing_required_lib('boto3'), exception=BOTO3_IMPORT_ERROR,
                         **input_error_fields([('aws_secret', missing_required_lib('boto3'))]))
    region = aws.get('region') or os.environ.get('AWS_REGION') or os.environ.get('AWS_DEFAULT_REGION')
    try:
        session = boto3.session.Session(profile_name=aws.get('profile'), region_name=region)
        client = session.client('secretsmanager', endpoint_url=aws.get('endpoint_url') or None)
        response = client.get_secret_value(SecretId=aws['secret_id'], VersionStage=aws['version_stage'])
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        code = getattr(exc, 'response', {}).get('Error', {}).get('Code', type(exc).__name__)
        raise InputErrors([('aws_secret', 'cannot read secret %r: %s' % (aws['secret_id'], code))])
    text = response.get('SecretString')
    if text is None and response.get('SecretBinary') is not None:
        text = to_text(response['SecretBinary'], errors='surrogate_or_replace')
    try:
        document = json.loads(text or '')
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise InputErrors([('aws_secret', 'secret %r is not a JSON object of keys and values' % aws['secret_id'])])
    data = {}
    problems = []
    for key, value in document.items():
        if not SECRET_DATA_KEY.match(key):
            problems.append(('aws_secret', 'key %r of secret %r is not a valid Secret key' % (key, aws['secret_id'])))
            continue
        data[key] = to_bytes(value if isinstance(value, str) else json.dumps(value, sort_keys=True))
    if problems:
        raise InputErrors(problems)
    return data


def desired_data(module, params):
    """The Secret's type and data as {key: bytes}, from every source, later sources winning."""
    data = {}
    if params.get('aws_secret'):
        data.update(read_aws_secret(module, params['aws_secret']))
    for key, path in (params.get('data_files') or {}).items():
        with open(user_path(path), 'rb') as handle:
            data[key] = handle.read()
    for key, value in (params.get('data') or {}).items():
        data[key] = decode_data_value(value)
        if not _is_utf8(data[key]):
            module.warn('data.%s: decodes to bytes that are not UTF-8 text; if it is plain text that happens to be valid base64, '
                        'give it in string_data.%s (data takes base64-encoded values)' % (key, key))
    for key, value in (params.get('string_data') or {}).items():
        data[key] = to_bytes(value if isinstance(value, str) else str(value))
    secret_type = params.get('type') or 'Opaque'
    registry = params.get('docker_registry')
    if registry:
        secret_type = TYPE_DOCKER
        entry = {'username': registry['username'], 'password': registry['password'],
                 'auth': base64.b64encode(to_bytes('%s:%s' % (registry['username'], registry['password']))).decode('ascii')}
        if registry.get('email'):
            entry['email'] = registry['email']
        data['.dockerconfigjson'] = to_bytes(json.dumps({'auths': {registry['server']: entry}}, sort_keys=True))
    tls = params.get('tls')
    if tls:
        secret_type = TYPE_TLS
        for key, pem, path, what in (('tls.crt', 'cert', 'cert_file', 'CERTIFICATE'), ('tls.key', 'key', 'key_file', 'PRIVATE KEY')):
            if tls.get(path):
                with open(tls[path], 'rb') as handle:
                    data[key] = handle.read()
                if not _is_pem(data[key], what):
                    raise InputErrors([('tls.%s' % path, 'file %r is not a PEM %s block' % (tls[path], what.lower()))])
            else:
                data[key] = to_bytes(tls[pem])
    return secret_type, data


def external_secret_body(params):
    external = params['external_secret']
    spec = {
        'refreshInterval': external['refresh_interval'],
        'secretStoreRef': {'name': external['secret_store'], 'kind': external['secret_store_kind']},
        'target': {'name': external.get('target_name') or params['name'], 'creationPolicy': external['creation_policy']},
    }
    if params.get('type') and params['type'] != 'Opaque':
        spec['target']['template'] = {'type': params['type']}
    if external.get('properties'):
        spec['data'] = [{'secretKey': key, 'remoteRef': {'key': external['remote_key'], 'property': prop}}
                        for key, prop in sorted(external['properties'].items())]
    else:
        spec['dataFrom'] = [{'extract': {'key': external['remote_key']}}]
    return spec


# ---------------------------------------------------------------------------------------------

def metadata_changes(tracker, live_meta, labels, annotations):
    """Record the wanted labels and annotations against the live ones in `tracker` (only the keys
    given are managed); return the labels and annotations to write, the live ones updated."""
    live_labels = dict(live_meta.get('labels') or {})
    live_annotations = dict(live_meta.get('annotations') or {})
    want_labels = {k: str(v) for k, v in (labels or {}).items()}
    want_annotations = {k: str(v) for k, v in (annotations or {}).items()}
    tracker.add('labels', {k: live_labels.get(k) for k in want_labels}, want_labels)
    tracker.add('annotations', {k: live_annotations.get(k) for k in want_annotations}, want_annotations)
    live_labels.update(want_labels)
    live_annotations.update(want_annotations)
    return live_labels, live_annotations


class Plan:
    """What brings the live object to the desired one, decided without any call to the API.

    `action` is one of ACTIONS: create, replace, recreate (delete then create: Kubernetes refuses
    to change a Secret's type or an immutable Secret), delete or none. `tracker` holds every field
    compared (it answers `changed` and builds the diff), `fields` names those that differ, and
    `body` is the object to write (None for delete and none).
    """

    ACTIONS = ('create', 'replace', 'recreate', 'delete', 'none')
    VERBS = {'create': ('create',), 'replace': ('replace',), 'recreate': ('delete', 'create'), 'delete': ('delete',), 'none': ()}

    def __init__(self, action, tracker, body=None):
        self.action = action
        self.tracker = tracker
        self.body = body

    @property
    def fields(self):
        return self.tracker.changed_fields()

    @property
    def verbs(self):
        """The API calls of the action, in order."""
        return self.VERBS[self.action]


def plan_absent(live):
    """Delete the live object when there is one."""
    tracker = DifferenceTracker()
    tracker.add('exists', live is not None, False)
    return Plan('delete' if live is not None else 'none', tracker)


def _object_action(live, tracker):
    if live is None:
        return 'create'
    return 'replace' if tracker.has_differences else 'none'


def _body(kind, api_version, name, namespace, labels, annotations, live_meta, action):
    body = {'apiVersion': api_version, 'kind': kind,
            'metadata': {'name': name, 'namespace': namespace, 'labels': labels, 'annotations': annotations}}
    if action == 'replace':
        body['metadata']['resourceVersion'] = live_meta.get('resourceVersion')
    return body


def plan_secret(live, desired, fingerprints):
    """Plan a Secret. `live` is the Secret the API holds (data base64-encoded) or None; `desired`
    holds name, namespace, type, data ({key: bytes}), labels and annotations. The values are
    compared through `fingerprints`, so the diff shows which keys change and no value."""
    live_meta = (live or {}).get('metadata') or {}
    live_data = dict((key, base64.b64decode(value or '')) for key, value in ((live or {}).get('data') or {}).items())
    tracker = DifferenceTracker()
    tracker.add('exists', live is not None, True)
    tracker.add('type', (live or {}).get('type'), desired['type'])
    tracker.add('data', fingerprints.of_data(live_data) if live else {}, fingerprints.of_data(desired['data']))
    labels, annotations = metadata_changes(tracker, live_meta, desired.get('labels'), desired.get('annotations'))
    action = _object_action(live, tracker)
    if action == 'replace' and (live.get('type') != desired['type'] or live.get('immutable')):
        action = 'recreate'
    body = _body('Secret', 'v1', desired['name'], desired['namespace'], labels, annotations, live_meta, action)
    body['type'] = desired['type']
    body['data'] = dict((key, base64.b64encode(value).decode('ascii')) for key, value in desired['data'].items())
    return Plan(action, tracker, body)


def plan_external(live, desired):
    """Plan an ExternalSecret. `live` is the object the API holds or None; `desired` holds name,
    namespace, api_version, spec, labels and annotations. Only the fields `spec` gives are compared:
    the operator's defaults in the live spec are no drift."""
    live_meta = (live or {}).get('metadata') or {}
    live_spec = (live or {}).get('spec') or {}
    tracker = DifferenceTracker()
    tracker.add('exists', live is not None, True)
    drift = drifted_fields(desired['spec'], live_spec) if live else ['spec']
    tracker.add('spec', live_spec if drift else desired['spec'], desired['spec'])
    labels, annotations = metadata_changes(tracker, live_meta, desired.get('labels'), desired.get('annotations'))
    action = _object_action(live, tracker)
    body = _body('ExternalSecret', desired['api_version'], desired['name'], desired['namespace'], labels, annotations, live_meta, action)
    body['spec'] = desired['spec']
    return Plan(action, tracker, body)


class SecretManager:
    """Reads the live object, plans against the desired one, and writes only what the plan says."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.name = self.params['name']
        self.namespace = self.params['namespace']
        self.external = bool(self.params.get('external_secret'))
        if self.external:
            self.kind, self.api_version = 'ExternalSecret', self.params['external_secret']['api_version']
        else:
            self.kind, self.api_version = 'Secret', 'v1'
        self.tracker = DifferenceTracker()
        self.fingerprints = Fingerprints()
        self.actions = []
        self._client = None

    @property
    def client(self):
        if self._client is None:
            self._client = get_client(self.module)
        return self._client

    @property
    def ref(self):
        return '%s %s/%s' % (self.kind, self.namespace, self.name)

    def read(self):
        try:
            return get_object(self.client, self.api_version, self.kind, self.name, self.namespace)
        except Exception as exc:  # pylint: disable=broad-except
            self.fail('cannot read %s: %s' % (self.ref, api_error_message(exc)), exc)

    def fail(self, msg, exc=None, **extra):
        self.module.fail_json(msg=msg, actions=self.actions, exception=traceback.format_exc() if exc else None, **extra)

    def require_namespace(self):
        """Before a create: a missing namespace is the user's input, not an API error after a write."""
        text = missing_namespace(self.module, lambda: self.client, self.namespace, 'namespace',
                                 'create it first (for example with kubernetes.core.k8s)')
        if text:
            self.fail(text, **input_error_fields([('namespace', text.replace('namespace: ', '', 1))]))

    def resource(self):
        return self.client.resource(self.kind, self.api_version)

    def write(self, verb, call):
        self.actions.append('%s %s' % (verb, self.ref))
        if self.module.check_mode:
            return None
        try:
            return call()
        except Exception as exc:  # pylint: disable=broad-except
            self.fail('cannot %s %s: %s' % (verb, self.ref, api_error_message(exc)), exc)

    def desired(self):
        """What `plan_secret` and `plan_external` compare the live object with, from the options."""
        return {'name': self.name, 'namespace': self.namespace, 'api_version': self.api_version,
                'labels': self.params.get('labels'), 'annotations': self.params.get('annotations')}

    def apply(self, plan, live):
        """Carry out `plan` (in check mode, only record its actions); the object the API returned
        for the last write, or `live` when nothing was written."""
        self.tracker = plan.tracker
        if plan.action == 'create':
            self.require_namespace()
        resource = None if self.module.check_mode or plan.action == 'none' else self.resource()
        calls = {
            'create': lambda: resource.create(body=plan.body, namespace=self.namespace),
            'replace': lambda: resource.replace(body=plan.body, namespace=self.namespace),
            'delete': lambda: resource.delete(name=self.name, namespace=self.namespace),
        }
        result = live
        for verb in plan.verbs:
            result = self.write(verb, calls[verb])
        return result

    # -- the states --------------------------------------------------------------------------

    def absent(self):
        live = self.read()
        self.apply(plan_absent(live), live)
        return None

    def present_secret(self, secret_type, data):
        live = self.read()
        desired = dict(self.desired(), type=secret_type, data=data)
        plan = plan_secret(live, desired, self.fingerprints)
        result = self.apply(plan, live)
        result = result.to_dict() if hasattr(result, 'to_dict') else result
        meta = (result or plan.body)['metadata']
        secret = {
            'kind': 'Secret', 'name': self.name, 'namespace': self.namespace, 'type': secret_type, 'keys': sorted(data),
            'labels': meta.get('labels') or {}, 'annotations': meta.get('annotations') or {},
        }
        if self.module._diff:
            secret['hashes'] = self.fingerprints.of_data(data)
        return secret

    def present_external(self):
        live = self.read()
        plan = plan_external(live, dict(self.desired(), spec=external_secret_body(self.params)))
        self.apply(plan, live)
        metadata = plan.body['metadata']
        return {'kind': 'ExternalSecret', 'name': self.name, 'namespace': self.namespace, 'spec': plan.body['spec'],
                'labels': metadata['labels'], 'annotations': metadata['annotations']}


def main():
    module = NamingAnsibleModule(argument_spec=argument_spec(), mutually_exclusive=MUTUALLY_EXCLUSIVE, supports_check_mode=True)
    protect_kubeconfig(module)
    params = module.params
    try:
        check_options(params)
        if params['state'] == 'present' and not params.get('external_secret'):
            secret_type, data = desired_data(module, params)
            check_formats(params, data)
    except InputErrors as exc:
        fail_on_input_errors(module, exc)

    manager = SecretManager(module)
    secret = None
    if params['state'] == 'absent':
        manager.absent()
    elif params.get('external_secret'):
        secret = manager.present_external()
    else:
        secret = manager.present_secret(secret_type, data)

    result = dict(changed=manager.tracker.has_differences, actions=manager.actions)
    if secret is not None:
        result['secret'] = secret
    if module._diff:
        result['diff'] = manager.tracker.diff()
    module.exit_json(**result)


if __name__ == '__main__':
    main()
