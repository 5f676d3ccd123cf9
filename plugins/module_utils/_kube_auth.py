# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to genai.stack; not a public API.

The Kubernetes connection of genai.stack's modules, with kubernetes.core's option names, aliases and
K8S_AUTH_* environment variables, resolved once and given the same way to the Python client and to
the helm binary. helm reads only a few connection settings from its flags and environment; anything
else (client certificates, basic auth, a proxy, a kubeconfig given as a dictionary) reaches it
through a private kubeconfig written for the one run, holding exactly that connection.
"""

from __future__ import annotations

import copy
import os
import re
from urllib.parse import quote, urlsplit, urlunsplit

# option name -> (kubernetes client name, argument spec). The environment variable of an option is
# K8S_AUTH_<OPTION>, else K8S_AUTH_<CLIENT NAME> (K8S_AUTH_VERIFY_SSL, K8S_AUTH_SSL_CA_CERT,
# K8S_AUTH_CERT_FILE, K8S_AUTH_KEY_FILE), as in kubernetes.core.
_OPTIONS = (
    ('kubeconfig', 'kubeconfig', dict(type='raw')),
    ('context', 'context', dict(type='str')),
    ('host', 'host', dict(type='str')),
    ('api_key', 'api_key', dict(type='str', no_log=True)),
    ('username', 'username', dict(type='str')),
    ('password', 'password', dict(type='str', no_log=True)),
    ('validate_certs', 'verify_ssl', dict(type='bool', aliases=['verify_ssl'])),
    ('ca_cert', 'ssl_ca_cert', dict(type='path', aliases=['ssl_ca_cert'])),
    ('client_cert', 'cert_file', dict(type='path', aliases=['cert_file'])),
    ('client_key', 'key_file', dict(type='path', aliases=['key_file'])),
    ('proxy', 'proxy', dict(type='str')),
    ('no_proxy', 'no_proxy', dict(type='str')),
    ('proxy_headers', 'proxy_headers', dict(type='dict', options=dict(
        proxy_basic_auth=dict(type='str', no_log=True),
        basic_auth=dict(type='str', no_log=True),
        user_agent=dict(type='str'),
    ))),
    ('persist_config', 'persist_config', dict(type='bool')),
    ('impersonate_user', 'impersonate_user', dict(type='str')),
    ('impersonate_groups', 'impersonate_groups', dict(type='list', elements='str')),
)

KUBE_AUTH_ARGSPEC = dict((name, spec) for name, _client, spec in _OPTIONS)
CLIENT_NAMES = dict((name, client) for name, client, _spec in _OPTIONS)
PROXY_HEADERS = ('proxy_basic_auth', 'basic_auth', 'user_agent')
FILE_OPTIONS = ('ca_cert', 'client_cert', 'client_key')

HOST_URL = re.compile(r'^https?://(\[[0-9A-Fa-f:.]+\]|[^\s/:\[\]]+)(:[0-9]{1,5})?(/\S*)?$')
PROXY_URL = re.compile(r'^(https?|socks5)://\S+$')
FALSE_WORDS = ('0', 'false', 'no')

# The context of the kubeconfig written for helm.
HELM_CONTEXT = 'genai-stack'


def env_names(name):
    """The environment variables of an option, in the order they are read."""
    names = ['K8S_AUTH_%s' % name.upper()]
    if CLIENT_NAMES[name] != name:
        names.append('K8S_AUTH_%s' % CLIENT_NAMES[name].upper())
    return names


def _from_env(name):
    """(value, variable) from the first K8S_AUTH_* variable of the option that is set, else (None, None)."""
    for variable in env_names(name):
        raw = os.environ.get(variable)
        if raw is None or raw == '':
            continue
        kind = KUBE_AUTH_ARGSPEC[name].get('type')
        if kind == 'bool':
            return raw.lower() not in FALSE_WORDS, variable
        if kind == 'list':
            return [item for item in raw.split(',') if item], variable
        if kind == 'path':
            return os.path.expanduser(raw), variable
        return raw, variable
    return None, None


def _proxy_headers_from_env():
    headers = {}
    for key in PROXY_HEADERS:
        raw = os.environ.get('K8S_AUTH_PROXY_HEADERS_%s' % key.upper())
        if raw:
            headers[key] = raw
    return headers or None


class Connection(dict):
    """The resolved connection options (option name -> value or None), and where each came from:
    `source(name)` names the option, and the environment variable it was read from if it was."""

    def __init__(self, values, sources):
        super().__init__(values)
        self.sources = sources

    def source(self, name):
        return '%s (from %s)' % (name, self.sources[name]) if name in self.sources else name


def auth_params(params):
    """The connection, from the module's options, else kubernetes.core's environment variables."""
    values, sources = {}, {}
    for name in KUBE_AUTH_ARGSPEC:
        value = params.get(name)
        if value is None and name == 'proxy_headers':
            value = _proxy_headers_from_env()
            if value:
                sources[name] = 'K8S_AUTH_PROXY_HEADERS_*'
        elif value is None:
            value, variable = _from_env(name)
            if variable:
                sources[name] = variable
        if name == 'kubeconfig' and isinstance(value, str):
            value = os.path.expanduser(value)
        if name == 'proxy_headers' and value:
            value = dict((k, v) for k, v in value.items() if v is not None) or None
        values[name] = value
    return Connection(values, sources)


def client_kwargs(auth):
    """Keyword arguments for kubernetes.core's get_api_client: the options that are set."""
    return dict((name, value) for name, value in auth.items() if value is not None)


def check_connection(check, params):
    """Connection options a client cannot be built from, each named (before any request)."""
    auth = auth_params(params)
    if auth['host'] is not None:
        check.match(HOST_URL, auth['host'], auth.source('host'), 'an API server URL such as https://api.example:6443')
    kubeconfig = auth['kubeconfig']
    if isinstance(kubeconfig, str):
        if not os.path.isfile(kubeconfig):
            check.error(auth.source('kubeconfig'), '%r is not a readable file' % kubeconfig)
    elif kubeconfig is not None and not isinstance(kubeconfig, dict):
        check.error(auth.source('kubeconfig'), 'must be the path of a kubeconfig file or a kubeconfig as a dictionary')
    for name in FILE_OPTIONS:
        path = auth[name]
        if path and not os.path.isfile(path):
            check.error(auth.source(name), '%r is not a readable file' % path)
    if bool(auth['client_cert']) != bool(auth['client_key']):
        missing = 'client_key' if auth['client_cert'] else 'client_cert'
        check.error(missing, 'client_cert and client_key go together: give %s (or %s) as well' % (missing, ' or '.join(env_names(missing))))
    if bool(auth['username']) != bool(auth['password']):
        check.error('password' if auth['username'] else 'username', 'username and password go together')
    if auth['proxy'] is not None:
        check.match(PROXY_URL, auth['proxy'], auth.source('proxy'), 'a proxy URL such as http://proxy.example:3128')
    if auth['impersonate_groups'] and not auth['impersonate_user']:
        check.error(auth.source('impersonate_groups'),
                    'Kubernetes impersonates groups only together with a user: set impersonate_user as well')


# ---------------------------------------------------------------------------------------------
# helm

def needs_kubeconfig(auth):
    """True when helm cannot be given this connection by its flags and environment alone."""
    return bool(isinstance(auth['kubeconfig'], dict) or auth['client_cert'] or auth['client_key']
                or auth['username'] or auth['proxy'] or auth['proxy_headers'])


def helm_problems(auth):
    """(option, text) for each connection setting helm has no way to take."""
    headers = auth['proxy_headers'] or {}
    problems = []
    if headers.get('user_agent'):
        problems.append((auth.source('proxy_headers'), 'helm has no setting for the User-Agent sent to a proxy (user_agent)'))
    if headers.get('proxy_basic_auth') and headers.get('basic_auth') and headers['proxy_basic_auth'] != headers['basic_auth']:
        problems.append((auth.source('proxy_headers'), 'helm takes one proxy credential: give proxy_basic_auth or basic_auth, not two different ones'))
    if headers.get('proxy_basic_auth') or headers.get('basic_auth'):
        if not auth['proxy']:
            problems.append((auth.source('proxy_headers'), 'a proxy credential needs the proxy it is for (proxy)'))
    return problems


def helm_settings(auth, write_kubeconfig):
    """(global arguments, environment) that give helm the connection `auth`.

    `write_kubeconfig(text)` stores a private kubeconfig and returns its path; it is called only when
    helm needs one (needs_kubeconfig). Tokens and passwords never go on the command line."""
    auth = dict((name, auth.get(name)) for name in KUBE_AUTH_ARGSPEC)
    args, env = [], {}
    if needs_kubeconfig(auth):
        config = helm_kubeconfig(auth)
        args += ['--kubeconfig', write_kubeconfig(dump_yaml(config)), '--kube-context', HELM_CONTEXT]
    else:
        if auth['kubeconfig']:
            args += ['--kubeconfig', auth['kubeconfig']]
        if auth['context']:
            args += ['--kube-context', auth['context']]
        if auth['host']:
            env['HELM_KUBEAPISERVER'] = auth['host'].rstrip('/')
        if auth['api_key']:
            env['HELM_KUBETOKEN'] = auth['api_key']
        if auth['ca_cert']:
            env['HELM_KUBECAFILE'] = auth['ca_cert']
        if auth['validate_certs'] is False:
            env['HELM_KUBEINSECURE_SKIP_TLS_VERIFY'] = 'true'
    if auth['impersonate_user']:
        env['HELM_KUBEASUSER'] = auth['impersonate_user']
    if auth['impersonate_groups']:
        env['HELM_KUBEASGROUPS'] = ','.join(auth['impersonate_groups'])
    return args, env


def dump_yaml(data):
    import yaml  # ansible-core's own dependency
    return yaml.safe_dump(data, default_flow_style=False, sort_keys=True)


def _kubeconfig_files(auth):
    """The kubeconfig files the connection reads, in client-go's order of precedence."""
    if isinstance(auth['kubeconfig'], str):
        return [auth['kubeconfig']]
    listed = os.environ.get('KUBECONFIG')
    if listed:
        return [path for path in listed.split(os.pathsep) if path]
    return [os.path.expanduser('~/.kube/config')]


_FILE_KEYS = {'cluster': ('certificate-authority',), 'user': ('client-certificate', 'client-key', 'tokenFile')}


def _absolute(entry, kind, directory):
    """A cluster's or user's entry with its file references made absolute (they are relative to the
    kubeconfig file that holds them, which the written kubeconfig is not beside)."""
    entry = copy.deepcopy(entry or {})
    for key in _FILE_KEYS[kind]:
        if entry.get(key) and not os.path.isabs(entry[key]) and directory:
            entry[key] = os.path.join(directory, entry[key])
    return entry


def load_kubeconfig(auth):
    """The kubeconfig the connection starts from, merged like client-go merges KUBECONFIG's list
    (the first file to name a cluster, user, context or current-context wins), file references absolute."""
    if isinstance(auth['kubeconfig'], dict):
        return _normalised(auth['kubeconfig'], None)
    import yaml
    merged = {'clusters': [], 'users': [], 'contexts': []}
    for path in _kubeconfig_files(auth):
        if not os.path.isfile(path):
            continue
        with open(path) as stream:
            data = yaml.safe_load(stream) or {}
        part = _normalised(data, os.path.dirname(os.path.abspath(path)))
        for section in ('clusters', 'users', 'contexts'):
            known = set(item.get('name') for item in merged[section])
            merged[section] += [item for item in part[section] if item.get('name') not in known]
        if part.get('current-context') and not merged.get('current-context'):
            merged['current-context'] = part['current-context']
    return merged


def _normalised(data, directory):
    out = {'clusters': [], 'users': [], 'contexts': [], 'current-context': data.get('current-context')}
    for item in data.get('clusters') or []:
        out['clusters'].append({'name': item.get('name'), 'cluster': _absolute(item.get('cluster'), 'cluster', directory)})
    for item in data.get('users') or []:
        out['users'].append({'name': item.get('name'), 'user': _absolute(item.get('user'), 'user', directory)})
    for item in data.get('contexts') or []:
        out['contexts'].append({'name': item.get('name'), 'context': dict(item.get('context') or {})})
    return out


def _named(items, name, key):
    for item in items:
        if item.get('name') == name:
            return copy.deepcopy(item.get(key) or {})
    return None


def _starting_point(auth):
    """(cluster, user, namespace) of the kubeconfig context the connection uses, or empty entries
    when the options alone can authenticate (kubernetes.core reads no kubeconfig then)."""
    alone = auth['host'] and (auth['api_key'] or (auth['client_cert'] and auth['client_key'])
                              or (auth['username'] and auth['password']))
    if alone:
        return {}, {}, None
    config = load_kubeconfig(auth)
    name = auth['context'] or config.get('current-context')
    context = _named(config['contexts'], name, 'context') if name else None
    if context is None:
        if auth['host']:
            return {}, {}, None
        raise ValueError('the kubeconfig has no context %r' % name if name else 'no kubeconfig with a current context was found')
    cluster = _named(config['clusters'], context.get('cluster'), 'cluster') or {}
    user = _named(config['users'], context.get('user'), 'user') or {}
    return cluster, user, context.get('namespace')


def _bypass_proxy(server, no_proxy):
    """True when the API server's host is listed in no_proxy (names, .suffixes, *, host:port)."""
    if not no_proxy or not server:
        return False
    parts = urlsplit(server)
    host = (parts.hostname or '').lower()
    for entry in (item.strip().lower() for item in no_proxy.split(',')):
        if not entry:
            continue
        if entry == '*':
            return True
        name, _sep, port = entry.partition(':') if not entry.startswith('[') else (entry, '', '')
        if port and parts.port and str(parts.port) != port:
            continue
        name = name.lstrip('.')
        if host == name or host.endswith('.' + name):
            return True
    return False


def _proxy_url(proxy, headers):
    credential = (headers or {}).get('proxy_basic_auth') or (headers or {}).get('basic_auth')
    if not credential:
        return proxy
    user, _sep, password = credential.partition(':')
    parts = urlsplit(proxy)
    netloc = '%s:%s@%s' % (quote(user, safe=''), quote(password, safe=''), parts.netloc.rpartition('@')[2])
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def helm_kubeconfig(auth):
    """The one-context kubeconfig that gives helm the connection `auth`, as kubernetes.core's client
    would use it: the kubeconfig's context, then each option set replacing its part."""
    cluster, user, namespace = _starting_point(auth)
    if auth['host']:
        cluster['server'] = auth['host'].rstrip('/')
    if auth['ca_cert']:
        cluster.pop('certificate-authority-data', None)
        cluster['certificate-authority'] = auth['ca_cert']
    if auth['validate_certs'] is False:
        # client-go refuses a CA together with insecure-skip-tls-verify.
        cluster.pop('certificate-authority-data', None)
        cluster.pop('certificate-authority', None)
        cluster['insecure-skip-tls-verify'] = True
    elif auth['validate_certs'] is True:
        cluster.pop('insecure-skip-tls-verify', None)
    if auth['proxy'] and not _bypass_proxy(cluster.get('server'), auth['no_proxy']):
        cluster['proxy-url'] = _proxy_url(auth['proxy'], auth['proxy_headers'])
    if auth['api_key']:
        user = {'token': auth['api_key']}
    if auth['client_cert'] and auth['client_key']:
        for key in ('client-certificate-data', 'client-key-data', 'token', 'tokenFile', 'exec', 'auth-provider'):
            user.pop(key, None)
        user['client-certificate'] = auth['client_cert']
        user['client-key'] = auth['client_key']
    if auth['username'] and auth['password']:
        user = dict(user, username=auth['username'], password=auth['password'])
    if not cluster.get('server'):
        raise ValueError('no API server: the kubeconfig context names no cluster server and host is not set')
    context = {'cluster': HELM_CONTEXT, 'user': HELM_CONTEXT}
    if namespace:
        context['namespace'] = namespace
    return {
        'apiVersion': 'v1', 'kind': 'Config', 'preferences': {},
        'clusters': [{'name': HELM_CONTEXT, 'cluster': cluster}],
        'users': [{'name': HELM_CONTEXT, 'user': user}],
        'contexts': [{'name': HELM_CONTEXT, 'context': context}],
        'current-context': HELM_CONTEXT,
    }


def secret_values(kubeconfig):
    """The credentials inside a kubeconfig given as a dictionary, for the module's no_log values."""
    found = []
    if not isinstance(kubeconfig, dict):
        return found
    for item in kubeconfig.get('users') or []:
        user = (item or {}).get('user') or {}
        for key in ('token', 'password', 'client-key-data'):
            if isinstance(user.get(key), str) and user[key]:
                found.append(user[key])
    return found
