"""helm_release's values precedence checked against the real helm binaries (3.19 and 4.3); no cluster.

Each case of the table gives values files, `values` and `set_values`, and the user-supplied values
written out by hand. The module's own code builds helm's arguments (ReleaseManager.values_args: one -f
per values file in order, `values` as the last -f file, then the --set flags) for `helm template` of a
chart without defaults whose only template dumps `.Values` as JSON; with no chart defaults to coalesce,
`.Values` is what helm stores as the release's user-supplied values (`helm get values`; the
integration target helm_release compares the two on a real release, and test_template_dump_is_the_stored_config
here on helm 4, whose client-side dry run needs no cluster). Then:

- helm's values must equal the table's (the table is what the module's documentation promises);
- without set_values, the module's own merge (requested_values, which decides a re-run from the
  stored release without helm) must equal helm's as the module compares them (values_equal); a file
  helm may read differently must make the module decline (ValueError), never guess;
- with set_values, the module must never decide alone (helm's --set parsing is not reproduced).

Not in tests/unit because the helm binaries come with the sandbox's tools (HELM_BIN, HELM4_BIN).
"""
import json
import os
import subprocess
import sys
import types

import pytest
import yaml

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', '..', '.collections'))

from ansible_collections.genai.stack.plugins.module_utils import _helm  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.genai.stack.plugins.modules import helm_release  # noqa: E402  pylint: disable=wrong-import-position

REQUIRED = ("HELM_BIN", "HELM4_BIN")

DUMP = ('apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dump\n'
        'data:\n  values.json: {{ toJson .Values | quote }}\n')
DECLINES = 'declines'

# (id, values files' text, values, set_values as (value_type, value), helm's user-supplied values)
CASES = [
    ('maps merge deeply, later files win', [
        'image: {repository: r, tag: "1"}\ngpu: {enabled: true, count: 1}\nkeep: {a: 1}\n',
        'image: {tag: "2"}\ngpu: {count: 2}\n'],
     {'gpu': {'enabled': False}}, [],
     {'image': {'repository': 'r', 'tag': '2'}, 'gpu': {'enabled': False, 'count': 2}, 'keep': {'a': 1}}),
    ('lists are replaced whole, never merged', [
        'servers: [{name: a, port: 1}, {name: b, port: 2}]\ntags: [x, z]\n',
        'servers: [{port: 3}]\n'],
     {'tags': []}, [],
     {'servers': [{'port': 3}], 'tags': []}),
    ('a scalar replaces a map and a map a scalar', ['a: {b: 1}\ns: 1\n', 'a: flat\ns: {now: map}\n'], {}, [],
     {'a': 'flat', 's': {'now': 'map'}}),
    ('a null is kept in the user values, replacing a leaf or a whole map',
     ['a: {b: 1, c: 2}\nd: {e: 1}\ntop: ~\n'], {'a': {'b': None}, 'd': None}, [],
     {'a': {'b': None, 'c': 2}, 'd': None, 'top': None}),
    ('a map after a null is taken as is', ['a: null\n', 'a: {b: 1}\n'], {}, [], {'a': {'b': 1}}),
    ('an empty map or an empty file changes nothing', ['keep: {a: 1}\n', 'keep: {}\n', '# only a comment\n'], {}, [],
     {'keep': {'a': 1}}),
    ('values is the last file: its types win', ['num: 1\nm: "2"\nf: 1.5\n'], {'num': '1', 'm': 2}, [],
     {'num': '1', 'm': 2, 'f': 1.5}),
    ('anchors and merge keys', ['base: &b {p: 1, q: 2}\nderived:\n  <<: *b\n  q: 3\n'], {}, [],
     {'base': {'p': 1, 'q': 2}, 'derived': {'p': 1, 'q': 3}}),
    # helm's YAML 1.1 reads a plain y or n (key or value) as a bool; PyYAML as a string: the module must not guess.
    ('a plain y key is true to helm, so the module declines', ['gpu: {y: 1}\n'], {}, [], {'gpu': {'true': 1}}),
    ('a plain n value is false to helm, so the module declines', ['opts: [x, n]\n'], {}, [], {'opts': ['x', False]}),
    ('set: a dotted path merges into the files and values', ['a: {b: {c: 1, d: 2}}\n'], {'a': {'b': {'c': 3}}},
     [('raw', 'a.b.d=4'), ('raw', 'a.x.y=z')],
     {'a': {'b': {'c': 3, 'd': 4}, 'x': {'y': 'z'}}}),
    ('set: list indexes change one element and grow the list',
     ['servers: [{name: a, port: 1}, {name: b, port: 2}]\n'], {},
     [('raw', 'servers[0].name=x'), ('raw', 'servers[2].name=c')],
     {'servers': [{'name': 'x', 'port': 1}, {'name': 'b', 'port': 2}, {'name': 'c'}]}),
    ('set: types are inferred, set-string keeps strings', [], {},
     [('raw', 'n=10,neg=-3,f=1.5,z=0123,b=true,off=false,nl=null,big=12345678901234567890'),
      ('string', 's=10'), ('string', 't=true')],
     {'n': 10, 'neg': -3, 'f': '1.5', 'z': '0123', 'b': True, 'off': False, 'nl': None, 'big': '12345678901234567890',
      's': '10', 't': 'true'}),
    ('set: {a,b} is a list, json keeps nested types, an escaped dot is part of the key', ['l: [1, 2]\n'], {},
     [('raw', 'l={3}'), ('raw', 'm={a,b}'), ('json', 'j={"k":[1,{"m":null}]}'), ('raw', 'ann.example\\.com/x=1')],
     {'l': [3], 'm': ['a', 'b'], 'j': {'k': [1, {'m': None}]}, 'ann': {'example.com/x': 1}}),
    ('set: null over values', [], {'a': {'b': 1, 'c': 2}}, [('raw', 'a.b=null')], {'a': {'b': None, 'c': 2}}),
    # helm applies all --set-json, then all --set, then all --set-string, then all --set-file, whatever
    # the order on the command line: set_values of different types are applied by type, not in list order.
    ('set: applied by type (json, raw, string), not in list order', [], {},
     [('string', 'k=from-string'), ('raw', 'k=2'), ('raw', 'j=from-raw'), ('json', 'j="from-json"')],
     {'k': 'from-string', 'j': 'from-raw'}),
    ('set: a file comes after string (FILE is a file holding from-file)', [], {},
     [('file', 'k=FILE'), ('string', 'k=from-string'), ('string', 'j=from-string')], {'k': 'from-file', 'j': 'from-string'}),
]


@pytest.fixture(scope="module")
def charts(tmp_path_factory):
    """`user`: no defaults (its .Values are the user-supplied values); `defaults`: with defaults."""
    root = tmp_path_factory.mktemp("charts")
    made = {}
    for name, defaults in (('user', ''), ('defaults', 'chartDefault: {kept: 1, dropped: 2}\nlist: [1, 2]\n')):
        (root / name / 'templates').mkdir(parents=True)
        (root / name / 'Chart.yaml').write_text('apiVersion: v2\nname: %s\nversion: 0.1.0\n' % name)
        (root / name / 'values.yaml').write_text(defaults)
        (root / name / 'templates' / 'dump.yaml').write_text(DUMP)
        made[name] = str(root / name)
    return made


def _module(tmp_path, params):
    """What ReleaseManager and HelmRunner use of an AnsibleModule, running commands for real."""
    def run_command(argv, environ_update=None, data=None, binary_data=False):
        env = dict(os.environ, **(environ_update or {}))
        done = subprocess.run(argv, capture_output=True, text=True, env=env, input=data, timeout=120, check=False)
        return done.returncode, done.stdout, done.stderr
    full = dict(name='prec', release_namespace='default', values={}, values_files=[], set_values=None, atomic=False,
                wait=False, wait_timeout='5m0s', chart_ref=None, chart_repo_url=None, chart_version=None, plain_http=False,
                registry_username=None)
    full.update(params)
    return types.SimpleNamespace(params=full, no_log=False, check_mode=False, tmpdir=str(tmp_path), run_command=run_command)


def _manager(tmp_path, helm, files, values, sets):
    paths = []
    for index, text in enumerate(files):
        path = tmp_path / ('values-%d.yaml' % index)
        path.write_text(text)
        paths.append(str(path))
    (tmp_path / 'set-file.txt').write_text('from-file')
    sets = [(t, v.replace('FILE', str(tmp_path / 'set-file.txt'))) for t, v in sets]
    module = _module(tmp_path, dict(values=values, values_files=paths,
                                    set_values=[{'value': v, 'value_type': t} for t, v in sets] or None))
    runner = _helm.HelmRunner(module, helm, {})
    runner.detect_version()
    return helm_release.ReleaseManager(module, runner)


def _dumped_values(manager, chart):
    """.Values as helm renders them, with the arguments the module gives helm."""
    _rc, out, _err = manager.helm.run(['template', 'prec', chart] + manager.values_args())
    docs = [doc for doc in yaml.safe_load_all(out) if doc]
    assert len(docs) == 1, out
    return json.loads(docs[0]['data']['values.json'])


@pytest.mark.parametrize('helm_var', ['HELM_BIN', 'HELM4_BIN'])
@pytest.mark.parametrize('case', CASES, ids=[c[0] for c in CASES])
def test_precedence_as_real_helm_merges(env, charts, tmp_path, helm_var, case):
    _id, files, values, sets, expected = case
    manager = _manager(tmp_path, env[helm_var], files, values, sets)
    from_helm = _dumped_values(manager, charts['user'])
    assert _helm.values_equal(from_helm, expected), (manager.helm.version_text, from_helm)
    if sets:
        # The stored-release decision is never taken with set_values: helm's --set parsing is not reproduced.
        assert _helm.stored_noop_request_blocker('oci://r/c/x', None, '1.0.0', manager.params['set_values']) == 'set_values given'
        return
    try:
        merged = _helm.requested_values(manager.params['values_files'], manager.params['values'])
    except ValueError:
        merged = DECLINES
    assert (merged == DECLINES) == ('declines' in case[0]), (manager.helm.version_text, merged, from_helm)
    if merged == DECLINES:
        return
    assert _helm.values_equal(merged, from_helm), (manager.helm.version_text, merged, from_helm)


@pytest.mark.parametrize('helm_var', ['HELM_BIN', 'HELM4_BIN'])
def test_null_deletes_a_chart_default_and_set_replaces_its_list(env, charts, tmp_path, helm_var):
    """With chart defaults, a user null removes the default's key from .Values (it stays null in the user
    values, as the table shows), and a --set list replaces the default list."""
    manager = _manager(tmp_path, env[helm_var], ['chartDefault: {dropped: null}\n'], {'extra': {'x': None}}, [('raw', 'list={3}')])
    assert _dumped_values(manager, charts['defaults']) == {'chartDefault': {'kept': 1}, 'list': [3], 'extra': {'x': None}}


def test_template_dump_is_the_stored_config(env, charts, tmp_path):
    """The premise of the table: with no chart defaults, the dumped .Values are the values helm stores
    for the release (`config`, what `helm get values` prints). helm 4's client-side dry run needs no
    cluster; helm 3's asks the cluster for its version, so helm 3 is compared on a real release by the
    integration target helm_release (tasks/precedence.yml)."""
    files, values = CASES[3][1], CASES[3][2]
    manager = _manager(tmp_path, env['HELM4_BIN'], files, values, [('raw', 'a.x.y=z,n=10'), ('string', 's=10')])
    manager.helm.env['KUBECONFIG'] = str(tmp_path / 'no-cluster')
    dumped = _dumped_values(manager, charts['user'])
    release = manager.helm.run_json(['install', 'prec', charts['user'], '-n', 'default'] + manager.values_args()
                                    + manager.helm.flags.dry_run_client())
    assert release['config'] == dumped
    assert dumped == {'a': {'b': None, 'c': 2, 'x': {'y': 'z'}}, 'd': None, 'top': None, 'n': 10, 's': '10'}
