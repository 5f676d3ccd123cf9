# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to genai.stack; not a public API.

What genai.stack.helm_chart_mirror needs besides the helm binary's version: reading a chart package's
Chart.yaml, telling helm's pull/push/login failures apart (absent, refused, unreachable), and a helm
runner whose registry logins stay in a private configuration (the password on stdin only).
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import tarfile
import tempfile

from ansible.module_utils.common.text.converters import to_text
from ansible_collections.genai.stack.plugins.module_utils._helm import yaml

MIRROR = re.compile(r'^oci://[^/\s]+(/[^\s]*[^/\s])?$')
CHART_NAME = re.compile(r'^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$')
# helm's own rule for a chart version: semver 2, with an optional leading "v" (cert-manager's v1.21.1).
EXACT_VERSION = re.compile(r'^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)'
                           r'(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$')
MIN_PLAIN_HTTP = (3, 13, 0)
MIN_VERSION = (3, 8, 0)

AUTH_FAILURE = re.compile(r'\b401\b|\b403\b|unauthorized|authentication required|basic credential not found|denied|forbidden', re.I)
UNREACHABLE = re.compile(r'connection refused|no such host|i/o timeout|dial tcp|network is unreachable|TLS handshake timeout'
                         r'|server gave HTTP response to HTTPS client|context deadline exceeded', re.I)
ABSENT = re.compile(r'not found|name unknown|manifest unknown|no chart version found', re.I)


class MirrorError(Exception):
    """A failure told against the option at fault (`option`), with the helm command line when helm failed."""

    def __init__(self, message, option=None, command=None, stderr=None):
        super().__init__(message)
        self.option = option
        self.command = command
        self.stderr = stderr


class HelmFailed(Exception):
    def __init__(self, command, rc, out, err):
        super().__init__('%s failed (rc=%s): %s' % (command, rc, (err or out).strip()))
        self.command = command
        self.rc = rc
        self.stderr = err or out

    @property
    def last_line(self):
        lines = to_text(self.stderr or '').strip().splitlines()
        return lines[-1].replace('Error: ', '') if lines else ''


def parse_version(text):
    match = re.search(r'v?(\d+)\.(\d+)\.(\d+)', text or '')
    return tuple(int(part) for part in match.groups()) if match else None


def registry_host(oci_ref):
    return oci_ref[len('oci://'):].split('/', 1)[0]


def package_name(name, version):
    """The file `helm package` and `helm pull` write for a chart."""
    return '%s-%s.tgz' % (name, version)


def file_digest(path):
    sha = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            sha.update(block)
    return 'sha256:' + sha.hexdigest()


def read_chart_yaml(path):
    """The Chart.yaml mapping of a chart package (the one at the archive's top directory).
    ValueError when the file is not a chart package."""
    try:
        with tarfile.open(path, 'r:gz') as archive:
            for member in archive:
                parts = member.name.strip('/').split('/')
                if member.isfile() and len(parts) == 2 and parts[1] == 'Chart.yaml':
                    loaded = yaml.safe_load(archive.extractfile(member).read())
                    if not isinstance(loaded, dict):
                        raise ValueError('%s: Chart.yaml is not a mapping' % path)
                    return loaded
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ValueError('%s is not a chart package (%s)' % (path, exc))
    except yaml.YAMLError as exc:
        raise ValueError('%s: Chart.yaml is not valid YAML (%s)' % (path, type(exc).__name__))
    raise ValueError('%s is not a chart package (no <chart>/Chart.yaml in it)' % path)


def check_package(path, name, version):
    """None when the package at path is chart `name` at `version`, else what it is instead."""
    meta = read_chart_yaml(path)
    found = (to_text(meta.get('name')), to_text(meta.get('version')))
    if found != (name, version):
        return 'holds chart %s version %s, not %s %s' % (found[0], found[1], name, version)
    return None


class MirrorHelm:
    """helm pull / push / registry login with a private registry configuration; every command recorded."""

    def __init__(self, module, binary, plain_http=False):
        self.module = module
        self.binary = binary
        self.plain_http = plain_http
        self.commands = []
        self.version = None
        self.work = tempfile.mkdtemp(prefix='helm-chart-mirror-', dir=getattr(module, 'tmpdir', None))
        config = os.path.join(self.work, 'registry-config.json')
        with open(config, 'w') as handle:
            handle.write('{"auths": {}}\n')
        os.chmod(config, 0o600)
        # Logins go here, never to the user's helm configuration; helm also reads no other login from it.
        self.env = {'HELM_REGISTRY_CONFIG': config}

    def run(self, args, data=None):
        argv = [self.binary] + list(args)
        shown = ' '.join(shlex.quote(a) for a in argv)
        self.commands.append(shown)
        kwargs = {'environ_update': self.env}
        if data is not None:
            kwargs.update(data=data, binary_data=True)
        rc, out, err = self.module.run_command(argv, **kwargs)
        if rc != 0:
            raise HelmFailed(shown, rc, to_text(out), to_text(err))
        return to_text(out), to_text(err)

    def detect_version(self):
        try:
            out, _err = self.run(['version', '--short'])
        except HelmFailed as exc:
            raise MirrorError('binary_path: cannot run %s: %s' % (self.binary, exc.last_line), option='binary_path')
        self.version = parse_version(out)
        if self.version is None or self.version < MIN_VERSION:
            raise MirrorError('binary_path: %s is not helm 3.8 or newer (%s)' % (self.binary, out.strip()), option='binary_path')
        if self.plain_http and self.version < MIN_PLAIN_HTTP:
            raise MirrorError('plain_http: needs helm 3.13 or newer, %s is %s' % (self.binary, self.version_text), option='plain_http')
        return self.version

    @property
    def version_text(self):
        return 'v%d.%d.%d' % self.version if self.version else None

    def _http(self, plain_http):
        return ['--plain-http'] if plain_http else []

    def login(self, host, username, password):
        try:
            self.run(['registry', 'login', host, '--username', username, '--password-stdin'] + self._http(self.plain_http), data=password)
        except HelmFailed as exc:
            if UNREACHABLE.search(exc.stderr):
                raise MirrorError('mirror: registry %s could not be reached; nothing was pushed (helm: %s)' % (host, exc.last_line),
                                  option='mirror', command=exc.command, stderr=exc.stderr)
            if AUTH_FAILURE.search(exc.stderr):
                raise MirrorError('registry_password: registry %s refused the login of %r; check registry_username and '
                                  'registry_password; nothing was pushed (helm: %s)' % (host, username, exc.last_line),
                                  option='registry_password', command=exc.command, stderr=exc.stderr)
            raise MirrorError('mirror: logging in to %s failed: %s' % (host, exc.last_line), option='mirror',
                              command=exc.command, stderr=exc.stderr)

    def pull_from_mirror(self, mirror, name, version, dest, with_credentials):
        """The path of the mirror's package of name:version pulled into dest, or None when the mirror has no such chart."""
        ref = '%s/%s' % (mirror, name)
        try:
            self.run(['pull', ref, '--version', version, '--destination', dest] + self._http(self.plain_http))
        except HelmFailed as exc:
            if UNREACHABLE.search(exc.stderr):
                raise MirrorError('mirror: registry %s could not be reached; nothing was pushed (helm: %s)'
                                  % (registry_host(mirror), exc.last_line), option='mirror', command=exc.command, stderr=exc.stderr)
            if AUTH_FAILURE.search(exc.stderr):
                option = 'registry_password' if with_credentials else 'registry_username'
                raise MirrorError('%s: registry %s refused to read %s; %s (helm: %s)'
                                  % (option, registry_host(mirror), ref,
                                     'check registry_username and registry_password' if with_credentials
                                     else 'it needs registry_username and registry_password', exc.last_line),
                                  option=option, command=exc.command, stderr=exc.stderr)
            if ABSENT.search(exc.stderr):
                return None
            raise MirrorError('mirror: reading %s:%s from the mirror failed: %s' % (ref, version, exc.last_line), option='mirror',
                              command=exc.command, stderr=exc.stderr)
        return self._pulled(dest, name, version)

    def pull_from_source(self, index, chart, dest):
        """The path of chart's package pulled from its source (an oci:// reference, or a name in repo_url)."""
        option = 'charts[%d].source' % index
        source = chart['source']
        if source.startswith('oci://'):
            args = ['pull', source]
        else:
            args = ['pull', source, '--repo', chart['repo_url']]
        try:
            self.run(args + ['--version', chart['version'], '--destination', dest])
        except HelmFailed as exc:
            raise MirrorError('%s: chart %s %s could not be pulled from %s (helm: %s); nothing was pushed'
                              % (option, chart['name'], chart['version'],
                                 source if source.startswith('oci://') else '%s in %s' % (source, chart['repo_url']), exc.last_line),
                              option=option, command=exc.command, stderr=exc.stderr)
        return self._pulled(dest, chart['name'], chart['version'], what=option)

    @staticmethod
    def _pulled(dest, name, version, what='mirror'):
        tgz = [f for f in os.listdir(dest) if f.endswith('.tgz')]
        if len(tgz) != 1:
            raise MirrorError('%s: helm pull of %s %s wrote %s, not one package' % (what, name, version, sorted(tgz) or 'nothing'),
                              option=what)
        return os.path.join(dest, tgz[0])

    def push(self, package, mirror):
        try:
            self.run(['push', package, mirror] + self._http(self.plain_http))
        except HelmFailed as exc:
            if AUTH_FAILURE.search(exc.stderr):
                raise MirrorError('registry_password: registry %s refused the push of %s; check registry_username and registry_password '
                                  '(helm: %s)' % (registry_host(mirror), os.path.basename(package), exc.last_line),
                                  option='registry_password', command=exc.command, stderr=exc.stderr)
            if UNREACHABLE.search(exc.stderr):
                raise MirrorError('mirror: registry %s could not be reached (helm: %s)' % (registry_host(mirror), exc.last_line),
                                  option='mirror', command=exc.command, stderr=exc.stderr)
            raise MirrorError('mirror: pushing %s to %s failed: %s' % (os.path.basename(package), mirror, exc.last_line),
                              option='mirror', command=exc.command, stderr=exc.stderr)
