#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: helm_release
short_description: Converge a Helm release, with drift detection, stuck-release recovery and manifest export
version_added: 0.1.0
author:
  - genai.stack maintainers (@genai-stack)
description:
  - Installs, upgrades or uninstalls a Helm release from an OCI registry, a classic chart repository or a local
    path, or renders a chart into one file per object (O(state=rendered)).
  - Works with the helm binary 3.8 or newer and 4.x, adapting the flags that differ (helm 4 calls C(--atomic)
    C(--rollback-on-failure), has no C(list --all), and applies server-side, so upgrades pass C(--force-conflicts)
    to take back fields changed by other managers).
  - "Idempotent: no upgrade and no new revision when the chart name and version and the user-supplied values
    (as helm computes them) are unchanged and the live objects match the release's manifest. For a local chart
    the rendered manifest is compared as well, so template edits without a version bump are rolled out. A remote
    chart at an exact version is re-run from the stored release alone, without the registry (see the notes)."
  - Drift detection reads every object of the stored manifest from the API and compares the fields the manifest
    sets (fields only the live object has, such as defaults and status, are ignored); a drifted or missing object
    makes the module upgrade the release, which puts the objects back. A field the manifest sets to null, empty,
    V(false) or V(0) matches an absent live field, since the API server does not store such zero values.
  - "A first install of a chart that brings its own CRDs (its C(crds/) directory) while the cluster does not have them
    yet cannot be dry-run by helm (its custom resources map to no API); it is then previewed with C(helm template) and
    C(helm show chart), and the install itself creates the CRDs first, as helm does. For a release already installed,
    missing CRDs are an error that says so."
  - "Stuck releases are recovered: C(pending-install), C(uninstalling), or C(failed) without any deployed revision
    are uninstalled and installed again; C(pending-upgrade) and C(pending-rollback) are rolled back to the last
    deployed revision and then upgraded if still needed; C(failed) after an upgrade is upgraded again. The result's
    RV(recovered) says what was done."
  - "Values precedence, lowest first: the chart's defaults, O(values_files) in their order, O(values),
    O(secret_values), then O(set_values) as helm applies them (by type, see there). Maps merge key by key, any other
    value (a list, a scalar, a null) replaces; a null removes the chart default's key. Upgrades pass
    C(--reset-values) (unless O(reuse_values) or O(reset_values=false)), so the release's values are exactly these."
  - "No value is ever on helm's command line (which every user of the host can read in C(ps)): O(values),
    O(secret_values) and the result of O(set_values) go to one values file of mode 0600 in a private temporary
    directory, removed when the task ends, whether it succeeds, fails or raises."
  - Check mode and diff need no helm plugin; the chart is rendered with a client-side dry run and compared with
    the stored manifest. Secret data in diffs is shown as sha256 prefixes.
  - Registry logins (O(registry_username), O(registry_password)) go to a registry configuration in a temporary
    directory (E(HELM_REGISTRY_CONFIG)) that is deleted at the end of the task, so the user's helm configuration is
    never read for that registry nor written; the password is passed on stdin and never appears in a process list.
extends_documentation_fragment:
  - genai.stack.attributes
  - genai.stack.kube
  - genai.stack.attributes.actiongroup_k8s
options:
  name:
    description: Release name.
    type: str
    required: true
    aliases: [release_name]
  release_namespace:
    description: Namespace of the release.
    type: str
    default: default
    aliases: [namespace]
  create_namespace:
    description:
      - Create O(release_namespace) on install when it does not exist.
      - When false, an install into a namespace that does not exist fails before helm is asked to install, naming
        O(release_namespace); in check mode it is a warning, since an earlier task of the same run may create it.
    type: bool
    default: false
  chart_ref:
    description:
      - The chart, as C(oci://host/path/chart), a chart name in the repository at O(chart_repo_url), C(repo/chart)
        of a repository added with C(helm repo add), or the path of a chart directory or archive.
      - Required unless O(state=absent).
    type: path
  chart_repo_url:
    description: URL of a classic chart repository holding O(chart_ref) (passed as C(--repo)).
    type: str
  chart_version:
    description:
      - Chart version or version constraint (helm's syntax, such as V(1.2.3), V(^1.2) or V(>=1.0, <2.0)); the latest when
        not given. A malformed constraint fails before helm runs; a version the registry does not have fails naming this option.
    type: str
  values:
    description:
      - Values, merged over O(values_files).
      - Not C(no_log) (ansible-core would then mask every output string equal to any of its leaves, such as V(2)
        or V(true), and hide the whole option from the invocation); put secrets in O(secret_values).
        Leaves under secret-looking keys (password, secret, token, key, credential, auth) are masked in the result
        and the diff.
    type: dict
    default: {}
    aliases: [release_values]
  secret_values:
    description:
      - Values that are secrets, merged over O(values) (and under O(set_values)), key by key as maps merge.
      - C(no_log), so ansible-core keeps them out of the invocation, logs and output; every key path given here is
        masked in the result's RV(values) and in the diff, whose C(values_digest) still tells a changed secret.
      - Give only secrets here, since every output string equal to one of them is masked (a leaf such as V(true) would
        mask every C(true)).
    type: dict
    version_added: 0.2.0
  values_files:
    description: Values files on the controller, in increasing precedence.
    type: list
    elements: path
    default: []
  set_values:
    description:
      - Values given like C(--set), applied after O(values_files), O(values) and O(secret_values).
      - "helm applies them by type, whatever their order in this list: every V(json) item, then every V(raw),
        then every V(string), then every V(file), each type in list order; a key given with two types takes the
        later type's value (V(string) over V(raw))."
      - "They are never passed to helm as C(--set) flags: the module applies them as helm does (its key syntax,
        list indexes, C({a,b}) lists and type inference) over the merged values files and values, and gives helm the
        result as its values file. An item helm would refuse (C(a.b) where C(a) is not a map, a key with no value)
        fails before helm runs, naming it; with them, a values file that helm may read differently (see the notes)
        is refused naming O(values_files)."
      - "C(value) is C(no_log): ansible-core keeps each C(key=value) string out of the invocation and logs (with
        -vvv too), and the keys they set are masked in the result's RV(values) and in the diff (whose
        C(values_digest) still tells a change). Values to be seen in diffs belong in O(values)."
    type: list
    elements: dict
    suboptions:
      value:
        description: C(key=value), as for C(helm --set).
        type: str
        required: true
      value_type:
        description:
          - V(raw) is C(--set), V(string) is C(--set-string), V(json) is C(--set-json), V(file) is C(--set-file)
            (the value after C(=) is a path).
        type: str
        choices: [raw, string, json, file]
        default: raw
  state:
    description:
      - V(present) installs or upgrades, V(absent) uninstalls (waiting for the objects to go).
      - V(rendered) writes the output of C(helm template) under O(render_dir), one C(<kind>-<name>.yaml) file per
        object (lowercase; C(<kind>-<namespace>-<name>.yaml) when two objects would share a name) and removes every
        other C(.yaml) file there, so the directory always mirrors the chart. Nothing is installed.
      - Each file written is created with mode 0600 (a rendered Secret holds values) through a temporary file that
        is removed if writing fails.
    type: str
    choices: [present, absent, rendered]
    default: present
    aliases: [release_state]
  render_dir:
    description: Directory for O(state=rendered); created when missing.
    type: path
  wait:
    description: Wait until the release's objects are ready (helm C(--wait); the C(watcher) strategy on helm 4).
    type: bool
    default: false
  wait_timeout:
    description: Timeout of helm operations, as a duration (V(300s), V(5m0s)).
    type: str
    default: 5m0s
    aliases: [timeout]
  atomic:
    description: Roll back (or uninstall, on install) when the operation fails; implies waiting.
    type: bool
    default: false
  registry_username:
    description: User name for the OCI registry of O(chart_ref).
    type: str
  registry_password:
    description: Password or token for the OCI registry of O(chart_ref); passed to helm on stdin.
    type: str
  plain_http:
    description: Talk plain HTTP to the OCI registry (helm 3.13 or newer).
    type: bool
    default: false
  binary_path:
    description: The helm binary; C(helm) on E(PATH) when not given.
    type: path
  post_renderer:
    description:
      - "Path of an executable that helm runs as a post-renderer (C(--post-renderer)): it reads the rendered
        manifests on stdin and prints the manifests to install on stdout, so objects can be changed in ways the
        chart's values do not offer (for example to make containers read a variable from a Secret)."
      - Used for every rendering of the chart (install, upgrade, O(state=rendered) with C(helm template), and the
        dry run that check mode, diff and the idempotence decision compare with the stored release). Its output
        is what the release stores, so the release's manifest and history hold what it printed, and the values
        given here never need to carry what it adds.
      - The file must exist and be executable by the user running helm; it is checked before helm runs.
      - "With it, the re-run is never decided from the stored release alone (the executable may change what it
        prints without any value or chart version changing): the chart is rendered and the manifest compared
        with the stored one, and a difference upgrades the release."
      - Needs helm 3 (helm 4 takes post-renderer plugins by name instead of executables). Ignored with
        O(state=absent).
    type: path
    version_added: 0.2.0
  skip_crds:
    description:
      - Do not install the chart's CRDs (its C(crds/) directory; C(--skip-crds)) on a first install.
      - helm installs those CRDs on a first install only and never upgrades them, and the release stores none of them,
        so this changes nothing a re-run compares; with it, a first install of a chart whose CRDs the cluster lacks
        fails as helm fails.
    type: bool
    default: false
    version_added: 0.2.0
  dependency_update:
    description:
      - Update the chart's dependencies (its C(charts/) directory, from C(Chart.yaml)) before rendering
        (C(--dependency-update)), for every rendering (install, upgrade, dry runs, O(state=rendered)).
      - With a local chart this writes its C(charts/) directory and C(Chart.lock), also in check mode (helm does it
        before rendering); the manifest comparison of local charts then shows what the new dependencies render.
    type: bool
    default: false
    aliases: [dep_up]
    version_added: 0.2.0
  force:
    description:
      - Upgrades replace objects that cannot be patched (helm 3 C(--force); helm 4 C(--force-replace) with
        C(--server-side=false), since helm 4 replaces client-side only, instead of C(--force-conflicts)). Ignored on a
        first install, like kubernetes.core.helm. On helm 4 the release's later upgrades then default (C(auto)) to
        client-side apply, as helm records it.
      - Unlike kubernetes.core.helm, it does not upgrade a release that is unchanged (no value, chart or live
        object differs), so the module stays idempotent; a drifted object already makes it upgrade.
    type: bool
    default: false
    version_added: 0.2.0
  take_ownership:
    description:
      - Install and upgrade adopt objects that exist without belonging to the release (C(--take-ownership)) instead
        of failing on them. Needs helm 3.17 or newer (checked before anything is installed).
    type: bool
    default: false
    version_added: 0.2.0
  reset_values:
    description:
      - Upgrades reset the release's values to the ones given here (C(--reset-values)); the default, unless
        O(reuse_values=true).
      - V(false) without O(reuse_values) leaves it to helm (C(helm upgrade) without either flag), which keeps the
        release's values only when no values at all are given.
      - V(true) together with O(reuse_values=true) is refused (helm would silently reset).
    type: bool
    version_added: 0.2.0
  reuse_values:
    description:
      - Upgrades keep the release's values and merge the given ones over them (C(--reuse-values)).
      - The no-op decision, check mode and diff then use helm's own upgrade dry run (C(helm upgrade --dry-run=client
        --reuse-values)), so they compare the values helm would store; the re-run is never decided from the stored
        release alone.
    type: bool
    version_added: 0.2.0
  history_max:
    description:
      - Revisions kept per release by upgrades (C(--history-max)); V(0) keeps all. helm's own default (10) when not
        given. Applies to upgrades only (helm's install has no such flag), so it is not part of the no-op decision.
    type: int
    version_added: 0.2.0
  skip_schema_validation:
    description:
      - Do not validate the values against the chart's C(values.schema.json) (C(--skip-schema-validation)), for every
        rendering, dry runs included. Needs helm 3.16 or newer (checked before anything is installed).
    type: bool
    default: false
    version_added: 0.2.0
  insecure_skip_tls_verify:
    description:
      - Skip the TLS certificate check of the chart download (C(--insecure-skip-tls-verify); C(--insecure) for the
        registry login).
      - The API server's certificate is a separate matter, see O(validate_certs).
    type: bool
    default: false
    version_added: 0.2.0
  update_repo_cache:
    description:
      - Refresh the index of the repository of a C(repo/chart) O(chart_ref) (C(helm repo update <repo>)) before the
        chart is read, also in check mode (it writes helm's local cache, not the cluster).
      - Ignored for a chart from O(chart_repo_url) (whose index helm always reads afresh) and for an C(oci://) or
        local chart (which have no index).
    type: bool
    default: false
    version_added: 0.2.0
  context:
    description:
      - The kubeconfig context to use. When not given, E(K8S_AUTH_CONTEXT) or the current context.
    type: str
    aliases: [kube_context]
notes:
  - Drift detection uses the C(kubernetes) Python library (imported only when the API is read).
  - "A re-run is decided from the stored release, without logging in to the registry and without pulling or
    rendering the chart, when all of these hold: O(state=present); the release is C(deployed); O(chart_ref) is
    remote (C(oci://), C(repo/chart), or a chart name with O(chart_repo_url)); O(chart_version) is an exact
    version (V(1.2.3), V(v1.2.3), V(1.2.3-rc.1+b)) and the release's chart is C(<name>-<chart_version>), the name
    being the last segment of O(chart_ref); O(set_values) is empty; neither O(reuse_values) nor O(reset_values=false);
    the values of O(values_files), O(values) and O(secret_values),
    merged as helm merges them, equal the release's user-supplied values (C(helm get values)); and no live object
    drifted. It then runs C(helm version), C(helm list) and C(helm status --show-resources) (helm 3.10 to 3.x; with
    helm 4, C(helm get values), C(helm get manifest) and one API read per object). This assumes a published chart
    version is never re-published with other content."
  - "The module starts its first reads together (C(helm version), C(helm list) and, when the conditions above may hold,
    C(helm status --show-resources)) and takes each result when it needs it; a read it does not use is stopped, and
    none is used after the module changed the release. All of them are read-only, so check mode is unaffected."
  - "Options of kubernetes.core.helm taken with the same meaning: O(skip_crds), O(dependency_update), O(force) (see
    there), O(take_ownership), O(timeout) (O(wait_timeout)), O(reset_values), O(reuse_values), O(history_max),
    O(skip_schema_validation), O(insecure_skip_tls_verify), O(update_repo_cache), O(post_renderer), and the spellings
    O(release_state), O(release_values), O(kube_context)."
  - "Anything else renders the chart as before (registry login, C(helm install --dry-run=client)): a local chart
    path (its templates may change without a version bump), a version constraint or no O(chart_version), O(set_values),
    different values or chart, a release that is not C(deployed), drift, or a values file that helm may read
    differently from PyYAML (a key given twice, plain V(y)/V(n), V(1e3), V(0o17), V(1:20), V(1_000)); quote such scalars."
seealso:
  - module: kubernetes.core.helm
"""

EXAMPLES = r"""
- name: Arthur GenAI Engine from its OCI registry, GPU values
  genai.stack.helm_release:
    name: arthur-engine
    release_namespace: arthur
    create_namespace: true
    chart_ref: oci://ghcr.io/arthur-ai/arthur-engine/charts/arthur-engine
    chart_version: 2.1.0
    registry_username: "{{ ghcr_user }}"
    registry_password: "{{ ghcr_token }}"
    values_files:
      - files/arthur-gpu-values.yaml
    values:
      replicaCount: 2
    set_values:
      - value: image.tag=2.1.0
        value_type: string
    wait: true
    atomic: true

- name: A database password kept out of logs, output and helm's command line
  genai.stack.helm_release:
    name: arthur-engine
    release_namespace: arthur
    chart_ref: oci://ghcr.io/arthur-ai/arthur-engine/charts/arthur-engine
    chart_version: 2.1.0
    values:
      replicaCount: 2
    secret_values:
      postgresql:
        password: "{{ vault_engine_db_password }}"

- name: The way kubernetes.core.helm spells it, with its upgrade options
  genai.stack.helm_release:
    release_name: dcgm-exporter
    release_namespace: monitoring
    release_state: present
    chart_ref: nvidia/dcgm-exporter
    chart_version: 4.1.1
    update_repo_cache: true
    release_values:
      serviceMonitor:
        enabled: true
    kube_context: prod
    timeout: 10m
    history_max: 5
    take_ownership: true
    skip_crds: true

- name: DCGM exporter from a classic repository
  genai.stack.helm_release:
    name: dcgm-exporter
    release_namespace: monitoring
    chart_ref: dcgm-exporter
    chart_repo_url: https://nvidia.github.io/dcgm-exporter/helm-charts
    chart_version: 4.1.1

- name: Export the OPEA ChatQnA manifests, one file per object
  genai.stack.helm_release:
    name: chatqna
    release_namespace: opea
    chart_ref: oci://ghcr.io/opea-project/charts/chatqna
    state: rendered
    render_dir: manifests/chatqna

- name: Remove a release
  genai.stack.helm_release:
    name: dcgm-exporter
    release_namespace: monitoring
    state: absent
"""

RETURN = r"""
status:
  description: The release's status after the task (C(deployed), ...), or null when it does not exist.
  returned: always
  type: str
  sample: deployed
revision:
  description: The release's revision after the task.
  returned: when the release exists
  type: int
  sample: 3
chart:
  description: Chart name and version of the release (C(name-version)).
  returned: when the release exists or is rendered
  type: str
  sample: gpu-echo-0.1.0
app_version:
  description: The chart's appVersion.
  returned: when the release exists or is rendered
  type: str
  sample: 1.0.0
values:
  description:
    - The user-supplied values of the release (as C(helm get values) shows them), with leaves under keys that look
      secret (password, secret, token, key, credential, auth) masked; every leaf is masked when the task has C(no_log).
  returned: when O(state=present)
  type: dict
  sample: {replicaCount: 2, db: {password: VALUE_SPECIFIED_IN_NO_LOG_PARAMETER}}
recovered:
  description: What was done to recover a stuck release (C(reinstalled from pending-install), ...), or null.
  returned: when O(state=present)
  type: str
  sample: rolled back from pending-upgrade to revision 2
drift:
  description: Objects whose live fields differed from the release manifest, as C(Kind/namespace/name field).
  returned: when O(state=present)
  type: list
  elements: str
  sample: [Deployment/default/echo-gpu-echo spec.replicas]
command:
  description:
    - The helm command lines run, in order. No value is on them (values go to a private values file), nor any registry password.
  returned: always
  type: list
  elements: str
  sample: [helm upgrade echo ./gpu-echo -n default --reset-values -f /tmp/values.yaml]
helm_version:
  description: Version of the helm binary used.
  returned: always
  type: str
  sample: v3.19.0
files:
  description: The files written under O(render_dir) (O(state=rendered)).
  returned: when O(state=rendered)
  type: list
  elements: str
  sample: [configmap-echo-gpu-echo.yaml, deployment-echo-gpu-echo.yaml]
removed_files:
  description: Stale C(.yaml) files removed from O(render_dir).
  returned: when O(state=rendered)
  type: list
  elements: str
  sample: []
"""

import json
import os
import re
import traceback

from ansible.module_utils.common.text.converters import to_bytes, to_text

from ansible_collections.genai.stack.plugins.module_utils._diff import DifferenceTracker
from ansible_collections.genai.stack.plugins.module_utils._helm import (
    CRDS_MISSING, yaml, RELEASE_NAME, RELEASE_NAME_MAX, SECRET_FINGERPRINTS, HelmError, HelmRunner, SetValuesError,
    apply_set_values, helm_module,
    changed_objects, chart_error, chart_source, live_index, live_lookup, load_values_file, mask_paths, mask_values, merge_values, object_label,
    oci_registry_host, rendered_file_names, requested_values, split_documents, split_manifest, stored_noop_blocker,
    user_values, valid_version_constraint, values_equal, write_private,
)
from ansible_collections.genai.stack.plugins.module_utils._kube import (
    api_error_message, drifted_fields, get_client, get_object, kube_argument_spec, mask_secret, missing_namespace, project,
    protect_kubeconfig, secret_drift, value_hash,
)
from ansible_collections.genai.stack.plugins.module_utils._kube_auth import auth_params, check_connection, helm_problems
from ansible_collections.genai.stack.plugins.module_utils._validation import (
    DNS_LABEL, Checker, input_error_fields, user_path,
)

DURATION = re.compile(r'^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$')


def values_digest(values):
    """A digest of values that tells apart what values_equal does (never the values themselves)."""
    return value_hash(json.dumps(values, sort_keys=True))


def read_set_file(path):
    """A `file` item of set_values: the file's content as a string, as helm's --set-file reads it."""
    with open(user_path(path), 'rb') as handle:
        return to_text(handle.read(), errors='replace')


def composed_values(params):
    """The values file the module gives helm after O(values_files), or None when there is nothing to give:
    `values`, then `secret_values` merged over it; with set_values, the values files' and these merged values
    with set_values applied as helm applies them (so nothing of them goes on a command line).
    ValueError naming the option (`values_files` or `set_values[i].value`) when it cannot be composed as helm would."""
    own = merge_values(params.get('values') or {}, params.get('secret_values') or {})
    if not params.get('set_values'):
        return own or None
    files = []
    for path in params.get('values_files') or []:
        try:
            files.append(load_values_file(path))
        except (ValueError, OSError) as exc:
            raise ValueError('values_files', '%r may read differently in helm than here, so set_values cannot be applied over it '
                                             '(quote its scalars such as y, n, 1e3; %s)' % (path, type(exc).__name__))
    try:
        return apply_set_values(user_values(files, own), params['set_values'], read_file=read_set_file)
    except SetValuesError as exc:
        index, message = exc.args
        raise ValueError('set_values[%d].value' % index, message)
    except OSError as exc:
        raise ValueError('set_values', 'a file of a value_type=file item could not be read (%s)' % type(exc).__name__)


def values_reused(params, release):
    """True when an upgrade of `release` keeps its values under the given ones (reuse_values, or reset_values=false as
    helm does it); the preview is then helm's own upgrade dry run."""
    if release is None or release.get('status') not in ('deployed', 'failed', 'superseded'):
        return False
    return bool(params.get('reuse_values')) or params.get('reset_values') is False


def argument_spec():
    spec = kube_argument_spec(
        name=dict(type='str', required=True, aliases=['release_name']),
        release_namespace=dict(type='str', default='default', aliases=['namespace']),
        create_namespace=dict(type='bool', default=False),
        chart_ref=dict(type='path'),
        chart_repo_url=dict(type='str'),
        chart_version=dict(type='str'),
        values=dict(type='dict', default={}, aliases=['release_values']),
        secret_values=dict(type='dict', no_log=True),
        values_files=dict(type='list', elements='path', default=[]),
        set_values=dict(type='list', elements='dict', options=dict(
            value=dict(type='str', required=True, no_log=True),
            value_type=dict(type='str', choices=['raw', 'string', 'json', 'file'], default='raw'),
        )),
        state=dict(type='str', choices=['present', 'absent', 'rendered'], default='present', aliases=['release_state']),
        render_dir=dict(type='path'),
        wait=dict(type='bool', default=False),
        wait_timeout=dict(type='str', default='5m0s', aliases=['timeout']),
        atomic=dict(type='bool', default=False),
        registry_username=dict(type='str'),
        registry_password=dict(type='str', no_log=True),
        plain_http=dict(type='bool', default=False),
        binary_path=dict(type='path'),
        post_renderer=dict(type='path'),
        skip_crds=dict(type='bool', default=False),
        dependency_update=dict(type='bool', default=False, aliases=['dep_up']),
        force=dict(type='bool', default=False),
        take_ownership=dict(type='bool', default=False),
        reset_values=dict(type='bool'),
        reuse_values=dict(type='bool'),
        history_max=dict(type='int'),
        skip_schema_validation=dict(type='bool', default=False),
        insecure_skip_tls_verify=dict(type='bool', default=False),
        update_repo_cache=dict(type='bool', default=False),
    )
    spec['context'] = dict(spec['context'], aliases=['kube_context'])
    return spec


def check_options(params):
    """Every problem of the input, found before helm or the API is asked anything."""
    check = Checker()
    name = params['name']
    if check.match(RELEASE_NAME, name, 'name', 'a valid release name (lowercase letters, digits, "-" and ".")'):
        check.require(len(name) <= RELEASE_NAME_MAX, 'name', 'must be at most %d characters, got %d' % (RELEASE_NAME_MAX, len(name)))
    check.match(DNS_LABEL, params['release_namespace'], 'release_namespace', 'a valid namespace name (lowercase DNS label)')
    check.match(DURATION, params['wait_timeout'], 'wait_timeout', 'a duration such as 300s or 5m0s')
    check_connection(check, params)
    for option, text in helm_problems(auth_params(params)):
        check.error(option, text)
    if params.get('binary_path') and not (os.path.isfile(params['binary_path']) and os.access(params['binary_path'], os.X_OK)):
        check.error('binary_path', '%r is not an executable file' % params['binary_path'])
    state = params['state']
    if state == 'absent':
        check.raise_if_any()
        return
    if params.get('post_renderer'):
        post_renderer = params['post_renderer']
        if not os.path.isfile(post_renderer):
            check.error('post_renderer', '%r is not a file' % post_renderer)
        elif not os.access(post_renderer, os.X_OK):
            check.error('post_renderer', '%r is not executable (chmod +x it, or copy it with mode 0700)' % post_renderer)
    if params.get('history_max') is not None:
        check.require(params['history_max'] >= 0, 'history_max', 'must be 0 (no limit) or more, got %d' % params['history_max'])
    if params.get('reuse_values') and params.get('reset_values'):
        check.error('reset_values', 'reset_values=true discards the values reuse_values=true asks to keep; set one of them')
    _check_chart(check, params, state)
    if params.get('chart_version') is not None:
        check.require(valid_version_constraint(params['chart_version']), 'chart_version',
                      '%r is not a version or version constraint such as 1.2.3, ^1.2 or ">=1.0, <2.0"' % params['chart_version'])
    if bool(params.get('registry_username')) != bool(params.get('registry_password')):
        check.error('registry_username' if not params.get('registry_username') else 'registry_password',
                    'registry_username and registry_password must be given together')
    _check_values(check, params)
    if not check.errors:
        try:
            composed_values(params)
        except ValueError as exc:
            check.error(exc.args[0], exc.args[1])
    _check_render_dir(check, params, state)
    check.raise_if_any()


def _check_chart(check, params, state):
    """chart_ref and where it comes from: an oci:// reference, a repository URL, a local path or repo/chart."""
    chart_ref = params.get('chart_ref')
    if not chart_ref:
        check.error('chart_ref', 'is required with state=%s' % state)
    elif chart_ref.startswith('-'):
        # helm would read it as an option (argv injection), whatever else chart_ref is.
        check.error('chart_ref', '%r begins with "-", which helm would read as an option; a local chart beginning with "-" '
                                 'is given as ./%s' % (chart_ref, chart_ref))
    else:
        source = chart_source(chart_ref, params.get('chart_repo_url'))
        if source == 'oci':
            check.require(re.match(r'^oci://[^/\s]+/[^\s]+[^/\s]$', chart_ref), 'chart_ref', 'must be oci://host/path/chart')
            check.require(not params.get('chart_repo_url'), 'chart_repo_url', 'cannot be used with an oci:// chart_ref')
        elif source == 'local':
            check.require(os.path.exists(user_path(chart_ref)), 'chart_ref',
                          '%r is not an oci:// reference, a repo/chart name or an existing chart path' % chart_ref)
        if source != 'oci':
            for option in ('registry_username', 'registry_password', 'plain_http'):
                check.require(not params.get(option), option, 'applies to oci:// charts only')
        if params.get('chart_repo_url'):
            check.require(re.match(r'^(https?|file)://\S+$', params['chart_repo_url']), 'chart_repo_url', 'must be an http(s):// or file:// URL')
            check.require(re.match(r'^[A-Za-z0-9._-]+$', chart_ref), 'chart_ref', 'must be a chart name (no "/") with chart_repo_url')


def _check_values(check, params):
    """values_files (YAML mappings) and set_values (key=value; JSON or an existing file by type)."""
    for path in params.get('values_files') or []:
        if not os.path.isfile(path):
            check.error('values_files', '%r is not a readable file' % path)
            continue
        try:
            with open(path) as handle:
                loaded = yaml.safe_load(handle)
        except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
            check.error('values_files', '%r is not valid YAML (%s)' % (path, type(exc).__name__))
            continue
        check.require(loaded is None or isinstance(loaded, dict), 'values_files', '%r is not a YAML mapping' % path)
    for index, item in enumerate(params.get('set_values') or []):
        option = 'set_values[%d].value' % index
        key, sep, value = (item.get('value') or '').partition('=')
        if not sep or not key.strip():
            check.error(option, 'must be key=value')
            continue
        if item['value_type'] == 'json':
            try:
                json.loads(value)
            except ValueError:
                check.error(option, 'value of %r is not valid JSON' % key)
        elif item['value_type'] == 'file':
            check.require(os.path.isfile(user_path(value)), option, 'file %r of key %r does not exist' % (value, key))


def _check_render_dir(check, params, state):
    """render_dir: required by, and only for, state=rendered."""
    if state == 'rendered':
        render_dir = params.get('render_dir')
        if not render_dir:
            check.error('render_dir', 'is required with state=rendered')
        elif os.path.exists(render_dir) and not os.path.isdir(render_dir):
            check.error('render_dir', '%r exists and is not a directory' % render_dir)
    elif params.get('render_dir'):
        check.error('render_dir', 'applies to state=rendered only')


# -- planning: what is and what is wanted in, the action out; no helm, no API ---------------------

class ReleasePlan:
    """A planned run: `action` (install, reinstall, rollback, upgrade, uninstall, write or none),
    `reasons` saying why in words, `tracker` holding every compared field (it answers `changed` and
    builds the diff), and `details` the action needs or the result reports."""

    def __init__(self, action, tracker, reasons=(), **details):
        self.action = action
        self.tracker = tracker
        self.reasons = list(reasons)
        self.details = details


# The field of the comparison that differs, as a reason to upgrade.
UPGRADE_REASONS = {
    'status': 'the release is not deployed', 'chart': 'the chart differs', 'values': 'the values differ',
    'values_digest': 'the values differ', 'drift': 'live objects drifted', 'manifest': 'the rendered manifest differs',
}


def recovery_action(status, has_deployed_revision):
    """What a release left in `status` needs whatever is asked, or None when comparing it with
    the desired release decides: a pending install, an uninstall or a failed release with no
    deployed revision is installed again, a pending upgrade or rollback is rolled back, another
    failed release is upgraded."""
    if status in ('pending-install', 'uninstalling') or (status == 'failed' and not has_deployed_revision):
        return 'reinstall'
    if status in ('pending-upgrade', 'pending-rollback'):
        return 'rollback'
    if status == 'failed':
        return 'upgrade'
    return None


def _compare_release(tracker, current, desired, mask):
    tracker.add('status', current['status'], 'deployed')
    tracker.add('chart', current['chart'], desired['chart'])
    tracker.add('values', mask(current['values']), mask(desired['values']))
    if current['installed'] and not values_equal(current['values'], desired['values']) and not tracker.has_differences:
        # A change the masked copies cannot show (a new password: both sides are the mask) or Python's ==
        # misses (True == 1): told by digests, so it is upgraded without the values showing in the diff.
        tracker.add('values_digest', values_digest(current['values']), values_digest(desired['values']))


def plan_release(current, desired, mask, namespace, compare_manifest=False):
    """Plan state=present. `current` is None when the release is not installed, else its `status`,
    `chart`, stored `values` and `manifest`, `has_deployed_revision` (read for a failed release)
    and, when its status leaves the decision to the comparison, `drift`: (fields, before, after)
    of its live objects. `desired` holds `chart`, `values` and `manifest` as helm would install
    them; `mask` hides secret values in the diff. With `compare_manifest` (a local chart or a
    post-renderer) the rendered manifest is compared too. The plan's details hold `drift` and
    the changed `objects_before` and `objects_after`."""
    tracker = DifferenceTracker()
    if current is None:
        action, reasons = 'install', ['the release is not installed']
        current = {'installed': False, 'status': None, 'chart': None, 'values': None, 'manifest': ''}
    else:
        action = recovery_action(current['status'], current.get('has_deployed_revision'))
        reasons = ['the release is %s' % current['status']] if action else []
        current = dict(current, installed=True)
    _compare_release(tracker, current, desired, mask)
    drift, drift_before, drift_after = [], {}, {}
    if action is None:
        drift, drift_before, drift_after = current['drift']
        tracker.add('drift', drift, [])
        if compare_manifest:
            tracker.add('manifest', value_hash(current['manifest'].strip()), value_hash(desired['manifest'].strip()))
        reasons = _unique(UPGRADE_REASONS[field] for field in tracker.changed_fields())
        action = 'upgrade' if reasons else 'none'
    before, after = changed_objects(split_manifest(current['manifest']), split_manifest(desired['manifest']), namespace)
    before.update(drift_before)
    after.update(drift_after)
    return ReleasePlan(action, tracker, reasons, drift=list(drift), objects_before=before, objects_after=after)


def _unique(items):
    seen = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def plan_uninstall(release):
    """Plan state=absent: uninstall the release when there is one."""
    tracker = DifferenceTracker()
    tracker.add('status', release and release.get('status'), None)
    if release:
        return ReleasePlan('uninstall', tracker, ['the release is installed'])
    return ReleasePlan('none', tracker)


def plan_rendered(existing, docs):
    """Plan state=rendered. `existing` holds render_dir's .yaml files by name, `docs` the (text,
    object) of each document helm rendered. Files that differ are written and stale ones removed;
    the diff shows a Secret's file as a fingerprint. The details hold the `wanted` files, the
    `stale` names and the `chart` the objects are labelled with."""
    names = rendered_file_names([parsed for _raw, parsed in docs])
    wanted = dict(zip(names, [raw for raw, _parsed in docs]))
    objects = dict(zip(names, [parsed for _raw, parsed in docs]))

    def shown(name, text):
        obj = objects.get(name)
        if obj is not None and obj.get('kind') == 'Secret':
            return value_hash(text)
        return text

    before = {n: shown(n, t) for n, t in existing.items() if wanted.get(n) != t}
    after = {n: shown(n, t) for n, t in wanted.items() if existing.get(n) != t}
    stale = sorted(set(existing) - set(wanted))
    tracker = DifferenceTracker()
    tracker.add('files', before, after)
    chart = next((labels['helm.sh/chart'] for labels in (((parsed.get('metadata') or {}).get('labels') or {}) for _raw, parsed in docs)
                  if labels.get('helm.sh/chart')), None)
    action = 'write' if tracker.has_differences else 'none'
    reasons = ['to write: %s' % ', '.join(sorted(after))] if after else []
    if stale:
        reasons.append('no longer rendered: %s' % ', '.join(stale))
    return ReleasePlan(action, tracker, reasons, wanted=wanted, stale=stale, chart=chart)


class ReleaseManager:
    """Reads the release and its live objects, decides, and runs helm only when something must change."""

    def __init__(self, module, runner):
        self.module = module
        self.params = module.params
        self.helm = runner
        self.name = self.params['name']
        self.namespace = self.params['release_namespace']
        self.mask_all = module.no_log
        self.tracker = DifferenceTracker()
        self.objects_before = {}
        self.objects_after = {}
        self.recovered = None
        self.drift = []
        self._client = None
        self._values_file = None
        self._set_paths = None
        self._logged_in = False
        self._stored = {}
        self._drift_of = None
        # Set when the re-run was decided from the stored release: the result, built from what was read.
        self.stored_noop = None
        self.stored_noop_reason = None

    def masked(self, values):
        """Values safe to show: secret-looking keys (every leaf with no_log) and every key path of secret_values and of
        set_values masked."""
        shown = mask_paths(mask_values(values, self.mask_all), self.params.get('secret_values') or {})
        if self.params.get('set_values'):
            if self._set_paths is None:
                try:
                    self._set_paths = apply_set_values({}, self.params['set_values'], read_file=lambda path: '')
                except SetValuesError:
                    self._set_paths = {}
            shown = mask_paths(shown, self._set_paths)
        return shown

    # -- arguments ----------------------------------------------------------------------------

    def chart_args(self):
        params = self.params
        args = [params['chart_ref']]
        if params.get('chart_repo_url'):
            args += ['--repo', params['chart_repo_url']]
        if params.get('chart_version'):
            args += ['--version', params['chart_version']]
        if params.get('plain_http') and self.helm.flags.plain_http_supported:
            args.append('--plain-http')
        if params.get('insecure_skip_tls_verify'):
            args.append('--insecure-skip-tls-verify')
        return args

    def post_render_args(self):
        if self.params['state'] == 'absent' or not self.params.get('post_renderer'):
            return []
        return ['--post-renderer', self.params['post_renderer']]

    def values_args(self):
        """-f for each values file, then the module's own values file (mode 0600 in the private directory, removed
        at the end of the task): values, secret_values and, applied as helm applies them, set_values. No value is
        ever an argument of helm (a command line is readable by every user of the host)."""
        args = []
        for path in self.params.get('values_files') or []:
            args += ['-f', path]
        if self._values_file is None:
            composed = composed_values(self.params)  # checked before helm first ran
            self._values_file = ''
            if composed:
                self._values_file = os.path.join(self.helm.private_dir(), 'values.json')
                write_private(self._values_file, json.dumps(composed))
        if self._values_file:
            args += ['-f', self._values_file]
        return args

    def render_args(self):
        """Flags of every rendering of the chart (install, upgrade, their dry runs, template; helm 3.17+ and 4 take them all)."""
        args = []
        if self.params['dependency_update']:
            args.append('--dependency-update')
        if self.params['skip_schema_validation']:
            args.append('--skip-schema-validation')
        if self.params['take_ownership']:
            # The dry run, too, refuses objects that exist without belonging to the release.
            args.append('--take-ownership')
        return args + self.post_render_args()

    def write_args(self):
        """Flags of the install and upgrade that change the cluster."""
        args = []
        if self.params['skip_crds']:
            args.append('--skip-crds')
        return args

    def upgrade_args(self, release):
        """Flags of upgrades only: how the release's values are kept, --force, --history-max."""
        if values_reused(self.params, release):
            args = ['--reuse-values'] if self.params.get('reuse_values') else []
        else:
            args = ['--reset-values']
        if self.params['force']:
            args += self.helm.flags.force()
        if self.params.get('history_max') is not None:
            args += ['--history-max', str(self.params['history_max'])]
        return args

    def operation_args(self):
        args = []
        if self.params['atomic']:
            args += self.helm.flags.atomic()
        if self.params['wait'] or self.params['atomic']:
            args += self.helm.flags.wait(self.params['wait_timeout'])
        else:
            args += ['--timeout', self.params['wait_timeout']]
        return args

    @property
    def client(self):
        if self._client is None:
            self._client = get_client(self.module)
        return self._client

    def registry_login(self):
        """Log in to the chart's OCI registry (or refresh the chart's repository with update_repo_cache), once, right
        before helm first needs the chart."""
        params = self.params
        if self._logged_in:
            return
        self._logged_in = True
        if params.get('update_repo_cache') and chart_source(params['chart_ref'], params.get('chart_repo_url')) == 'repo':
            # Only helm's local cache of that repository's index is written; nothing of the cluster.
            try:
                self.helm.run(['repo', 'update', params['chart_ref'].split('/', 1)[0]])
            except HelmError as exc:
                raise HelmError('update_repo_cache: the repository of %s could not be updated (%s)' % (params['chart_ref'], exc),
                                command=exc.command, rc=exc.rc, stderr=exc.stderr, option='update_repo_cache')
        if not params.get('registry_username'):
            return
        self.helm.login(oci_registry_host(params['chart_ref']), params['registry_username'], params['registry_password'],
                        plain_http=params['plain_http'], insecure=params.get('insecure_skip_tls_verify'))

    # -- reads --------------------------------------------------------------------------------

    def stored_values(self):
        if 'values' not in self._stored:
            self._stored['values'] = self.helm.values(self.name, self.namespace)
        return self._stored['values']

    def stored_manifest(self):
        if 'manifest' not in self._stored:
            self._stored['manifest'] = self.helm.manifest(self.name, self.namespace)
        return self._stored['manifest']

    def fetch_error(self, exc):
        """A failed chart fetch told against chart_ref, chart_version or the registry credentials."""
        params = self.params
        return chart_error(exc, params['chart_ref'], params.get('chart_version'), with_credentials=bool(params.get('registry_username')),
                           remote=chart_source(params['chart_ref'], params.get('chart_repo_url')) != 'local')

    def desired_before_crds(self):
        """A first install's preview when the chart's own CRDs (its crds/ directory) are not installed yet.

        helm's dry run maps every rendered object against the cluster's API and so refuses the custom resources
        of a chart that brings their CRDs (kube-prometheus-stack on a fresh cluster); the real install creates
        the CRDs first and succeeds. The preview is then rendered client-side (helm template, which needs no
        mapping) with the chart's metadata from helm show chart; its user values are the ones the module merges
        itself (with set_values applied as helm applies them)."""
        try:
            _rc, manifest, _err = self.helm.run(['template', self.name] + self.chart_args() + ['-n', self.namespace]
                                                + self.values_args() + self.render_args(), record=False)
            _rc, chart_yaml, _err = self.helm.run(['show', 'chart'] + self.chart_args(), record=False)
        except HelmError as exc:
            raise self.fetch_error(exc)
        metadata = yaml.safe_load(to_text(chart_yaml)) or {}
        try:
            values = requested_values(self.params.get('values_files'), composed_values(self.params))
        except (ValueError, OSError):
            values = composed_values(self.params) or {}
        return {
            'chart': '%s-%s' % (metadata.get('name'), metadata.get('version')),
            'app_version': metadata.get('appVersion'),
            'values': values,
            'manifest': to_text(manifest),
        }

    def require_namespace(self):
        """Before an install without create_namespace: a missing namespace is named, nothing is sent."""
        if self.params['create_namespace']:
            return
        text = missing_namespace(self.module, lambda: self.client, self.namespace, 'release_namespace',
                                 'create it first or set create_namespace=true')
        if text:
            raise HelmError(text, option='release_namespace')

    def desired(self, first_install=False, current=None):
        """What helm would install: chart metadata, user values (as helm merges them) and manifest. When the upgrade
        keeps the release's values (reuse_values, reset_values=false), helm's own upgrade dry run tells them."""
        self.registry_login()
        if values_reused(self.params, current):
            command = ['upgrade', self.name] + self.chart_args() + ['-n', self.namespace] + self.values_args() + self.render_args() \
                + (['--reuse-values'] if self.params.get('reuse_values') else [])
        else:
            command = ['install', self.name] + self.chart_args() + ['-n', self.namespace] + self.values_args() + self.render_args()
        try:
            release = self.helm.run_json(command + self.helm.flags.dry_run_client(), record=False)
        except HelmError as exc:
            if first_install and CRDS_MISSING.search(to_text(exc.stderr or '') or str(exc)):
                return self.desired_before_crds()
            raise self.fetch_error(exc)
        metadata = release['chart']['metadata']
        return {
            'chart': '%s-%s' % (metadata['name'], metadata['version']),
            'app_version': metadata.get('appVersion'),
            'values': release.get('config') or {},
            'manifest': release.get('manifest') or '',
        }

    def live_drift(self, manifest, live=None):
        """`Kind/ns/name field` for each field the manifest sets that differs live; before/after for the diff.

        The live objects are read from the API, once per manifest (a full path after a declined stored-release
        decision reuses the reads), or, with `live` (a live_index of helm's own reads), looked up there."""
        if live is not None:
            return self._read_drift(manifest, live)
        if self._drift_of is None or self._drift_of[0] != manifest:
            self._drift_of = (manifest, self._read_drift(manifest))
        drift, before, after = self._drift_of[1]
        return list(drift), dict(before), dict(after)

    def _read_drift(self, manifest, live_objects=None):
        drift, before, after = [], {}, {}
        for obj in split_manifest(manifest):
            meta = obj.get('metadata') or {}
            label = object_label(obj, self.namespace)
            if live_objects is not None:
                live = live_lookup(live_objects, obj, self.namespace)
            else:
                try:
                    live = get_object(self.client, obj.get('apiVersion'), obj.get('kind'), meta.get('name'),
                                      meta.get('namespace') or self.namespace)
                except Exception as exc:  # pylint: disable=broad-except
                    raise HelmError('cannot read %s for drift detection: %s' % (label, api_error_message(exc)))
            if live is None:
                drift.append('%s (missing)' % label)
                before[label] = None
                after[label] = mask_secret(obj, SECRET_FINGERPRINTS)
                continue
            fields = secret_drift(obj, live) if obj.get('kind') == 'Secret' else drifted_fields(obj, live)
            if fields:
                drift.extend('%s %s' % (label, field) for field in fields)
                before[label] = mask_secret(dict(project(obj, live), kind=obj.get('kind')), SECRET_FINGERPRINTS)
                after[label] = mask_secret(obj, SECRET_FINGERPRINTS)
        return drift, before, after

    # -- states -------------------------------------------------------------------------------

    def absent(self):
        plan = plan_uninstall(self.helm.release(self.name, self.namespace))
        self.tracker = plan.tracker
        if plan.action == 'uninstall' and not self.module.check_mode:
            self.helm.run(['uninstall', self.name, '-n', self.namespace, '--wait', '--timeout', self.params['wait_timeout']])
        return {'status': None}

    def status_with_live_objects(self, release):
        """The release's values, manifest and live objects in one `helm status --show-resources` (helm 3.10+), or
        None when this helm cannot tell them or told something else than `helm list` (the caller reads them
        itself then). Fills the stored values and manifest, which the full path reuses."""
        if not self.helm.flags.status_resources:
            return None
        try:
            status = self.helm.status(self.name, self.namespace)
        except (HelmError, ValueError):
            return None
        if not isinstance(status, dict) or not isinstance(status.get('info'), dict):
            return None
        info = status['info']
        if (status.get('version') != int(release['revision']) or info.get('status') != 'deployed' or not isinstance(status.get('manifest'), str)
                or not isinstance(info.get('resources') or {}, dict) or not isinstance(status.get('config') or {}, dict)):
            return None
        self._stored.setdefault('values', status.get('config') or {})
        self._stored.setdefault('manifest', status['manifest'])
        return live_index(info.get('resources'))

    def decide_from_stored(self, release):
        """True when the re-run is a no-op decided without the registry: a deployed release of the same remote
        chart name and exact version, the same user values (as helm would merge them) and no live drift.
        Records the no-op in the tracker and sets `stored_noop` (the result); False leaves the full path to decide,
        with `stored_noop_reason` saying why."""
        params = self.params
        self.stored_noop_reason = stored_noop_blocker(params['chart_ref'], params.get('chart_repo_url'), params.get('chart_version'),
                                                      params.get('set_values'), release, post_renderer=params.get('post_renderer'),
                                                      values_reused=values_reused(params, release))
        if self.stored_noop_reason:
            return False
        try:
            wanted = requested_values(params.get('values_files'), composed_values(params))
        except (ValueError, OSError) as exc:
            self.stored_noop_reason = 'a values file may read differently in helm (%s)' % type(exc).__name__
            return False
        live = self.status_with_live_objects(release)
        stored_values = self.stored_values()
        if not values_equal(wanted, stored_values):
            self.stored_noop_reason = 'values differ'
            return False
        # Live objects as helm read them (helm 3.10+) or from the API; either way a drifted, missing or
        # unreadable object sends the decision to the full path, which reads the API itself.
        try:
            drift, _before, _after = self.live_drift(self.stored_manifest(), live)
        except HelmError:
            self.stored_noop_reason = 'live objects could not be read'
            return False
        if drift:
            self.stored_noop_reason = 'live drift'
            return False
        # The same records as the full path's no-op, so changed and diff read alike.
        masked = self.masked(stored_values)
        self.tracker.add('status', 'deployed', 'deployed')
        self.tracker.add('chart', release['chart'], release['chart'])
        self.tracker.add('values', masked, masked)
        self.tracker.add('drift', [], [])
        self.drift = []
        self.stored_noop = {'status': release['status'], 'revision': int(release['revision']), 'chart': release['chart'],
                            'app_version': release.get('app_version'), 'values': masked}
        return True

    def current(self, release):
        """What plan_release compares for an installed release: its status and chart, its stored values and
        manifest, whether a failed release has a deployed revision to go back to, and, when the status leaves
        the decision to the comparison, the drift of its live objects."""
        status = release.get('status')
        current = {'status': status, 'chart': release.get('chart'), 'values': self.stored_values(), 'manifest': self.stored_manifest()}
        current['has_deployed_revision'] = bool(self._deployed_revision()) if status == 'failed' else None
        if recovery_action(status, current['has_deployed_revision']) is None:
            current['drift'] = self.live_drift(current['manifest'])
        return current

    def present(self):
        release = self.helm.release(self.name, self.namespace)
        if release is None:
            self.require_namespace()
        elif self.decide_from_stored(release):
            return None
        desired = self.desired(first_install=release is None, current=release)
        # A local chart's templates, like a post-renderer's output, can change without a new version.
        compare_manifest = chart_source(self.params['chart_ref'], self.params.get('chart_repo_url')) == 'local' \
            or bool(self.params.get('post_renderer'))
        plan = plan_release(self.current(release) if release is not None else None, desired, self.masked, self.namespace,
                            compare_manifest=compare_manifest)
        self.tracker = plan.tracker
        self.drift = plan.details['drift']
        self.objects_before, self.objects_after = plan.details['objects_before'], plan.details['objects_after']
        if plan.action != 'none' and not self.module.check_mode:
            self.apply(plan.action, release)
        return desired

    def _deployed_revision(self, below=None):
        best = None
        for entry in self.helm.history(self.name, self.namespace):
            revision = entry.get('revision')
            if below is not None and revision >= below:
                continue
            if entry.get('status') in ('deployed', 'superseded') and (best is None or revision > best):
                best = revision
        return best

    def apply(self, action, release):
        base = ['-n', self.namespace] + self.values_args() + self.render_args() + self.write_args() + self.operation_args()
        install = ['install', self.name] + self.chart_args() + base
        if self.params['create_namespace']:
            install.append('--create-namespace')
        if action == 'install':
            self.helm.run(install)
            return
        if action == 'reinstall':
            self.recovered = 'reinstalled from %s' % release['status']
            self.helm.run(['uninstall', self.name, '-n', self.namespace, '--wait', '--timeout', self.params['wait_timeout']])
            self.helm.run(install)
            return
        if action == 'rollback':
            target = self._deployed_revision(below=int(release['revision']))
            if target is None:
                self.recovered = 'reinstalled from %s (no deployed revision to roll back to)' % release['status']
                self.helm.run(['uninstall', self.name, '-n', self.namespace, '--wait', '--timeout', self.params['wait_timeout']])
                self.helm.run(install)
                return
            self.recovered = 'rolled back from %s to revision %d' % (release['status'], target)
            rollback_wait = self.helm.flags.wait(self.params['wait_timeout']) if self.params['wait'] else ['--timeout', self.params['wait_timeout']]
            self.helm.run(['rollback', self.name, str(target), '-n', self.namespace] + rollback_wait)
            # Upgrade only if the rolled-back release still differs from what was asked.
            current = self.helm.release(self.name, self.namespace) or {}
            wanted = self.desired(current=current)
            if (current.get('chart') == wanted['chart'] and values_equal(self.helm.values(self.name, self.namespace), wanted['values'])
                    and (not self.params.get('post_renderer')
                         or value_hash(self.helm.manifest(self.name, self.namespace).strip()) == value_hash(wanted['manifest'].strip()))):
                return
        # helm 4 takes --force-replace or --force-conflicts, not both; replacing takes every field back anyway.
        extra = [] if self.params['force'] and self.helm.flags.major >= 4 else self.helm.flags.upgrade_extra()
        self.helm.run(['upgrade', self.name] + self.chart_args() + base + self.upgrade_args(release) + extra)

    def rendered(self):
        """`helm template` into render_dir, one file per object: files that differ are written
        (0600), files of objects no longer rendered are removed; Secrets show as fingerprints."""
        render_dir = self.params['render_dir']
        self.registry_login()
        try:
            _rc, out, _err = self.helm.run(['template', self.name] + self.chart_args() + ['-n', self.namespace] + self.values_args()
                                           + self.render_args())
        except HelmError as exc:
            raise self.fetch_error(exc)
        existing = read_rendered_files(render_dir)
        plan = plan_rendered(existing, split_documents(to_text(out)))
        self.tracker = plan.tracker
        wanted, stale = plan.details['wanted'], plan.details['stale']
        if plan.action == 'write' and not self.module.check_mode:
            write_rendered_files(render_dir, wanted, existing, stale)
        return {'files': sorted(wanted), 'removed_files': stale, 'chart': plan.details['chart']}


def read_rendered_files(render_dir):
    """The .yaml files of render_dir by name, as text ({} when the directory does not exist)."""
    existing = {}
    if os.path.isdir(render_dir):
        for entry in sorted(os.listdir(render_dir)):
            path = os.path.join(render_dir, entry)
            if entry.endswith('.yaml') and os.path.isfile(path):
                with open(path, 'rb') as handle:
                    existing[entry] = to_text(handle.read())
    return existing


def write_rendered_files(render_dir, wanted, existing, stale):
    """Write the files that differ and remove the stale ones."""
    os.makedirs(render_dir, exist_ok=True)
    for name, text in wanted.items():
        if existing.get(name) != text:
            # Mode 0600 from creation (a rendered Secret holds the values' secrets), and no .tmp left on error.
            tmp = os.path.join(render_dir, '.%s.tmp' % name)
            try:
                write_private(tmp, to_bytes(text))
                os.replace(tmp, os.path.join(render_dir, name))
            finally:
                if os.path.lexists(tmp):
                    os.remove(tmp)
    for name in stale:
        os.remove(os.path.join(render_dir, name))


def make_runner(module, binary):
    """The helm runner for the module's connection (options, else K8S_AUTH_*); a connection helm
    cannot be given fails naming the option."""
    auth = auth_params(module.params)
    try:
        return HelmRunner(module, binary, auth, mask_all=module.no_log)
    except (ValueError, OSError, yaml.YAMLError) as exc:
        option = auth.source('context') if auth['context'] else auth.source('kubeconfig')
        module.fail_option(option, 'cannot give helm this connection: %s' % exc)


def check_helm_version(module, runner, binary):
    """Options this helm cannot honour, refused naming the option and the version it needs."""
    params = module.params
    if params.get('plain_http') and not runner.flags.plain_http_supported:
        module.fail_option('plain_http', 'needs helm 3.13 or newer, %s is %s' % (binary, runner.version_text))
    if params.get('post_renderer') and params['state'] != 'absent' and runner.flags.major >= 4:
        module.fail_option('post_renderer', 'takes an executable, which helm 4 no longer runs (it takes post-renderer plugins); '
                                            '%s is %s, use helm 3' % (binary, runner.version_text))
    if params['state'] != 'absent':
        if params.get('take_ownership') and not runner.flags.take_ownership_supported:
            module.fail_option('take_ownership', 'needs helm 3.17 or newer, %s is %s' % (binary, runner.version_text))
        if params.get('skip_schema_validation') and not runner.flags.skip_schema_validation_supported:
            module.fail_option('skip_schema_validation', 'needs helm 3.16 or newer, %s is %s' % (binary, runner.version_text))


def run_state(module, manager):
    """Converge (or render, or remove) the release; returns the result's state-specific part."""
    params = module.params
    result = {}
    if params['state'] == 'absent':
        result.update(manager.absent())
    elif params['state'] == 'rendered':
        result.update(manager.rendered())
    else:
        desired = manager.present()
        result.update(recovered=manager.recovered, drift=manager.drift)
        if module.check_mode and not manager.stored_noop:
            result.update(chart=desired['chart'], app_version=desired['app_version'], values=manager.masked(desired['values']))
    return result


def release_after(module, runner, manager):
    """What the result says of the release after the run: status, revision, chart and values."""
    params = module.params
    name, namespace = params['name'], params['release_namespace']
    if manager.stored_noop:
        # Decided from the stored release: the result is what was read, no second list or get values.
        return dict(manager.stored_noop)
    result = {}
    if params['state'] != 'rendered' and not (module.check_mode and params['state'] == 'present'):
        after = runner.release(name, namespace)
        result['status'] = after.get('status') if after else None
        if after:
            result.update(revision=int(after['revision']), chart=after.get('chart'), app_version=after.get('app_version'))
            if params['state'] == 'present':
                result['values'] = manager.masked(runner.values(name, namespace))
    elif params['state'] == 'present':
        before = runner.release(name, namespace)
        result['status'] = before.get('status') if before else None
        if before:
            result['revision'] = int(before['revision'])
    return result


def main():
    module = helm_module(argument_spec(), check_options, prepare=protect_kubeconfig)
    params = module.params

    binary = params.get('binary_path') or module.get_bin_path('helm')
    if not binary:
        module.fail_option('binary_path', 'helm was not found on PATH; install helm 3.8+ or set binary_path')
    runner = make_runner(module, binary)
    manager = None
    try:
        runner.detect_version()
        check_helm_version(module, runner, binary)
        manager = ReleaseManager(module, runner)
        result = run_state(module, manager)
        result.update(release_after(module, runner, manager))
    except HelmError as exc:
        extra = dict(command=runner.commands, helm_version=runner.version_text, stderr=exc.stderr,
                     recovered=manager.recovered if manager else None, exception=traceback.format_exc())
        if exc.option:
            # helm's failure re-told against the option at fault: named as data, like any input error.
            extra = input_error_fields([(exc.option, str(exc).replace(exc.option + ': ', '', 1))], extra)
        module.fail_json(msg=str(exc), **extra)
    finally:
        # Every exit path (success, a failure told by fail_json, any exception): values files and registry configuration go.
        runner.cleanup()

    result.update(changed=manager.tracker.has_differences, command=runner.commands, helm_version=runner.version_text)
    if module._diff:
        diff = manager.tracker.diff()
        if params['state'] == 'present':
            diff['before']['objects'] = manager.objects_before
            diff['after']['objects'] = manager.objects_after
        result['diff'] = diff
    module.exit_json(**result)


if __name__ == '__main__':
    main()
