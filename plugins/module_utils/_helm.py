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
import tempfile

try:
    import yaml
    HAS_YAML = True
    YAML_IMPORT_ERROR = None
except ImportError as exc:  # the module reports it with missing_required_lib
    yaml = None
    HAS_YAML = False
    YAML_IMPORT_ERROR = exc

from ansible.module_utils.common.text.converters import to_text

from ansible_collections.genai.stack.plugins.module_utils._kube import MASK, mask_secret

RELEASE_NAME = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')
RELEASE_NAME_MAX = 53
PENDING = ('pending-install', 'pending-upgrade', 'pending-rollback')
SECRET_WORDS = re.compile(r'(passw|secret|token|api[_-]?key|private[_-]?key|credential|auth)', re.I)
SET_FLAGS = {'raw': '--set', 'string': '--set-string', 'json': '--set-json', 'file': '--set-file'}
MIN_VERSION = (3, 8, 0)


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

    @property
    def plain_http_supported(self):
        return self.version >= (3, 13, 0)

    def list_states(self):
        # helm 4 dropped `list --all`; the state flags exist in both.
        return ['--deployed', '--failed', '--pending', '--superseded', '--uninstalling']


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
        parsed = yaml.safe_load(raw)
        if isinstance(parsed, dict) and parsed.get('kind'):
            docs.append((raw.strip('\n') + '\n', parsed))
        elif isinstance(parsed, dict) and parsed.get('kind') is None and parsed.get('items') is None and parsed:
            docs.append((raw.strip('\n') + '\n', parsed))
    return docs


def split_manifest(text):
    return [parsed for _raw, parsed in split_documents(text)]


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


def masked_objects(objects, default_namespace):
    """{label: object} with Secrets' data as hashes."""
    return {object_label(obj, default_namespace): mask_secret(obj) for obj in objects}


def changed_objects(before, after, default_namespace):
    """The objects that differ between two manifests: ({label: before}, {label: after}), Secret data masked."""
    old = masked_objects(before, default_namespace)
    new = masked_objects(after, default_namespace)
    labels = sorted(label for label in set(old) | set(new) if old.get(label) != new.get(label))
    return ({label: old[label] for label in labels if label in old},
            {label: new[label] for label in labels if label in new})


def set_value_args(set_values):
    args = []
    for item in set_values or []:
        args.extend([SET_FLAGS[item.get('value_type') or 'raw'], item['value']])
    return args


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
        self.env = {}
        self.global_args = []
        if kube.get('kubeconfig'):
            self.global_args += ['--kubeconfig', kube['kubeconfig']]
        if kube.get('context'):
            self.global_args += ['--kube-context', kube['context']]
        # Through the environment, so a token never shows in `ps`.
        if kube.get('host'):
            self.env['HELM_KUBEAPISERVER'] = kube['host']
        if kube.get('api_key'):
            self.env['HELM_KUBETOKEN'] = kube['api_key']
        if kube.get('ca_cert'):
            self.env['HELM_KUBECAFILE'] = kube['ca_cert']
        if kube.get('validate_certs') is False:
            self.env['HELM_KUBEINSECURE_SKIP_TLS_VERIFY'] = 'true'
        self._private = None
        self.version = None
        self.flags = None

    def detect_version(self):
        rc, out, err = self.module.run_command([self.binary, 'version', '--template', '{{.Version}}'], environ_update=self.env)
        version = parse_version(out) if rc == 0 else None
        if version is None:
            rc, out, err = self.module.run_command([self.binary, 'version', '--short'], environ_update=self.env)
            version = parse_version(out)
        if version is None:
            raise HelmError('cannot tell the version of %s: %s' % (self.binary, (err or out).strip()))
        if version < MIN_VERSION:
            raise HelmError('%s is helm %d.%d.%d; helm 3.8 or newer is required' % ((self.binary,) + version))
        self.version = version
        self.flags = HelmFlags(version)
        return version

    @property
    def version_text(self):
        return 'v%d.%d.%d' % self.version if self.version else None

    def private_dir(self):
        """A temporary directory for this run only (registry configuration, values file); removed with the module's tmpdir."""
        if self._private is None:
            self._private = tempfile.mkdtemp(prefix='helm-release-', dir=getattr(self.module, 'tmpdir', None))
        return self._private

    def private_registry_config(self):
        """A registry configuration in the private directory: logins never touch the user's helm configuration."""
        if 'HELM_REGISTRY_CONFIG' not in self.env:
            path = os.path.join(self.private_dir(), 'registry-config.json')
            with open(path, 'w') as handle:
                handle.write('{"auths": {}}\n')
            os.chmod(path, 0o600)
            self.env['HELM_REGISTRY_CONFIG'] = path
        return self.env['HELM_REGISTRY_CONFIG']

    def run(self, args, data=None, ok=(0,), record=True):
        argv = [self.binary] + list(args)
        # Global kube flags go after the subcommand words so `helm registry login` and friends accept them.
        if args and args[0] not in ('version', 'registry', 'show', 'template', 'pull', 'repo', 'search', 'dependency'):
            argv += self.global_args
        shown = display_command(argv, self.mask_all)
        if record:
            self.commands.append(shown)
        kwargs = {'environ_update': self.env}
        if data is not None:
            kwargs.update(data=data, binary_data=True)
        rc, out, err = self.module.run_command(argv, **kwargs)
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

    def release(self, name, namespace):
        """helm list's entry for the release (any state but uninstalled), or None."""
        found = self.run_json(['list', '-n', namespace, '--filter', '^%s$' % re.escape(name)] + self.flags.list_states(), record=False)
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

    def manifest(self, name, namespace):
        _rc, out, _err = self.run(['get', 'manifest', name, '-n', namespace], record=False)
        return to_text(out)
