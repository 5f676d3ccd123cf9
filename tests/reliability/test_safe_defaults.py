"""Safe defaults: IMDSv2 required, encrypted EBS, no public IPs on GPU nodes, TLS verification on
by default with an explicit option to relax it, and no default password anywhere."""
import ast
import glob
import os
import re

import yaml

import _support

MODULES = sorted(glob.glob(os.path.join(_support.ROOT, 'plugins', 'modules', '*.py')))
KUBE_MODULES = ['k8s_secret', 'helm_release']
AWS_MODULES = ['eks_gpu_nodegroup', 'eks_nodegroup_labels', 'scaling_alarm']
SECRETISH = re.compile(r'(password|passwd|secret|token|api_?key|admin_key|private_key|credential|cookie)', re.I)
# Variables whose names look secret but hold a name or a path, not a secret value.
NOT_A_SECRET = re.compile(r'(_name|_names|_key_name|_store|_store_kind|_refresh_interval|_secret_key|_length|_enabled|'
                          r'_external_secrets|_file|_keys_name|_secret_name|_control_plane_key|_harmony_key|'
                          r'rotate_password)$')


# --- AWS side: what the GPU node group's launch template and subnets say -------------------------

def test_imdsv2_required(cluster_gpu_lifecycle):
    data = cluster_gpu_lifecycle['snapshot']['launch_template_data']
    assert data['MetadataOptions']['HttpTokens'] == 'required', data['MetadataOptions']
    assert int(data['MetadataOptions'].get('HttpPutResponseHopLimit', 1)) <= 2


def test_root_volume_encrypted(cluster_gpu_lifecycle):
    data = cluster_gpu_lifecycle['snapshot']['launch_template_data']
    assert data['BlockDeviceMappings'], data
    for mapping in data['BlockDeviceMappings']:
        assert mapping['Ebs']['Encrypted'] is True, mapping


def test_no_public_ips_on_nodes(cluster_gpu_lifecycle):
    data = cluster_gpu_lifecycle['snapshot']['launch_template_data']
    for interface in data.get('NetworkInterfaces', []):
        assert interface.get('AssociatePublicIpAddress') is not True, interface
    subnets = cluster_gpu_lifecycle['snapshot']['subnets']
    assert subnets
    for subnet in subnets:
        assert subnet.get('MapPublicIpOnLaunch') is False, subnet
    # The node group's own remote access (SSH from anywhere) is not opened either.
    assert not cluster_gpu_lifecycle['snapshot']['nodegroup'].get('remoteAccess'), cluster_gpu_lifecycle['snapshot']['nodegroup']


# --- TLS verification ----------------------------------------------------------------------------

class _Captured(Exception):
    def __init__(self, spec):
        super().__init__('argument spec captured')
        self.spec = spec


def _argspec_of(module_name):
    """The module's full argument spec, captured where its main() builds the module object."""
    import importlib
    import sys
    sys.path.insert(0, os.path.join(_support.ROOT, '.collections'))
    module = importlib.import_module('ansible_collections.genai.stack.plugins.modules.%s' % module_name)
    from ansible_collections.amazon.aws.plugins.module_utils.modules import aws_argument_spec

    def kube_module(*args, **kwargs):
        raise _Captured(dict(kwargs['argument_spec']))

    def aws_module(*args, **kwargs):
        spec = aws_argument_spec()
        spec.update(kwargs['argument_spec'])
        raise _Captured(spec)

    names = {'AnsibleModule': kube_module, 'NamingAnsibleModule': kube_module, 'GenaiAWSModule': aws_module}
    # The helm modules build theirs through _helm.helm_module.
    helm = importlib.import_module('ansible_collections.genai.stack.plugins.module_utils._helm')
    saved = {(owner, n): getattr(owner, n) for owner in (module, helm) for n in names if hasattr(owner, n)}
    for owner, name in saved:
        setattr(owner, name, names[name])
    try:
        module.main()
    except _Captured as captured:
        return captured.spec
    finally:
        for (owner, name), value in saved.items():
            setattr(owner, name, value)
    raise AssertionError('%s: main() built no module' % module_name)


def _collection_on_path():
    import sys
    path = os.path.join(_support.ROOT, '.collections')
    if path not in sys.path:
        sys.path.insert(0, path)


def test_validate_certs_defaults_true_and_can_be_relaxed():
    """TLS verification is on unless a user turns it off. The AWS modules' `validate_certs` defaults
    to true. The kube modules' option has no default, as in kubernetes.core, so that
    K8S_AUTH_VERIFY_SSL and a kubeconfig's insecure-skip-tls-verify can apply: left unset, with no
    K8S_AUTH_* variable, the resolved connection hands the client no verify setting at all (the
    client then verifies), and only an explicit false, by option or variable, reaches it."""
    _collection_on_path()
    from ansible_collections.genai.stack.plugins.module_utils import _kube_auth

    checked, unset_verifies = [], []
    for name in KUBE_MODULES + AWS_MODULES:
        spec = _argspec_of(name)
        assert 'validate_certs' in spec, name
        assert spec['validate_certs'].get('type') == 'bool', name
        if name in KUBE_MODULES:
            assert spec['validate_certs'].get('default') is None, (name, spec['validate_certs'])
            unset_verifies.append(name)
        else:
            assert spec['validate_certs'].get('default') is True, (name, spec['validate_certs'])
        checked.append(name)
    saved = dict((k, v) for k, v in os.environ.items() if k.startswith('K8S_AUTH_'))
    try:
        for key in saved:
            del os.environ[key]
        unset = _kube_auth.client_kwargs(_kube_auth.auth_params({}))
        assert 'validate_certs' not in unset, unset
        relaxed = _kube_auth.client_kwargs(_kube_auth.auth_params({'validate_certs': False}))
        assert relaxed.get('validate_certs') is False, relaxed
        os.environ['K8S_AUTH_VERIFY_SSL'] = 'false'
        by_variable = _kube_auth.auth_params({})
        assert by_variable['validate_certs'] is False and by_variable.source('validate_certs') == \
            'validate_certs (from K8S_AUTH_VERIFY_SSL)', by_variable
    finally:
        os.environ.pop('K8S_AUTH_VERIFY_SSL', None)
        os.environ.update(saved)
    _support.record('safe_defaults', validate_certs_modules=checked, validate_certs_unset_verifies=unset_verifies)


def test_helm_skips_tls_verification_only_when_asked():
    _collection_on_path()
    from ansible_collections.genai.stack.plugins.module_utils import _helm

    class FakeModule:
        params = {}

    for value, expected in ((True, None), (None, None), (False, 'true')):
        runner = _helm.HelmRunner(FakeModule(), 'helm', {'validate_certs': value})
        assert runner.env.get('HELM_KUBEINSECURE_SKIP_TLS_VERIFY') == expected, value
        assert '--insecure-skip-tls-verify' not in runner.global_args


def test_no_plain_http_or_insecure_defaults_in_roles():
    """Roles talk TLS to registries unless the inventory says otherwise (the sandbox does)."""
    found = []
    for path in glob.glob(os.path.join(_support.ROOT, 'roles', '*', 'defaults', 'main.yml')):
        with open(path, encoding='utf-8') as handle:
            defaults = yaml.safe_load(handle) or {}
        role_vars = os.path.join(os.path.dirname(os.path.dirname(path)), 'vars', 'main.yml')
        resolved = open(role_vars, encoding='utf-8').read() if os.path.exists(role_vars) else ''
        for key, value in defaults.items():
            if re.search(r'(plain_http|insecure|skip_tls|validate_certs)', key) and value not in (False, 'false'):
                if 'validate_certs' in key and value in (True, 'true'):
                    continue
                # null: the chart mirror's setting, which the role's vars resolve to false when the mirror says nothing
                if 'plain_http' in key and value is None and key in resolved \
                        and re.search(r'genai_stack_chart_mirror_plain_http \| default\(false', resolved):
                    continue
                found.append((path, key, value))
    assert not found, found


# --- no default passwords --------------------------------------------------------------------------

MIRROR_PASSWORD = re.compile(r"^\{\{ *genai_stack_chart_mirror_password *\| *default\(''\) *\}\}$")


def _secretish_defaults():
    found = []
    checked = 0
    for path in sorted(glob.glob(os.path.join(_support.ROOT, 'roles', '*', 'defaults', 'main.yml'))):
        with open(path, encoding='utf-8') as handle:
            defaults = yaml.safe_load(handle) or {}

        def walk(prefix, value):
            nonlocal checked
            if isinstance(value, dict):
                for k, v in value.items():
                    walk('%s.%s' % (prefix, k), v)
            elif isinstance(value, list):
                for i, v in enumerate(value):
                    walk('%s[%d]' % (prefix, i), v)
            else:
                leaf = prefix.rsplit('.', 1)[-1]
                if SECRETISH.search(leaf) and not NOT_A_SECRET.search(leaf):
                    checked += 1
                    if isinstance(value, str) and MIRROR_PASSWORD.match(value):
                        return  # the collection-wide chart mirror's password, itself without a default
                    if value not in ('', None, {}, [], False, True) and not isinstance(value, (bool, int)):
                        found.append((os.path.relpath(path, _support.ROOT), prefix, value))
        for key, value in defaults.items():
            walk(key, value)
    return checked, found


def test_no_default_passwords_in_role_defaults():
    checked, found = _secretish_defaults()
    assert checked >= 10, checked
    assert not found, 'secret-looking defaults with a value: %s' % found
    _support.record('safe_defaults', secret_like_defaults_checked=checked, default_passwords_found=len(found))


def test_no_default_passwords_in_module_argspecs():
    """No option of a module that is no_log has a default value."""
    found = []
    for path in MODULES:
        tree = ast.parse(open(path, encoding='utf-8').read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, 'id', None) == 'dict':
                kwargs = {k.arg: k.value for k in node.keywords}
                if 'no_log' in kwargs and isinstance(kwargs['no_log'], ast.Constant) and kwargs['no_log'].value is True:
                    default = kwargs.get('default')
                    if default is not None and not (isinstance(default, ast.Constant) and default.value in (None, '')):
                        found.append((os.path.basename(path), ast.dump(node)[:120]))
    assert not found, found
