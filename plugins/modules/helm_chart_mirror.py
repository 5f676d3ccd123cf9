#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: helm_chart_mirror
short_description: Copy Helm charts into a private OCI registry (a chart mirror), each at its pinned version
version_added: 0.1.1
author:
  - genai.stack maintainers (@genai-stack)
description:
  - Copies one or more charts, each a name and an exact version, into an OCI base such as
    C(oci://registry.example.com/genai-charts), where they land as C(<mirror>/<name>) tagged with their version (what
    C(helm push) produces). This is the layout the collection's roles expect from C(genai_stack_chart_mirror).
  - The charts come from a directory of chart packages (O(chart_dir), one C(<name>-<version>.tgz) per chart, as
    C(helm package) and C(helm pull) name them), or, without O(chart_dir), from each chart's source (an C(oci://)
    reference, or a chart name in a classic repository), pulled with C(helm pull).
  - Every package from O(chart_dir) is checked before anything is pushed, its C(Chart.yaml) must carry the chart's name and
    version; a package missing from O(chart_dir) fails the task before anything is pushed (or, with
    O(missing_package=warn), is left out with a warning).
  - "Idempotent: a chart whose version the mirror already holds is not pushed again. The mirror's copy is pulled and
    compared byte for byte (its digest) with the package from O(chart_dir); a different content under the same version
    is reported in RV(differing) with a warning and left alone, unless O(overwrite=true)."
  - Registry logins go to a registry configuration in a temporary directory that is deleted at the end of the task; the
    password is passed on stdin and never appears in a process list, and the user's helm configuration is never read
    nor written for that registry.
extends_documentation_fragment:
  - genai.stack.attributes
options:
  mirror:
    description:
      - The OCI base the charts are copied to, C(oci://host[:port]/path); a chart lands at C(<mirror>/<name>:<version>).
    type: str
    required: true
  charts:
    description: The charts to copy.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The chart's name, as its C(Chart.yaml) says (the last segment of its place in the mirror).
        type: str
        required: true
      version:
        description: The chart's exact version (V(1.2.3), V(v1.21.1)); constraints are not accepted.
        type: str
        required: true
      source:
        description:
          - Where to pull the chart from when O(chart_dir) is not given, an C(oci://host/path/name) reference, or the chart's
            name in the classic repository at O(charts[].repo_url).
          - Required without O(chart_dir); ignored with it.
        type: str
      repo_url:
        description: The classic chart repository (C(https://...)) holding O(charts[].source); not with an C(oci://) source.
        type: str
  chart_dir:
    description:
      - A directory of chart packages, C(<name>-<version>.tgz) for each chart; the charts are copied from there, and their
        sources are not contacted.
    type: path
  missing_package:
    description:
      - What a chart whose package is not in O(chart_dir) does, V(fail) the task before anything is pushed (naming every such
        chart, its version and the directory), or V(warn) and be left out (listed in RV(missing)).
    type: str
    choices: [fail, warn]
    default: fail
  overwrite:
    description:
      - Push a chart again when the mirror holds the same version with a different content (RV(differing)). Off by default,
        a published version is expected never to change.
      - Without O(chart_dir), the source is pulled to compare only when this is true.
    type: bool
    default: false
  registry_username:
    description: User name for the mirror's registry.
    type: str
  registry_password:
    description: Password or token for the mirror's registry; passed to helm on stdin.
    type: str
  plain_http:
    description: Talk plain HTTP to the mirror's registry (helm 3.13 or newer).
    type: bool
    default: false
  binary_path:
    description: The helm binary (3.8 or newer); C(helm) on E(PATH) when not given.
    type: path
notes:
  - Check mode logs in and reads the mirror (C(helm pull) of its copies) but never pushes; charts from their sources are
    not pulled in check mode, except to compare them with O(overwrite=true).
  - The content is compared by the package's sha256, which is the digest of the chart layer that C(helm push) stores; a
    package built again from the same files (C(helm package) records file times) counts as different content.
  - Sources that need a login are not supported; copy such charts with C(helm pull) into O(chart_dir) first.
seealso:
  - module: genai.stack.helm_release
"""

EXAMPLES = r"""
- name: Vendor charts into the private mirror, from a directory of packages
  genai.stack.helm_chart_mirror:
    mirror: oci://registry.example.com/genai-charts
    chart_dir: /srv/vendor-charts
    charts:
      - {name: kube-prometheus-stack, version: 88.5.3}
      - {name: dcgm-exporter, version: 4.8.2}
    registry_username: "{{ mirror_user }}"
    registry_password: "{{ mirror_token }}"

- name: Straight from the vendors' repositories
  genai.stack.helm_chart_mirror:
    mirror: oci://registry.example.com/genai-charts
    charts:
      - name: chatqna
        version: 1.4.0
        source: oci://ghcr.io/opea-project/charts/chatqna
      - name: opensearch
        version: 3.6.0
        source: opensearch
        repo_url: https://opensearch-project.github.io/helm-charts
    registry_username: "{{ mirror_user }}"
    registry_password: "{{ mirror_token }}"

- name: What would be pushed (nothing is)
  genai.stack.helm_chart_mirror:
    mirror: oci://registry.example.com/genai-charts
    chart_dir: /srv/vendor-charts
    missing_package: warn
    charts: "{{ genai_stack_chart_pins }}"
  check_mode: true
  register: mirror_plan
"""

RETURN = r"""
pushed:
  description: The charts pushed (in check mode, that would be pushed), as C(name:version).
  returned: always
  type: list
  elements: str
  sample: [kube-prometheus-stack:88.5.3]
unchanged:
  description: The charts the mirror already held (with the same content, when it was compared).
  returned: always
  type: list
  elements: str
  sample: [dcgm-exporter:4.8.2]
differing:
  description: The charts the mirror holds at the same version with a different content, left alone (O(overwrite=false)).
  returned: always
  type: list
  elements: str
  sample: []
missing:
  description: The charts left out because O(chart_dir) has no package for them (O(missing_package=warn)).
  returned: always
  type: list
  elements: str
  sample: [adaptive:0.48.2]
charts:
  description: One entry per chart, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The chart's name.
      type: str
    version:
      description: The chart's version.
      type: str
    ref:
      description: Where the chart is in the mirror, C(<mirror>/<name>:<version>).
      type: str
    action:
      description: V(pushed), V(unchanged), V(differing) or V(missing) (V(pushed) in check mode means it would be).
      type: str
    digest:
      description: The sha256 of the package copied (null when it was not read, a source not pulled).
      type: str
    mirror_digest:
      description: The sha256 of the mirror's copy before the task (null when it held none).
      type: str
  sample:
    - name: dcgm-exporter
      version: 4.8.2
      ref: oci://registry.example.com/genai-charts/dcgm-exporter:4.8.2
      action: unchanged
      digest: sha256:5f1d...
      mirror_digest: sha256:5f1d...
command:
  description: The helm command lines run, in order (the password is never among them).
  returned: always
  type: list
  elements: str
  sample: [helm version --short, helm pull oci://registry.example.com/genai-charts/dcgm-exporter --version 4.8.2 --destination /tmp/x]
helm_version:
  description: Version of the helm binary used.
  returned: when it could be told
  type: str
  sample: v3.19.0
"""

import os
import shutil
import traceback

from ansible_collections.genai.stack.plugins.module_utils._chart_mirror import (
    CHART_NAME, EXACT_VERSION, MIRROR, MirrorError, MirrorHelm, check_package, file_digest, package_name,
)
from ansible_collections.genai.stack.plugins.module_utils._helm import helm_module
from ansible_collections.genai.stack.plugins.module_utils._validation import (
    Checker, InputErrors, fail_on_input_errors, input_error_fields,
)


def argument_spec():
    return dict(
        mirror=dict(type='str', required=True),
        charts=dict(type='list', elements='dict', required=True, options=dict(
            name=dict(type='str', required=True),
            version=dict(type='str', required=True),
            source=dict(type='str'),
            repo_url=dict(type='str'),
        )),
        chart_dir=dict(type='path'),
        missing_package=dict(type='str', choices=['fail', 'warn'], default='fail'),
        overwrite=dict(type='bool', default=False),
        registry_username=dict(type='str'),
        registry_password=dict(type='str', no_log=True),
        plain_http=dict(type='bool', default=False),
        binary_path=dict(type='path'),
    )


def check_options(params):
    """Every problem of the input, found before helm is asked anything."""
    check = Checker()
    check.require(MIRROR.match(params['mirror'] or ''), 'mirror', '%r is not an OCI base such as oci://registry.example.com/charts'
                  % params['mirror'])
    check.require(params['charts'], 'charts', 'must name at least one chart')
    seen = {}
    for index, chart in enumerate(params['charts'] or []):
        where = 'charts[%d]' % index
        check.match(CHART_NAME, chart['name'], where + '.name', 'a chart name (lowercase letters, digits, "-", "_" and ".")')
        check.match(EXACT_VERSION, chart['version'], where + '.version', 'an exact chart version such as 1.2.3')
        key = (chart['name'], chart['version'])
        if key in seen:
            check.error(where, '%s %s is also charts[%d]' % (chart['name'], chart['version'], seen[key]))
        seen.setdefault(key, index)
        if params.get('chart_dir'):
            continue
        source = chart.get('source')
        if not source:
            check.error(where + '.source', 'is required without chart_dir (%s %s has no package to copy)' % key)
        elif source.startswith('oci://'):
            check.require(MIRROR.match(source) and '/' in source[len('oci://'):], where + '.source', 'must be oci://host/path/chart')
            check.require(not chart.get('repo_url'), where + '.repo_url', 'cannot be used with an oci:// source')
        else:
            check.require(chart.get('repo_url'), where + '.repo_url', 'is required with a source that is not oci:// (%r)' % source)
            check.require(CHART_NAME.match(source), where + '.source', 'must be a chart name with repo_url, got %r' % source)
        if chart.get('repo_url'):
            check.require(chart['repo_url'].startswith(('https://', 'http://', 'file://')), where + '.repo_url',
                          'must be an http(s):// or file:// URL')
    if params.get('chart_dir'):
        check.require(os.path.isdir(params['chart_dir']), 'chart_dir', '%r is not a directory' % params['chart_dir'])
    if bool(params.get('registry_username')) != bool(params.get('registry_password')):
        check.error('registry_username' if not params.get('registry_username') else 'registry_password',
                    'registry_username and registry_password must be given together')
    if params.get('binary_path') and not (os.path.isfile(params['binary_path']) and os.access(params['binary_path'], os.X_OK)):
        check.error('binary_path', '%r is not an executable file' % params['binary_path'])
    check.raise_if_any()


def local_packages(module, params):
    """{index: package path} of every chart found in chart_dir, each checked; charts missing from it as
    (index, 'name:version'). Fails (before anything is pushed) on a package that is not its chart, and on
    missing packages unless missing_package=warn."""
    chart_dir = params['chart_dir']
    found, missing, wrong = {}, [], []
    for index, chart in enumerate(params['charts']):
        path = os.path.join(chart_dir, package_name(chart['name'], chart['version']))
        if not os.path.isfile(path):
            missing.append((index, '%s:%s' % (chart['name'], chart['version'])))
            continue
        try:
            problem = check_package(path, chart['name'], chart['version'])
        except ValueError as exc:
            problem = str(exc)
        if problem:
            wrong.append(('charts[%d]' % index, '%s %s' % (path, problem) if not problem.startswith(path) else problem))
        found[index] = path
    errors = list(wrong)
    if missing and params['missing_package'] == 'fail':
        errors.append(('chart_dir', 'no package for %s in %s (expected %s); nothing was pushed' % (
            ', '.join(m for _i, m in missing), chart_dir,
            ', '.join(package_name(params['charts'][i]['name'], params['charts'][i]['version']) for i, _m in missing))))
    if errors:
        fail_on_input_errors(module, InputErrors(errors))
    for _index, label in missing:
        module.warn('helm_chart_mirror: %s left out, %s has no %s' % (
            label, chart_dir, package_name(*label.split(':', 1))))
    return found, [label for _i, label in missing]


def needs_source_package(have_package, mirror_digest, overwrite, check_mode):
    """Whether a chart is pulled from its source: when chart_dir gave no package for it, and the
    mirror lacks it or overwrite may replace it. In check mode a chart the mirror lacks is not
    pulled: it would be pushed whatever its content."""
    if have_package:
        return False
    if mirror_digest is None:
        return not check_mode
    return bool(overwrite)


def plan_chart(mirror_digest, digest, overwrite):
    """What to do with one chart, from the digest of what the mirror holds (None when it lacks
    the chart) and of the package (None when none was read): 'pushed' when the mirror lacks it or
    holds another content and overwrite is set, 'differing' when it holds another content and
    overwrite is not set, else 'unchanged'."""
    if mirror_digest is None:
        return 'pushed'
    if digest is None or digest == mirror_digest:
        return 'unchanged'
    return 'pushed' if overwrite else 'differing'


def chart_diff(action, digest, mirror_digest, source):
    """(before, after) of one chart in the diff: before is None when the mirror lacks the chart
    (it is left out), after names the source when no package was read for a push."""
    if action != 'pushed':
        return mirror_digest, mirror_digest
    return mirror_digest, digest or mirror_digest or 'from %s' % source


def read_chart(module, helm, mirror, index, chart, package, with_credentials):
    """The digest of what the mirror holds of charts[index] (None when it lacks the chart), and
    the package to push with its digest (None for both when none is needed in check mode)."""
    label = '%s:%s' % (chart['name'], chart['version'])
    scratch = os.path.join(helm.work, str(index))
    os.makedirs(os.path.join(scratch, 'mirror'))
    os.makedirs(os.path.join(scratch, 'source'))
    held = helm.pull_from_mirror(mirror, chart['name'], chart['version'], os.path.join(scratch, 'mirror'), with_credentials)
    mirror_digest = file_digest(held) if held else None
    if needs_source_package(package is not None, mirror_digest, module.params['overwrite'], module.check_mode):
        package = helm.pull_from_source(index, chart, os.path.join(scratch, 'source'))
        problem = check_package(package, chart['name'], chart['version'])
        if problem:
            raise MirrorError('charts[%d].source: %s pulled from %s %s' % (index, label, chart['source'], problem),
                              option='charts[%d].source' % index)
    return mirror_digest, package, file_digest(package) if package else None


def mirror_one(module, helm, mirror, index, chart, package, missing, with_credentials, result, before, after):
    """Compare charts[index] with what the mirror holds and push it when the mirror lacks it (or
    overwrite says so); records the chart's action in `result` and its digests in `before`/`after`."""
    label = '%s:%s' % (chart['name'], chart['version'])
    if label in missing:
        result['charts'].append(dict(name=chart['name'], version=chart['version'], ref='%s/%s' % (mirror, label),
                                     action='missing', digest=None, mirror_digest=None))
        return
    mirror_digest, package, digest = read_chart(module, helm, mirror, index, chart, package, with_credentials)
    action = plan_chart(mirror_digest, digest, module.params['overwrite'])
    if action == 'differing':
        module.warn('helm_chart_mirror: %s/%s holds a different content than %s (%s, the package %s); left alone, '
                    'set overwrite to replace it' % (mirror, label, package, mirror_digest, digest))
    if action == 'pushed' and not module.check_mode:
        helm.push(package, mirror)
    held, wanted = chart_diff(action, digest, mirror_digest, chart.get('source'))
    if held:
        before[label] = held
    after[label] = wanted
    result[action].append(label)
    result['charts'].append(dict(name=chart['name'], version=chart['version'], ref='%s/%s' % (mirror, label),
                                 action=action, digest=digest, mirror_digest=mirror_digest))


def main():
    module = helm_module(argument_spec(), check_options)
    params = module.params
    mirror = params['mirror'].rstrip('/')
    packages, missing = ({}, [])
    if params.get('chart_dir'):
        packages, missing = local_packages(module, params)

    binary = params.get('binary_path') or module.get_bin_path('helm')
    if not binary:
        module.fail_option('binary_path', 'helm was not found on PATH; install helm 3.8+ or set binary_path')
    helm = MirrorHelm(module, binary, plain_http=params['plain_http'])
    result = dict(pushed=[], unchanged=[], differing=[], missing=missing, charts=[])
    before, after = {}, {}
    try:
        helm.detect_version()
        with_credentials = bool(params.get('registry_username'))
        if with_credentials:
            helm.login(mirror[len('oci://'):].split('/', 1)[0], params['registry_username'], params['registry_password'])
        for index, chart in enumerate(params['charts']):
            mirror_one(module, helm, mirror, index, chart, packages.get(index), missing, with_credentials, result, before, after)
    except MirrorError as exc:
        extra = dict(command=helm.commands, helm_version=helm.version_text, stderr=exc.stderr, exception=traceback.format_exc(),
                     **result)
        if exc.option:
            extra = input_error_fields([(exc.option, str(exc).replace(exc.option + ': ', '', 1))], extra)
        module.fail_json(msg=str(exc), **extra)
    finally:
        shutil.rmtree(helm.work, ignore_errors=True)

    result.update(changed=bool(result['pushed']), command=helm.commands, helm_version=helm.version_text)
    if module._diff:
        result['diff'] = dict(before=dict(mirror=mirror, charts=before), after=dict(mirror=mirror, charts=after))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
