"""Which charts a benchmark run installed: the vendors' own packages or the project's stand-ins.

Measured, not taken from configuration, in three places:

- the chart mirror of the sandbox (oci://$SANDBOX_REGISTRY/mirror): for each pin of
  playbooks/vars/chart_pins.yml, the digest of the chart layer it holds, compared with the sha256
  of the vendor's package <name>-<version>.tgz in the chart directory (helm pushes a package as it
  is, so the two are equal exactly when the mirror holds the vendor's file);
- the releases installed (helm's release Secrets): each release stores the chart it was installed
  from (metadata and top-level templates); their fingerprint is compared with the vendor's package,
  with the stand-in of the same name and version (tests/fixtures/charts) and with the collection's
  own charts (roles/*/files/charts), so a role that took its chart from anywhere else than the
  mirror would show too;
- what site.yml's last play said (its stand-in summary), checked against the mirror.
"""

from __future__ import annotations

import base64
import glob
import gzip
import hashlib
import json
import os
import re
import subprocess
import tarfile
import urllib.error
import urllib.request

import yaml

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
# Where .ci/run finds the vendors' packages when GENAI_STACK_CHART_DIR is not set.
SHARED_CHART_DIR = os.path.join(os.path.dirname(ROOT), 'shared', 'vendor-charts')
PINS_FILE = os.path.join(ROOT, 'playbooks', 'vars', 'chart_pins.yml')
STANDIN_GLOB = os.path.join(ROOT, 'tests', 'fixtures', 'charts', '*', 'Chart.yaml')
OWN_GLOB = os.path.join(ROOT, 'roles', '*', 'files', 'charts', '*', 'Chart.yaml')
# The task of site.yml's last play that names the stand-ins, and the list in its message.
SUMMARY_TASK = 'Say which releases came from stand-in charts'
SUMMARY_LIST = re.compile(r'stand-in charts \([^)]*\):\s*([^;]*);')
SOURCES = ('vendor', 'stand-in', 'collection', 'unknown')


def choose_chart_dir(environ):
    """(directory or '', how it was chosen) for a sandbox the benchmark starts, as .ci/run chooses:
    GENAI_STACK_CHART_DIR when set (set and empty: stand-ins only, as for the sandbox), else
    ../shared/vendor-charts when it exists."""
    if 'GENAI_STACK_CHART_DIR' in environ:
        value = environ['GENAI_STACK_CHART_DIR']
        return (os.path.abspath(value), 'GENAI_STACK_CHART_DIR') if value else ('', 'GENAI_STACK_CHART_DIR set and empty: stand-ins only')
    if os.path.isdir(SHARED_CHART_DIR):
        return os.path.realpath(SHARED_CHART_DIR), '../shared/vendor-charts (GENAI_STACK_CHART_DIR unset; as .ci/run)'
    return '', 'no GENAI_STACK_CHART_DIR and no ../shared/vendor-charts: stand-ins only'


def sandbox_chart_dir(sandbox_dir):
    """The chart directory a sandbox's mirror was filled from, as the sandbox recorded it
    ('' for stand-ins only); None when it recorded none."""
    recorded = os.path.join(sandbox_dir, 'registry', 'chart-dir') if sandbox_dir else ''
    if not recorded or not os.path.exists(recorded):
        return None
    with open(recorded, encoding='utf-8') as handle:
        return handle.read().strip()


def sandbox_dir_of(env):
    """The directory of a running sandbox, from its environment (SANDBOX_DIR, or where KUBECONFIG is)."""
    for candidate in (env.get('SANDBOX_DIR'), os.path.dirname(env.get('KUBECONFIG') or '')):
        if candidate and os.path.isdir(os.path.join(candidate, 'registry')):
            return candidate
    return None


def pins():
    with open(PINS_FILE, encoding='utf-8') as handle:
        return [(str(p['name']), str(p['version'])) for p in yaml.safe_load(handle)['genai_stack_chart_pins']]


def _sha256(path):
    sha = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            sha.update(block)
    return 'sha256:' + sha.hexdigest()


def fingerprint(description, templates):
    """One hash of a chart's description and its own templates ({'templates/x.yaml': bytes}), the
    parts a helm release stores of the chart it was installed from (not its subcharts)."""
    items = sorted((name, hashlib.sha256(data).hexdigest()) for name, data in templates.items())
    return hashlib.sha256(json.dumps([str(description or '').strip(), items]).encode()).hexdigest()


def package_fingerprint(path):
    """(name, version, fingerprint) of a chart package."""
    meta, templates = None, {}
    with tarfile.open(path, 'r:gz') as archive:
        for member in archive:
            parts = member.name.strip('/').split('/')
            if not member.isfile() or len(parts) < 2:
                continue
            if len(parts) == 2 and parts[1] == 'Chart.yaml':
                meta = yaml.safe_load(archive.extractfile(member).read())
            elif parts[1] == 'templates':
                templates['/'.join(parts[1:])] = archive.extractfile(member).read()
    meta = meta or {}
    return str(meta.get('name')), str(meta.get('version')), fingerprint(meta.get('description'), templates)


def directory_fingerprint(chart_yaml):
    """(name, version, fingerprint) of an unpacked chart (stand-ins, the collection's own charts)."""
    top = os.path.dirname(chart_yaml)
    with open(chart_yaml, encoding='utf-8') as handle:
        meta = yaml.safe_load(handle) or {}
    templates = {}
    for folder, _dirs, files in os.walk(os.path.join(top, 'templates')):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, 'rb') as handle:
                templates[os.path.relpath(path, top).replace(os.sep, '/')] = handle.read()
    return str(meta.get('name')), str(meta.get('version')), fingerprint(meta.get('description'), templates)


def known_charts(chart_dir):
    """{(name, version): [(source, fingerprint, where)]} for the vendor packages of chart_dir, the
    stand-ins and the collection's own charts."""
    known = {}
    if chart_dir and os.path.isdir(chart_dir):
        for path in sorted(glob.glob(os.path.join(chart_dir, '*.tgz'))):
            try:
                name, version, print_ = package_fingerprint(path)
            except (tarfile.TarError, OSError, yaml.YAMLError):
                continue
            known.setdefault((name, version), []).append(('vendor', print_, path))
    for pattern, source in ((STANDIN_GLOB, 'stand-in'), (OWN_GLOB, 'collection')):
        for chart_yaml in sorted(glob.glob(pattern)):
            name, version, print_ = directory_fingerprint(chart_yaml)
            known.setdefault((name, version), []).append((source, print_, os.path.relpath(os.path.dirname(chart_yaml), ROOT)))
    return known


def mirror_layer_digest(env, name, version):
    """(digest of the chart layer the sandbox mirror holds for name:version, error)."""
    mirror = env.get('SANDBOX_CHART_MIRROR') or ''
    if not mirror.startswith('oci://'):
        return None, 'no SANDBOX_CHART_MIRROR in the sandbox environment'
    host, _, path = mirror[len('oci://'):].partition('/')
    url = 'http://%s/v2/%s/manifests/%s' % (host, '/'.join(p for p in (path, name) if p), version)
    request = urllib.request.Request(url, headers={'Accept': 'application/vnd.oci.image.manifest.v1+json'})
    token = base64.b64encode(('%s:%s' % (env.get('SANDBOX_REGISTRY_USER', ''), env.get('SANDBOX_REGISTRY_PASSWORD', ''))).encode())
    request.add_header('Authorization', 'Basic ' + token.decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the sandbox registry, plain HTTP on loopback
            manifest = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return None, 'HTTP %s' % exc.code
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return None, str(exc)
    for layer in manifest.get('layers') or []:
        if layer.get('mediaType') == 'application/vnd.cncf.helm.chart.content.v1.tar+gzip':
            return layer.get('digest'), None
    return None, 'no chart layer in the manifest'


def mirror_record(env, chart_dir, known):
    out = {}
    for name, version in pins():
        digest, error = mirror_layer_digest(env, name, version)
        package = os.path.join(chart_dir, '%s-%s.tgz' % (name, version)) if chart_dir else ''
        package_digest = _sha256(package) if package and os.path.isfile(package) else None
        if digest is None:
            source = 'absent'
        elif digest == package_digest:
            source = 'vendor'
        elif any(s == 'stand-in' for s, _p, _w in known.get((name, version), [])):
            source = 'stand-in'
        else:
            source = 'unknown'
        entry = {'version': version, 'digest': digest, 'vendor_package_digest': package_digest, 'source': source}
        if error:
            entry['error'] = error
        out[name] = entry
    return out


def helm_releases(env, child_env):
    """[(namespace, release, stored chart)] of every deployed release, from helm's release Secrets."""
    kubectl = env.get('KUBECTL_BIN') or 'kubectl'
    proc = subprocess.run([kubectl, 'get', 'secrets', '--all-namespaces', '-l', 'owner=helm,status=deployed', '-o', 'json'],
                          env=child_env, capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise RuntimeError('kubectl get secrets (helm releases): %s' % proc.stderr.strip()[-400:])
    out = []
    for item in json.loads(proc.stdout).get('items') or []:
        raw = base64.b64decode(base64.b64decode((item.get('data') or {}).get('release', '')))
        if raw[:2] == b'\x1f\x8b':
            raw = gzip.decompress(raw)
        release = json.loads(raw)
        out.append((item['metadata']['namespace'], release.get('name'), release.get('chart') or {}))
    return sorted(out, key=lambda r: (r[0], r[1]))


def release_record(releases, known, chart_dir):
    index = {}
    if chart_dir and os.path.exists(os.path.join(chart_dir, 'index.json')):
        with open(os.path.join(chart_dir, 'index.json'), encoding='utf-8') as handle:
            index = {(str(e.get('chart')), str(e.get('version'))): e for e in json.load(handle)}
    out = []
    for namespace, name, chart in releases:
        meta = chart.get('metadata') or {}
        templates = {t['name']: base64.b64decode(t.get('data') or '') for t in chart.get('templates') or []}
        print_ = fingerprint(meta.get('description'), templates)
        key = (str(meta.get('name')), str(meta.get('version')))
        match = [(s, w) for s, p, w in known.get(key, []) if p == print_]
        entry = {'release': name, 'namespace': namespace, 'chart': key[0], 'version': key[1],
                 'source': match[0][0] if match else 'unknown', 'matched': match[0][1] if match else None}
        if entry['source'] == 'vendor' and key in index:
            entry['vendor_source'] = '%s@%s' % (index[key].get('source'), index[key].get('commit'))
        out.append(entry)
    return out


def summary_standins(messages):
    """The chart names site.yml's last play gave as stand-ins ([] when the play said nothing);
    None when its task did not run."""
    if messages is None:
        return None
    names = set()
    for msg in messages:
        match = SUMMARY_LIST.search(str(msg or ''))
        if match:
            names.update(n.strip() for n in match.group(1).split(',') if n.strip())
    return sorted(names)


def record(env, child_env, chart_dir, chart_dir_source, messages=None):
    """The chart record of a site run (while its releases are installed)."""
    known = known_charts(chart_dir)
    mirror = mirror_record(env, chart_dir, known)
    releases = release_record(helm_releases(env, child_env), known, chart_dir)
    by_source = {source: sorted('%s (%s %s)' % (r['release'], r['chart'], r['version']) for r in releases if r['source'] == source)
                 for source in SOURCES}
    said = summary_standins(messages)
    mirror_standins = sorted(n for n, e in mirror.items() if e['source'] == 'stand-in')
    out = {'chart_dir': chart_dir or None, 'chart_dir_source': chart_dir_source, 'mirror': mirror, 'releases': releases,
           'releases_by_source': by_source, 'mirror_standins': mirror_standins,
           'summary_standins': said,
           # What the play said is what the mirror holds (None: the play's task did not run).
           'summary_agrees': None if said is None else said == mirror_standins,
           'real_charts': bool(by_source['vendor'])}
    return out
