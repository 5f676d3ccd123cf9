# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helm post-renderer of genai.stack.opea: the Hugging Face token comes from a Secret, never a ConfigMap.

The OPEA charts put the token (global.HF_TOKEN) into each model server's ConfigMap and hand that
ConfigMap to the containers (and to the model-downloader initContainers) with envFrom. This reads
the rendered manifests on stdin and prints them with
  - every empty token-named key (the config's env_pattern) taken out of every ConfigMap, and
  - every container or initContainer that loads a ConfigMap with a token-named key through
    envFrom, or sets a token-named variable to an empty literal, given that variable as a
    secretKeyRef to the Secret instead.
An explicit env entry wins over envFrom, and $(HF_TOKEN) in the chart's commands still expands.
A token-named key or literal with a value is left as it is: a token given as a chart value is in
the release's values too, and hiding it here would hide that from the role's scan, which refuses it.

The role copies this file into a private temporary directory with its Python interpreter on the
first line (file modes do not survive every way a collection is installed) and writes the
configuration next to it, as <this file without .py>.json:
  {"secret_name": ..., "secret_key": ..., "env_pattern": ...}
It names the Secret only; the token itself never reaches this program.
"""

from __future__ import annotations

import copy
import json
import os
import re
import sys

import yaml


def pod_spec(obj):
    """The pod template's spec of a workload object, or None."""
    kind = obj.get('kind')
    spec = obj.get('spec') or {}
    if kind == 'Pod':
        return spec
    if kind == 'CronJob':
        spec = (spec.get('jobTemplate') or {}).get('spec') or {}
    elif kind not in ('Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job'):
        return None
    return (spec.get('template') or {}).get('spec')


def post_render(docs, secret_name, secret_key, env_pattern):
    """The documents with the token moved from ConfigMaps to secretKeyRefs (changed in place, returned)."""
    pattern = re.compile(env_pattern)
    source = {'secretKeyRef': {'name': secret_name, 'key': secret_key}}
    token_keys = {}
    for obj in docs:
        if obj.get('kind') == 'ConfigMap' and isinstance(obj.get('data'), dict):
            keys = sorted(key for key in obj['data'] if pattern.search(key))
            for key in keys:
                if not obj['data'][key]:
                    del obj['data'][key]
            if keys:
                token_keys[(obj.get('metadata') or {}).get('name')] = keys
    for obj in docs:
        pod = pod_spec(obj)
        if not pod:
            continue
        for container in (pod.get('initContainers') or []) + (pod.get('containers') or []):
            names = set()
            for env_from in container.get('envFrom') or []:
                names.update(token_keys.get((env_from.get('configMapRef') or {}).get('name'), []))
            env = container.get('env') or []
            names.update(item['name'] for item in env if pattern.search(item.get('name', '')) and 'valueFrom' not in item
                         and not item.get('value'))
            literal = {item['name'] for item in env if 'valueFrom' not in item and item.get('value')}
            names -= literal
            if not names:
                continue
            container['env'] = [item for item in env if item.get('name') not in names] + [
                {'name': name, 'valueFrom': copy.deepcopy(source)} for name in sorted(names)]
    return docs


def main():
    config_path = os.path.splitext(os.path.abspath(__file__))[0] + '.json'
    with open(config_path) as handle:
        config = json.load(handle)
    docs = [doc for doc in yaml.safe_load_all(sys.stdin) if isinstance(doc, dict)]
    post_render(docs, config['secret_name'], config['secret_key'], config['env_pattern'])
    yaml.safe_dump_all(docs, sys.stdout, default_flow_style=False, sort_keys=False)


if __name__ == '__main__':
    main()
