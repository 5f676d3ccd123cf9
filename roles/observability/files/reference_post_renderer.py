# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helm post-renderer of genai.stack.observability for the reference architecture's chart (ai-ml-observability).

That chart takes its OpenSearch credentials as values and writes them out three ways: in clear (base64)
into a Secret of its own, as bcrypt hashes (a new salt on every render) into the security-config
Secret, and in clear into a Grafana datasource ConfigMap. The role keeps every credential in its own
Secrets and gives the chart placeholders; this reads the rendered manifests on stdin and prints them with
  - the chart's credential Secrets removed (`drop`) and every reference to them (secretKeyRef, secretRef,
    the OpenSearchCluster's credential Secrets, volumes) pointing at the role's Secret (`secret_renames`);
  - every user of the security config's internal_users.yml given the hash the role computed once and
    stored (`security_config.hashes`), so the release does not change on every run; a user the role has
    no hash for, or a hash it expects for a user the chart does not define, fails the render;
  - the OpenSearch datasource of the Grafana datasource ConfigMaps given the user and a reference to the
    Grafana container's environment (`datasource`: Grafana expands ${VAR} in provisioning files), or
    removed with OpenSearch (`datasource.drop`); any other secret datasource field that is not such a
    reference fails the render;
  - the kinds in `defer_kinds` left out (a first install whose chart brings the CRDs of those kinds in
    its templates: helm cannot map them before the CRDs exist, so the role installs twice);
  - every Pod the release makes, except a DaemonSet's, kept off the GPU Nodes (`node_affinity`, the role's
    required node affinity): the Pod templates of Deployments, StatefulSets and Jobs, the Prometheus
    operator's Prometheus and Alertmanager, and the OpenSearch operator's node pools and dashboards. The
    chart takes no affinity value for most of them. A Pod that already has a required node affinity (the
    chart's, the role's values, or the user's extra values) keeps it. helm gives a post-renderer no hooks:
    the role places the hook Jobs by values.
Nothing secret reaches this program but the hashes. The role writes it, with its interpreter on the first
line, into a private temporary directory and its configuration beside it as <this file without .py>.json.
"""

from __future__ import annotations

import json
import os
import re
import sys

import yaml

LOADER = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)


class DUMPER(getattr(yaml, 'CSafeDumper', yaml.SafeDumper)):
    """Multi-line strings (dashboards, configuration files) as literal blocks, as charts write them."""


def _text(dumper, value):
    style = '|' if '\n' in value and not any(ch in value for ch in '\t\r') and not value.endswith((' ', '\n\n')) else None
    return dumper.represent_scalar('tag:yaml.org,2002:str', value, style=style)


DUMPER.add_representer(str, _text)
# Keys under which Kubernetes objects and the operators' custom resources name a Secret by `name`.
SECRET_REF_KEYS = ('secretKeyRef', 'secretRef', 'adminCredentialsSecret', 'opensearchCredentialsSecret', 'securityConfigSecret')
ENV_REFERENCE = re.compile(r'^\$\{?[A-Za-z_][A-Za-z0-9_]*\}?$')
SEARCH_TYPES = ('opensearch', 'elasticsearch')


# Where the Pods' spec is: in a Pod template, or the custom resource's spec (the Prometheus operator's kinds).
POD_TEMPLATE_KINDS = ('Deployment', 'StatefulSet', 'Job', 'ReplicaSet')
POD_SPEC_KINDS = ('Prometheus', 'Alertmanager', 'ThanosRuler')
REQUIRED = 'requiredDuringSchedulingIgnoredDuringExecution'


class RenderError(Exception):
    pass


def _name(obj):
    return (obj.get('metadata') or {}).get('name')


def _label(obj):
    meta = obj.get('metadata') or {}
    return '%s %s/%s' % (obj.get('kind'), meta.get('namespace', ''), meta.get('name'))


def rename_secret_refs(node, renames):
    """Every Secret reference in node (walked recursively) to a renamed Secret made to name the new one."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, dict):
                if key in SECRET_REF_KEYS and value.get('name') in renames:
                    value['name'] = renames[value['name']]
                elif key == 'secret' and value.get('secretName') in renames:
                    value['secretName'] = renames[value['secretName']]
            rename_secret_refs(value, renames)
    elif isinstance(node, list):
        for item in node:
            rename_secret_refs(item, renames)


def set_security_hashes(obj, hashes):
    """internal_users.yml of the security-config Secret with the stored hashes."""
    string_data = obj.get('stringData') or {}
    if 'internal_users.yml' not in string_data:
        raise RenderError('%s has no stringData internal_users.yml; the role cannot give it the stored hashes' % _label(obj))
    users = yaml.load(string_data['internal_users.yml'], Loader=LOADER) or {}
    defined = sorted(user for user, spec in users.items() if isinstance(spec, dict) and 'hash' in spec)
    unmanaged = sorted(set(defined) - set(hashes))
    missing = sorted(set(hashes) - set(defined))
    if unmanaged or missing:
        raise RenderError('%s: internal users with a hash %s, the role stores hashes for %s (unmanaged: %s, absent: %s)'
                          % (_label(obj), defined, sorted(hashes), unmanaged, missing))
    for user in defined:
        users[user]['hash'] = hashes[user]
    string_data['internal_users.yml'] = yaml.dump(users, Dumper=DUMPER, sort_keys=False, default_flow_style=False)


def rewrite_datasources(obj, settings):
    """The search datasources of a Grafana datasource ConfigMap without a literal secret; False: drop the ConfigMap."""
    data = obj.get('data') or {}
    for key in sorted(data):
        doc = yaml.load(data[key], Loader=LOADER) or {}
        sources = doc.get('datasources') or []
        kept = []
        for source in sources:
            if any(kind in str(source.get('type', '')).lower() for kind in SEARCH_TYPES):
                if settings.get('drop'):
                    continue
                source['basicAuthUser'] = settings['user']
                source.setdefault('secureJsonData', {})['basicAuthPassword'] = '${%s}' % settings['password_env']
            for field, value in sorted((source.get('secureJsonData') or {}).items()):
                if not ENV_REFERENCE.match(str(value)):
                    raise RenderError('%s: datasource %r has secureJsonData.%s in clear; give it as ${VARIABLE} from a Secret'
                                      % (_label(obj), source.get('name'), field))
            kept.append(source)
        if sources and not kept:
            del data[key]
            continue
        if sources:
            doc['datasources'] = kept
            data[key] = yaml.dump(doc, Dumper=DUMPER, sort_keys=False, default_flow_style=False)
    return bool(data)


def _pod_specs(obj):
    """The mappings of ``obj`` that carry its Pods' affinity (DaemonSets: none, they belong on every Node)."""
    kind, spec = obj.get('kind'), obj.get('spec')
    if not isinstance(spec, dict):
        return []
    if kind in POD_TEMPLATE_KINDS:
        return [(spec.get('template') or {}).get('spec')]
    if kind in POD_SPEC_KINDS:
        return [spec]
    if kind == 'OpenSearchCluster':
        return list(spec.get('nodePools') or []) + [spec.get('dashboards')]
    return []


def keep_off_nodes(obj, node_affinity):
    """Give each Pod spec of ``obj`` without a required node affinity the role's (a node affinity mapping)."""
    for spec in _pod_specs(obj):
        if not isinstance(spec, dict):
            continue
        affinity = spec.get('affinity') or {}
        current = affinity.get('nodeAffinity') or {}
        if current.get(REQUIRED):
            continue
        spec['affinity'] = dict(affinity, nodeAffinity=dict(current, **{REQUIRED: json.loads(json.dumps(node_affinity[REQUIRED]))}))


def post_render(docs, config):
    """The documents to install (the list is rebuilt; kept objects are changed in place)."""
    drop = {(item['kind'], item['name']) for item in config.get('drop', [])}
    defer = set(config.get('defer_kinds', []))
    renames = config.get('secret_renames', {})
    security = config.get('security_config') or {}
    datasource = config.get('datasource') or {}
    node_affinity = config.get('node_affinity') or {}
    out = []
    seen_security = False
    for obj in docs:
        kind = obj.get('kind')
        if (kind, _name(obj)) in drop or kind in defer:
            continue
        rename_secret_refs(obj, renames)
        if node_affinity:
            keep_off_nodes(obj, node_affinity)
        if security and kind == 'Secret' and _name(obj) == security['name']:
            set_security_hashes(obj, security['hashes'])
            seen_security = True
        if datasource and kind == 'ConfigMap' and ((obj.get('metadata') or {}).get('labels') or {}).get('grafana_datasource') is not None:
            if not rewrite_datasources(obj, datasource):
                continue
        out.append(obj)
    if security and security.get('required') and not seen_security:
        raise RenderError('the chart rendered no Secret %s; the role has hashes for it (a chart version the role does not know?)' % security['name'])
    return out


def main():
    here = os.path.abspath(sys.argv[0])
    with open(os.path.splitext(here)[0] + '.json') as handle:
        config = json.load(handle)
    docs = [doc for doc in yaml.load_all(sys.stdin, Loader=LOADER) if doc]
    try:
        docs = post_render(docs, config)
    except RenderError as exc:
        sys.stderr.write('genai.stack.observability post-renderer: %s\n' % exc)
        return 1
    yaml.dump_all(docs, sys.stdout, Dumper=DUMPER, sort_keys=False, default_flow_style=False)
    return 0


if __name__ == '__main__':
    sys.exit(main())
