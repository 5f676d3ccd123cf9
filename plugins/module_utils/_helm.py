# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to genai.stack; not a public API.

Running the helm binary (3.8+ and 4.x) for genai.stack.helm_release: version detection and the
flags that differ between versions, a private registry configuration for logins (the password
goes through stdin, never argv, and never into the user's helm configuration), and the pure
helpers that split, name, compare and mask rendered manifests and values.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import tempfile

try:
    import yaml
    HAS_YAML = True
    YAML_IMPORT_ERROR = None
except ImportError as exc:  # the module reports it with missing_required_lib
    yaml = None
    HAS_YAML = False
    YAML_IMPORT_ERROR = exc

from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.genai.stack.plugins.module_utils._kube import MASK, Fingerprints, mask_secret
from ansible_collections.genai.stack.plugins.module_utils._kube_auth import helm_settings
from ansible_collections.genai.stack.plugins.module_utils._validation import InputErrors, NamingAnsibleModule, fail_on_input_errors

# libyaml's loader when PyYAML has it: a chart's manifest parses several times faster.
_SAFE_LOADER = getattr(yaml, 'CSafeLoader', None) or getattr(yaml, 'SafeLoader', None)


def helm_module(argument_spec, check_options, prepare=None):
    """The AnsibleModule of a module that runs helm, its input checked before anything is read:
    ansible-core's argument spec (registry credentials come together), `prepare(module)` (say, to
    mask what the options hold), PyYAML present, then the module's own checks, `check_options(params)`,
    which raise InputErrors naming each option at fault."""
    module = NamingAnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                                 required_together=[['registry_username', 'registry_password']])
    if prepare is not None:
        prepare(module)
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib('PyYAML'), exception=str(YAML_IMPORT_ERROR))
    try:
        check_options(module.params)
    except InputErrors as exc:
        fail_on_input_errors(module, exc)
    return module


RELEASE_NAME = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')
RELEASE_NAME_MAX = 53
SECRET_WORDS = re.compile(r'(passw|secret|token|api[_-]?key|private[_-]?key|credential|auth)', re.I)
SET_FLAGS = {'raw': '--set', 'string': '--set-string', 'json': '--set-json', 'file': '--set-file'}
MIN_VERSION = (3, 8, 0)
VERSION_ARGS = ['version', '--template', '{{.Version}}']
# The state flags exist in helm 3 and 4 (helm 4 dropped `list --all`).
LIST_STATES = ['--deployed', '--failed', '--pending', '--superseded', '--uninstalling']


# Chart version constraints as helm reads them (Masterminds semver): terms joined by "," or
# spaces, alternatives by "||", hyphen ranges "1.2 - 1.4"; x, X and * as wildcards.
_VERSION = r'v?(?:\d+|[xX*])(?:\.(?:\d+|[xX*])){0,2}(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?'
_TERM = r'(?:(?:!=|>=|=>|<=|=<|~>|[=><~^])\s*)?' + _VERSION
_AND_GROUP = re.compile(r'^\s*(?:%s\s+-\s+%s|%s)(?:\s*,?\s*(?:%s\s+-\s+%s|%s))*\s*$' % ((_VERSION, _VERSION, _TERM) * 2))


def valid_version_constraint(text):
    """True for `1.2.3`, `v1.2`, `^1.2`, `>= 1.0, < 2.0`, `1.2 - 1.4 || 2.x`; False for `v-one`."""
    if not isinstance(text, str) or not text.strip():
        return False
    return all(_AND_GROUP.match(group) for group in text.split('||'))


# An exact chart version (semver 2 with an optional leading "v"), as opposed to a constraint.
_EXACT_VERSION = re.compile(r'^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)'
                            r'(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$')


def exact_version(text):
    """True for `1.2.3`, `v1.2.3`, `1.2.3-rc.1+b`; False for constraints (`^1.2`, `1.2`, `>=1.0`, `1.2.x`)."""
    return isinstance(text, str) and bool(_EXACT_VERSION.match(text))


class HelmError(Exception):
    """A helm command failed; `command` is the displayable (masked) command line; `option` names
    the module option at fault when the failure is the user's input (chart_ref, chart_version...)."""

    def __init__(self, message, command=None, rc=None, stderr=None, option=None):
        super().__init__(message)
        self.command = command
        self.rc = rc
        self.stderr = stderr
        self.option = option


_AUTH_FAILURE = re.compile(r'\b401\b|unauthorized|authentication required|basic credential not found|denied', re.I)
_VERSION_MISSING = re.compile(r'no chart version found|version ".*" not found|chart ".*" version ".*" not found'
                              r'|:[^\s:]+: not found|improper constraint|invalid version', re.I)
_UNREACHABLE = re.compile(r'connection refused|no such host|i/o timeout|dial tcp|network is unreachable|TLS handshake timeout', re.I)
# A rendering that names kinds the cluster does not serve: its CRDs are not installed (yet). Told apart from a missing
# chart, whose pattern ("not found") this message also matches.
CRDS_MISSING = re.compile(r'resource mapping not found|no matches for kind|ensure CRDs are installed first', re.I)

_CHART_MISSING = re.compile(r'name unknown|repository name not known|not found|no such file|failed to download'
                            r'|no chart name found|is not a valid chart|chart.yaml file is missing', re.I)


def chart_error(exc, chart_ref, chart_version=None, with_credentials=False, remote=True):
    """The HelmError of a failed chart fetch, re-told against the option at fault (or unchanged)."""
    text = to_text(exc.stderr or '') or str(exc)
    last = ' '.join(text.strip().splitlines()[-1:]).replace('Error: ', '').replace('INSTALLATION FAILED: ', '')
    if remote and _AUTH_FAILURE.search(text):
        option = 'registry_password' if with_credentials else 'registry_username'
        message = ('%s: the registry refused access to %s; %s (helm: %s)'
                   % (option, chart_ref, 'check registry_username and registry_password' if with_credentials
                      else 'it needs registry_username and registry_password', last))
    elif remote and _UNREACHABLE.search(text):
        option = 'chart_ref'
        message = 'chart_ref: the registry or repository of %s could not be reached; nothing was installed (helm: %s)' % (chart_ref, last)
    elif CRDS_MISSING.search(text):
        return HelmError('the chart %s renders objects whose CustomResourceDefinitions the cluster does not have; install the CRDs '
                         '(or the chart that brings them) first (helm: %s)' % (chart_ref, last),
                         command=exc.command, rc=exc.rc, stderr=exc.stderr)
    elif chart_version and _VERSION_MISSING.search(text):
        option = 'chart_version'
        message = 'chart_version: version %r of %s was not found (helm: %s)' % (chart_version, chart_ref, last)
    elif _CHART_MISSING.search(text):
        option = 'chart_ref'
        message = 'chart_ref: chart %s was not found (helm: %s)' % (chart_ref, last)
    else:
        return exc
    return HelmError(message, command=exc.command, rc=exc.rc, stderr=exc.stderr, option=option)


def parse_version(text):
    """(major, minor, patch) from `v3.19.0+g3d8990f`, `v4.3.1` or `version.BuildInfo{Version:"v3.8.2", ...}`."""
    match = re.search(r'v?(\d+)\.(\d+)\.(\d+)', text or '')
    if not match:
        return None
    return tuple(int(part) for part in match.groups())


class HelmFlags:
    """The command-line differences between helm releases, measured on helm 3.19 and 4.3."""

    def __init__(self, version):
        self.version = version

    @property
    def major(self):
        return self.version[0]

    def atomic(self):
        # helm 4 renamed --atomic to --rollback-on-failure (which also implies --wait=watcher).
        return ['--rollback-on-failure'] if self.major >= 4 else ['--atomic']

    def wait(self, timeout):
        # `--wait` alone is the watcher strategy on helm 4 (a bool on helm 3); both take --timeout.
        return ['--wait', '--timeout', timeout]

    def dry_run_client(self):
        # helm 3.13 made --dry-run take client|server; before, the bare flag meant client.
        return ['--dry-run=client'] if self.version >= (3, 13, 0) else ['--dry-run']

    def upgrade_extra(self):
        # helm 4 applies server-side; taking fields back from another manager (kubectl edit or
        # scale, the drift this module corrects) needs --force-conflicts.
        return ['--force-conflicts'] if self.major >= 4 else []

    def force(self):
        # helm 4 calls helm 3's --force (replace objects that cannot be patched) --force-replace, which it runs
        # client-side only (it refuses it with server-side apply, its default for releases it installed).
        return ['--force-replace', '--server-side=false'] if self.major >= 4 else ['--force']

    @property
    def plain_http_supported(self):
        return self.version >= (3, 13, 0)

    @property
    def take_ownership_supported(self):
        return self.version >= (3, 17, 0)

    @property
    def skip_schema_validation_supported(self):
        return self.version >= (3, 16, 0)

    @property
    def status_resources(self):
        # `helm status --show-resources -o json` prints the release (values, manifest) and its live objects
        # as the API serves them: helm 3.10 added the flag, helm 4 dropped it.
        return (3, 10, 0) <= self.version < (4, 0, 0)


def chart_source(chart_ref, chart_repo_url=None):
    """`oci`, `url` (a chart in the repository at chart_repo_url), `local` or `repo` (repo/chart of the user's helm repos)."""
    if chart_ref.startswith('oci://'):
        return 'oci'
    if chart_repo_url:
        return 'url'
    if chart_ref.startswith(('/', './', '../', '~')) or os.path.exists(os.path.expanduser(chart_ref)):
        return 'local'
    if re.match(r'^[A-Za-z0-9._-]+/[A-Za-z0-9._-]+$', chart_ref):
        return 'repo'
    return 'local'


def chart_name(chart_ref, chart_repo_url=None):
    """The name helm gives the chart of a remote chart_ref (last segment of `oci://host/path/name` or of
    `repo/name`, or chart_ref itself with chart_repo_url); None for a local chart or a reference whose
    name cannot be told (an oci:// reference with a tag or digest)."""
    source = chart_source(chart_ref, chart_repo_url)
    if source == 'oci':
        path = chart_ref[len('oci://'):].rstrip('/')
        if '/' not in path:
            return None
        name = path.rsplit('/', 1)[1]
    elif source == 'repo':
        name = chart_ref.split('/', 1)[1]
    elif source == 'url':
        name = chart_ref
    else:
        return None
    if not name or ':' in name or '@' in name or '/' in name:
        return None
    return name


def oci_registry_host(chart_ref):
    """`host:port` of an oci:// reference."""
    rest = chart_ref[len('oci://'):]
    return rest.split('/', 1)[0]


def split_documents(text):
    """The documents of a multi-document YAML stream: list of (raw text, parsed dict), empty ones dropped."""
    docs = []
    for raw in re.split(r'(?m)^---\s*$', text or ''):
        if not raw.strip():
            continue
        parsed = yaml.load(raw, Loader=_SAFE_LOADER)  # nosec B506 - SafeLoader or its libyaml twin
        if isinstance(parsed, dict) and parsed.get('kind'):
            docs.append((raw.strip('\n') + '\n', parsed))
        elif isinstance(parsed, dict) and parsed.get('kind') is None and parsed.get('items') is None and parsed:
            docs.append((raw.strip('\n') + '\n', parsed))
    return docs


def split_manifest(text):
    """The objects of a manifest as helm creates them: a `kind: List` (or any `*List` with `items`, which some
    charts render) stands for its items, each an object of its own."""
    objects = []
    for _raw, parsed in split_documents(text):
        items = parsed.get('items')
        if str(parsed.get('kind') or '').endswith('List') and isinstance(items, list):
            objects.extend(item for item in items if isinstance(item, dict) and item.get('kind'))
        else:
            objects.append(parsed)
    return objects


def object_label(obj, default_namespace=None):
    """`Kind/namespace/name` (or `Kind/name` without a namespace)."""
    meta = obj.get('metadata') or {}
    namespace = meta.get('namespace') or default_namespace
    name = meta.get('name', '')
    return '%s/%s/%s' % (obj.get('kind'), namespace, name) if namespace else '%s/%s' % (obj.get('kind'), name)


def rendered_file_names(objects):
    """`<kind>-<name>.yaml` in lowercase for each object; `<kind>-<namespace>-<name>.yaml` on a clash."""
    def simple(obj):
        return ('%s-%s.yaml' % (obj.get('kind', 'object'), (obj.get('metadata') or {}).get('name', 'unnamed'))).lower()

    counts = {}
    for obj in objects:
        counts[simple(obj)] = counts.get(simple(obj), 0) + 1
    names = []
    for obj in objects:
        name = simple(obj)
        if counts[name] > 1:
            meta = obj.get('metadata') or {}
            name = ('%s-%s-%s.yaml' % (obj.get('kind'), meta.get('namespace') or 'default', meta.get('name'))).lower()
        names.append(re.sub(r'[^a-z0-9._-]', '_', name))
    return names


def mask_values(values, mask_all=False, _secret_parent=False):
    """Values with secret-looking keys' leaves (or, with mask_all, every leaf) replaced by a mask."""
    if isinstance(values, dict):
        return {k: mask_values(v, mask_all, _secret_parent or bool(SECRET_WORDS.search(str(k)))) for k, v in values.items()}
    if isinstance(values, list):
        return [mask_values(v, mask_all, _secret_parent) for v in values]
    if values is None:
        return None
    return MASK if (mask_all or _secret_parent) else values


def merge_values(base, override):
    """`override` merged over `base` as helm merges user-supplied values files (-f, in order): maps
    merge key by key, recursively; any other value (list, scalar, null) replaces. Neither is modified."""
    merged = dict(base or {})
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = value
    return merged


def user_values(file_values, values):
    """The user-supplied values helm stores for a release: each values file's mapping merged in order,
    then `values` (the module writes it as the last -f file) merged over them."""
    merged = {}
    for loaded in list(file_values or []) + [values or {}]:
        merged = merge_values(merged, loaded or {})
    return merged


def requested_values(values_files, values):
    """The user-supplied values a task asks for, merged by the module itself (the stored-release decision
    compares them with `helm get values`): each values file read as helm would read it, then `values`.
    ValueError when a file may read differently in helm (see load_values_file); OSError when unreadable."""
    return user_values([load_values_file(path) for path in values_files or []], values)


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def values_equal(left, right):
    """Values compared as helm's JSON would tell them apart: numbers by value (YAML `1` equals JSON `1.0`),
    but a string never equals a number, nor a bool a number; maps by keys, lists in order."""
    if isinstance(left, dict) or isinstance(right, dict):
        return (isinstance(left, dict) and isinstance(right, dict) and set(left) == set(right)
                and all(values_equal(left[key], right[key]) for key in left))
    if isinstance(left, (list, tuple)) or isinstance(right, (list, tuple)):
        return (isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)) and len(left) == len(right)
                and all(values_equal(a, b) for a, b in zip(left, right)))
    if _number(left) or _number(right):
        return _number(left) and _number(right) and left == right
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if left is None or right is None:
        return left is None and right is None
    return isinstance(left, str) and isinstance(right, str) and left == right


# Plain (unquoted) scalars that PyYAML (YAML 1.1) and helm's parser (go-yaml v2 through sigs.k8s.io/yaml)
# may read differently: `y`/`n` are booleans to helm only; `1e3`, `1.0e3`, `0o17` are numbers to helm only;
# `1:20` (base 60) and numbers with `_` are numbers to PyYAML only. A values file holding one is left
# to helm (the full path) rather than guessed.
_HELM_NOT_STRING = re.compile(r'^(?:[yYnN]|[-+]?(?:\.[0-9_]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?'
                              r'|[-+]?0[bBoOxX][0-9a-fA-F_]+)$')


if HAS_YAML:
    class _HelmAlikeLoader(yaml.SafeLoader):  # pylint: disable=too-many-ancestors
        """SafeLoader that refuses what helm may read differently: a mapping key given twice, and plain
        scalars whose type the two YAML 1.1 readers resolve differently (see _HELM_NOT_STRING)."""

        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _value_node in node.value:
                if key_node.tag == 'tag:yaml.org,2002:merge':  # `<<: *anchor` (explicit keys may override it)
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable key: PyYAML refuses it below
                    duplicate = False
                if duplicate:
                    raise yaml.constructor.ConstructorError(None, None, 'duplicate key %r' % (key,), key_node.start_mark)
            return super().construct_mapping(node, deep=deep)

    def _plain_checked(construct, ambiguous):
        def checked(loader, node):
            if node.style is None and ambiguous(node.value):
                raise yaml.constructor.ConstructorError(None, None, 'plain scalar %r may read differently in helm' % node.value,
                                                        node.start_mark)
            return construct(loader, node)
        return checked

    _HelmAlikeLoader.add_constructor('tag:yaml.org,2002:str', _plain_checked(
        yaml.SafeLoader.yaml_constructors['tag:yaml.org,2002:str'], lambda text: bool(_HELM_NOT_STRING.match(text))))
    for _tag in ('tag:yaml.org,2002:int', 'tag:yaml.org,2002:float'):
        _HelmAlikeLoader.add_constructor(_tag, _plain_checked(
            yaml.SafeLoader.yaml_constructors[_tag], lambda text: ':' in text or '_' in text))


def load_values_file(path):
    """A values file's mapping ({} when empty); ValueError when it is not one mapping helm would read alike."""
    with open(path, 'rb') as handle:
        text = handle.read()
    try:
        loaded = yaml.load(text, Loader=_HelmAlikeLoader)  # nosec B506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ValueError('%s: %s' % (path, exc))
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ValueError('%s is not a mapping' % path)
    return loaded


def live_index(resources):
    """{(apiVersion, kind, namespace or '', name): object} of the live objects `helm status --show-resources`
    reports (`info.resources`, lists of objects by version/kind); anything else in it (tables, pod lists) is left out."""
    index = {}
    for objects in (resources or {}).values():
        for obj in objects if isinstance(objects, list) else []:
            if not isinstance(obj, dict) or not isinstance(obj.get('metadata'), dict) or obj.get('kind') in (None, 'Table') \
                    or obj['kind'].endswith('List'):
                continue
            meta = obj['metadata']
            index[(obj.get('apiVersion'), obj['kind'], meta.get('namespace') or '', meta.get('name'))] = obj
    return index


def live_lookup(index, obj, default_namespace):
    """The live object of a manifest object from a live_index, or None (missing, or not reported)."""
    meta = obj.get('metadata') or {}
    key = (obj.get('apiVersion'), obj.get('kind'), meta.get('namespace') or default_namespace, meta.get('name'))
    found = index.get(key)
    if found is None:
        # Cluster-scoped objects have no namespace live.
        found = index.get(key[:2] + ('',) + key[3:])
    return found


def stored_noop_blocker(chart_ref, chart_repo_url, chart_version, set_values, release, post_renderer=None, values_reused=False):
    """Why a re-run cannot be decided from the stored release alone (before its values are read), or None.

    Only a release that is `deployed`, from a remote chart asked for at an exact version whose
    `<name>-<version>` is the release's chart, without --set values (helm's parsing of those is not
    reproduced), qualifies; everything else renders the chart as usual.
    """
    if not release:
        return 'no release'
    if release.get('status') != 'deployed':
        return 'release status is %s' % release.get('status')
    reason = stored_noop_request_blocker(chart_ref, chart_repo_url, chart_version, set_values, post_renderer=post_renderer,
                                         values_reused=values_reused)
    if reason:
        return reason
    name = chart_name(chart_ref, chart_repo_url)
    if release.get('chart') != '%s-%s' % (name, chart_version):
        return 'release chart %s is not %s-%s' % (release.get('chart'), name, chart_version)
    return None


def stored_noop_request_blocker(chart_ref, chart_repo_url, chart_version, set_values, post_renderer=None, values_reused=False):
    """The part of stored_noop_blocker that the task's arguments decide alone, before any release is read."""
    if values_reused:
        # The release's values are merged under the given ones: helm's own upgrade dry run tells the result.
        return 'values reused'
    if post_renderer:
        # Its output may change while chart and values stay the same: only a rendering tells.
        return 'post_renderer given'
    if chart_source(chart_ref, chart_repo_url) == 'local':
        return 'local chart'
    if not exact_version(chart_version):
        return 'chart_version is not an exact version'
    if not chart_name(chart_ref, chart_repo_url):
        return 'chart name cannot be told from chart_ref'
    if set_values:
        return 'set_values given'
    return None


# Secret values in results and diffs are HMACs under a key made for this run (one module run is one
# process): equal values show equal within a run, and nothing in the logs can be tested against guesses.
SECRET_FINGERPRINTS = Fingerprints()


def masked_objects(objects, default_namespace):
    """{label: object} with Secrets' data as this run's fingerprints."""
    return {object_label(obj, default_namespace): mask_secret(obj, SECRET_FINGERPRINTS) for obj in objects}


def changed_objects(before, after, default_namespace):
    """The objects that differ between two manifests: ({label: before}, {label: after}), Secret data masked."""
    old = masked_objects(before, default_namespace)
    new = masked_objects(after, default_namespace)
    labels = sorted(label for label in set(old) | set(new) if old.get(label) != new.get(label))
    return ({label: old[label] for label in labels if label in old},
            {label: new[label] for label in labels if label in new})


def set_value_args(set_values):
    """The --set flags of set_values. Kept for callers that show what helm would be given; helm_release never
    puts them on a command line (apply_set_values writes their result into a values file instead)."""
    args = []
    for item in set_values or []:
        args.extend([SET_FLAGS[item.get('value_type') or 'raw'], item['value']])
    return args


# -- --set, --set-string, --set-json and --set-file read as helm reads them (its strvals syntax) --------------
#
# helm_release never passes set_values on helm's command line (any user of the host could read them in `ps`):
# it applies them itself, in helm's order (every json item, then raw, then string, then file, each type in
# list order, over the merged values files and values), and gives helm the result as a values file.
# A live test (test_helm_precedence.py) checks the result against both real helm binaries.

SET_ORDER = ('json', 'raw', 'string', 'file')
_MAX_INDEX = 65536
_MAX_NESTING = 30


class SetValuesError(ValueError):
    """A set_values item helm would refuse; the message names keys, never values."""


def _typed(text, as_string):
    """A --set value's type as helm infers it: true/false/null (any case), 0, decimal int64 not starting with 0."""
    if as_string:
        return text
    lowered = text.lower()
    if lowered in ('true', 'false'):
        return lowered == 'true'
    if lowered == 'null':
        return None
    if text == '0':
        return 0
    if text and text[0] != '0' and re.match(r'^[-+]?[0-9]+$', text):
        number = int(text)
        if -2 ** 63 <= number < 2 ** 63:
            return number
    return text


class _SetParser:
    """One `key=value[,key=value...]` item applied into a values mapping, in place."""

    def __init__(self, text, data, kind, read_file=None):
        self.text = text
        self.pos = 0
        self.data = data
        self.kind = kind
        self.read_file = read_file

    def eof(self):
        return self.pos >= len(self.text)

    def until(self, stops):
        """Characters up to one of stops (a backslash escapes the next one): (text, stop or None at the end)."""
        out = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            self.pos += 1
            if char in stops:
                return ''.join(out), char
            if char == '\\':
                if self.pos >= len(self.text):
                    return ''.join(out), None
                out.append(self.text[self.pos])
                self.pos += 1
                continue
            out.append(char)
        return ''.join(out), None

    def value(self, raw):
        if self.kind == 'file':
            return self.read_file(raw)
        return _typed(raw, self.kind == 'string')

    def parse(self):
        while not self.eof():
            self.key(self.data, 0)

    def json_value(self):
        """A JSON value at the cursor (an empty one is null), then blanks and one comma skipped."""
        rest = self.text[self.pos:]
        stripped = rest.lstrip()
        if not stripped or stripped.startswith(','):
            self.pos += len(rest) - len(stripped) + (1 if stripped else 0)
            return None
        try:
            value, end = json.JSONDecoder().raw_decode(stripped)
        except ValueError:
            raise SetValuesError('is not valid JSON')
        self.pos += len(rest) - len(stripped) + end
        while not self.eof() and self.text[self.pos].isspace():
            self.pos += 1
        if not self.eof() and self.text[self.pos] == ',':
            self.pos += 1
        return value

    def assigned(self):
        """The value after `=`: JSON, a `{a,b}` list, or a scalar up to the next comma."""
        if self.kind == 'json':
            return self.json_value()
        if self.eof():
            return ''
        if self.text[self.pos] == '{':
            self.pos += 1
            items = []
            while True:
                raw, stop = self.until(',}')
                if stop is None:
                    raise SetValuesError("a list must end with '}'")
                items.append(self.value(raw))
                if stop == '}':
                    if not self.eof() and self.text[self.pos] == ',':
                        self.pos += 1
                    return items
        raw, _stop = self.until(',')
        return self.value(raw)

    def key(self, data, level):
        name, stop = self.until('=[,.')
        if stop is None:
            if not name:
                return
            raise SetValuesError('key %r has no value' % name)
        if stop == ',':
            raise SetValuesError('key %r has no value (cannot end with ,)' % name)
        if stop == '=':
            value = self.assigned()
            if name:
                data[name] = value
            return
        if stop == '.':
            level += 1
            if level > _MAX_NESTING:
                raise SetValuesError('a key is nested deeper than %d levels' % _MAX_NESTING)
            inner = data.get(name, {}) if name in data else {}
            if not isinstance(inner, dict):
                raise SetValuesError('key %r is not a map' % name)
            self.key(inner, level)
            if not inner:
                raise SetValuesError('key map %r has no value' % name)
            if name:
                data[name] = inner
            return
        # stop == '[': a list index
        existing = data.get(name, []) if name in data else []
        if not isinstance(existing, list):
            raise SetValuesError('key %r is not a list' % name)
        items = self.list_item(existing, self.index(), level)
        if name:
            data[name] = items

    def index(self):
        raw, stop = self.until(']')
        if stop is None or not re.match(r'^[-+]?[0-9]+$', raw):
            raise SetValuesError('a list index must be a number in [...]')
        number = int(raw)
        if number < 0:
            raise SetValuesError('negative list index %d' % number)
        if number > _MAX_INDEX:
            raise SetValuesError('list index %d is greater than %d' % (number, _MAX_INDEX))
        return number

    @staticmethod
    def put(items, index, value):
        items = list(items)
        if len(items) <= index:
            items.extend([None] * (index + 1 - len(items)))
        items[index] = value
        return items

    def list_item(self, items, index, level):
        rest, stop = self.until('[.=')
        if rest:
            raise SetValuesError('unexpected %r after a list index' % rest)
        if stop is None:
            raise SetValuesError('a list index has no value')
        if stop == '=':
            return self.put(items, index, self.assigned())
        if stop == '[':
            inner = items[index] if len(items) > index and items[index] is not None else []
            if not isinstance(inner, list):
                raise SetValuesError('a list element is not a list')
            return self.put(items, index, self.list_item(inner, self.index(), level))
        inner = items[index] if len(items) > index and isinstance(items[index], dict) else {}
        self.key(inner, level)
        return self.put(items, index, inner)


def apply_set_values(base, set_values, read_file=None):
    """`base` (the merged values files and values, not modified) with set_values applied as helm applies them:
    by type (json, raw, string, file), each type in list order. read_file(path) gives a `file` item's content.
    SetValuesError(index, message) names the item at fault."""
    data = json.loads(json.dumps(base or {}))
    items = list(enumerate(set_values or []))
    for kind in SET_ORDER:
        for index, item in items:
            if (item.get('value_type') or 'raw') != kind:
                continue
            try:
                _SetParser(item['value'], data, kind, read_file).parse()
            except SetValuesError as exc:
                raise SetValuesError(index, str(exc))
            except RecursionError:
                raise SetValuesError(index, 'is nested too deeply')
    return data


def mask_paths(values, secrets):
    """`values` with every leaf under a key path that `secrets` (a mapping) gives replaced by the mask."""
    if not isinstance(values, dict) or not isinstance(secrets, dict):
        return values
    masked = dict(values)
    for key, secret in secrets.items():
        if key not in masked:
            continue
        if isinstance(secret, dict) and isinstance(masked[key], dict) and secret:
            masked[key] = mask_paths(masked[key], secret)
        else:
            masked[key] = mask_values(masked[key], mask_all=True)
    return masked


def write_private(path, text):
    """Write a file only its owner can read, created so (never readable by others, not even briefly); an
    existing file is replaced. The caller removes it."""
    if os.path.lexists(path):
        os.remove(path)
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_NOFOLLOW', 0), 0o600)
    with os.fdopen(handle, 'wb') as out:
        out.write(text if isinstance(text, bytes) else text.encode('utf-8'))


def display_command(argv, mask_all=False):
    """A command line safe to show: values of --set* flags masked when their key looks secret (or always, with no_log)."""
    shown = []
    mask_next = False
    for arg in argv:
        if mask_next:
            key, _sep, _value = arg.partition('=')
            shown.append('%s=%s' % (key, MASK) if (mask_all or SECRET_WORDS.search(key)) else arg)
            mask_next = False
            continue
        shown.append(arg)
        mask_next = arg in SET_FLAGS.values()
    return ' '.join(shlex.quote(a) for a in shown)


class HelmRunner:
    """Runs helm with the module's connection settings; records every command line it ran (masked)."""

    def __init__(self, module, binary, kube, mask_all=False):
        self.module = module
        self.binary = binary
        self.mask_all = mask_all
        self.commands = []
        self._private = None
        # The connection (an auth_params() record): flags and environment, or a private kubeconfig.
        self.global_args, self.env = helm_settings(kube, self._write_kubeconfig) if kube else ([], {})
        self.version = None
        self.flags = None

    def detect_version(self):
        rc, out, err = self._execute(self.argv(VERSION_ARGS))
        version = parse_version(out) if rc == 0 else None
        if version is None:
            rc, out, err = self._execute(self.argv(['version', '--short']))
            version = parse_version(out)
        if version is None:
            raise HelmError('cannot tell the version of %s: %s' % (self.binary, (err or out).strip()))
        if version < MIN_VERSION:
            raise HelmError('%s is helm %d.%d.%d; helm 3.8 or newer is required' % ((self.binary,) + version))
        self.version = version
        self.flags = HelmFlags(version)
        return version

    def _execute(self, argv, data=None):
        kwargs = {'environ_update': self.env}
        if data is not None:
            kwargs.update(data=data, binary_data=True)
        return self.module.run_command(argv, **kwargs)

    def cleanup(self):
        """Delete the private directory (values files, registry configuration): called on every exit
        path of the module, so nothing of the values outlives the task."""
        private, self._private = self._private, None
        if private:
            shutil.rmtree(private, ignore_errors=True)
        self.env.pop('HELM_REGISTRY_CONFIG', None)

    @property
    def version_text(self):
        return 'v%d.%d.%d' % self.version if self.version else None

    def private_dir(self):
        """A temporary directory (mode 0700) for this run only (registry configuration, values files); removed by cleanup."""
        if self._private is None:
            self._private = tempfile.mkdtemp(prefix='helm-release-', dir=getattr(self.module, 'tmpdir', None))
        return self._private

    def _write_kubeconfig(self, text):
        """The private kubeconfig holding this run's connection (see _kube_auth.helm_settings)."""
        path = os.path.join(self.private_dir(), 'kubeconfig')
        write_private(path, text)
        return path

    def private_registry_config(self):
        """A registry configuration in the private directory: logins never touch the user's helm configuration."""
        if 'HELM_REGISTRY_CONFIG' not in self.env:
            path = os.path.join(self.private_dir(), 'registry-config.json')
            write_private(path, '{"auths": {}}\n')
            self.env['HELM_REGISTRY_CONFIG'] = path
        return self.env['HELM_REGISTRY_CONFIG']

    def argv(self, args):
        argv = [self.binary] + list(args)
        # Global kube flags go after the subcommand words so `helm registry login` and friends accept them.
        if args and args[0] not in ('version', 'registry', 'show', 'template', 'pull', 'repo', 'search', 'dependency'):
            argv += self.global_args
        return argv

    def run(self, args, data=None, ok=(0,), record=True):
        argv = self.argv(args)
        shown = display_command(argv, self.mask_all)
        if record:
            self.commands.append(shown)
        rc, out, err = self._execute(argv, data)
        if rc not in ok:
            raise HelmError('%s failed (rc=%s): %s' % (shown, rc, (err or out).strip()), command=shown, rc=rc, stderr=err)
        return rc, out, err

    def run_json(self, args, **kwargs):
        _rc, out, _err = self.run(list(args) + ['-o', 'json'], **kwargs)
        out = to_text(out).strip()
        if not out:
            return None
        # helm may print warnings before the document.
        start = min([i for i in (out.find('{'), out.find('[')) if i >= 0] or [0])
        if out[start:] == 'null':
            return None
        return json.loads(out[start:])

    def login(self, host, username, password, plain_http=False, insecure=False):
        self.private_registry_config()
        args = ['registry', 'login', host, '--username', username, '--password-stdin']
        if plain_http and self.flags.plain_http_supported:
            args.append('--plain-http')
        if insecure:
            args.append('--insecure')
        try:
            self.run(args, data=password)
        except HelmError as exc:
            text = to_text(exc.stderr or '') or str(exc)
            last = ' '.join(text.strip().splitlines()[-1:]).replace('Error: ', '')
            if _UNREACHABLE.search(text):
                raise HelmError('chart_ref: registry %s could not be reached to log in; nothing was installed (helm: %s)' % (host, last),
                                command=exc.command, rc=exc.rc, stderr=exc.stderr, option='chart_ref')
            if not _AUTH_FAILURE.search(text):
                raise
            raise HelmError('registry_password: registry %s refused the login of %r; check registry_username and '
                            'registry_password (helm: %s)' % (host, username, last),
                            command=exc.command, rc=exc.rc, stderr=exc.stderr, option='registry_password')

    # -- reading a release ------------------------------------------------------------------

    @staticmethod
    def release_args(name, namespace):
        """`release`'s command (before run_json's `-o json`)."""
        return ['list', '-n', namespace, '--filter', '^%s$' % re.escape(name)] + LIST_STATES

    @staticmethod
    def status_args(name, namespace):
        """`status`'s command (before run_json's `-o json`)."""
        return ['status', name, '-n', namespace, '--show-resources']

    def release(self, name, namespace):
        """helm list's entry for the release (any state but uninstalled), or None."""
        found = self.run_json(self.release_args(name, namespace), record=False)
        for entry in found or []:
            if entry.get('name') == name:
                return entry
        return None

    def history(self, name, namespace):
        return self.run_json(['history', name, '-n', namespace, '--max', '20'], record=False) or []

    def values(self, name, namespace, revision=None):
        args = ['get', 'values', name, '-n', namespace]
        if revision is not None:
            args += ['--revision', str(revision)]
        return self.run_json(args, record=False) or {}

    def status(self, name, namespace):
        """`helm status --show-resources -o json`: the latest revision with its values, manifest and live objects."""
        return self.run_json(self.status_args(name, namespace), record=False)

    def manifest(self, name, namespace):
        _rc, out, _err = self.run(['get', 'manifest', name, '-n', namespace], record=False)
        return to_text(out)
