# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared Kubernetes connection options of genai.stack.k8s_secret and genai.stack.helm_release."""

from __future__ import annotations


class ModuleDocFragment:
    # Same names and meaning as kubernetes.core's k8s_auth_options, so a task can switch modules.
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file, or the kubeconfig itself as a dictionary (its credentials are
        masked in the module's output).
      - When not given, E(K8S_AUTH_KUBECONFIG) is used, then E(KUBECONFIG) (which may list several
        files), then C(~/.kube/config).
    type: raw
  context:
    description:
      - The kubeconfig context to use. When not given, E(K8S_AUTH_CONTEXT) or the current context.
    type: str
  host:
    description:
      - URL of the Kubernetes API server, overriding the kubeconfig. E(K8S_AUTH_HOST) when not given.
      - With O(api_key), or O(client_cert) and O(client_key), or O(username) and O(password), no
        kubeconfig is read at all.
    type: str
  api_key:
    description:
      - Bearer token for the API server, overriding the kubeconfig. E(K8S_AUTH_API_KEY) when not given.
      - Never placed on a command line; the helm binary receives it through its environment or a
        private kubeconfig.
    type: str
  username:
    description:
      - User name for basic authentication, with O(password). E(K8S_AUTH_USERNAME) when not given.
    type: str
  password:
    description:
      - Password for basic authentication, with O(username). E(K8S_AUTH_PASSWORD) when not given.
    type: str
  validate_certs:
    description:
      - Verify the API server's TLS certificate. When not given, E(K8S_AUTH_VALIDATE_CERTS) or
        E(K8S_AUTH_VERIFY_SSL) (false for V(0), V(false) or V(no)), else the kubeconfig's setting
        (verified unless it says C(insecure-skip-tls-verify)).
    type: bool
    aliases: [verify_ssl]
  ca_cert:
    description:
      - Path to a CA bundle for the API server, overriding the kubeconfig.
      - E(K8S_AUTH_CA_CERT) or E(K8S_AUTH_SSL_CA_CERT) when not given.
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description:
      - Path to a client certificate for the API server, with O(client_key).
      - E(K8S_AUTH_CLIENT_CERT) or E(K8S_AUTH_CERT_FILE) when not given.
    type: path
    aliases: [cert_file]
  client_key:
    description:
      - Path to the key of O(client_cert). E(K8S_AUTH_CLIENT_KEY) or E(K8S_AUTH_KEY_FILE) when not given.
    type: path
    aliases: [key_file]
  proxy:
    description:
      - URL of an HTTP proxy to reach the API server through. E(K8S_AUTH_PROXY) when not given.
      - Only the API server's connection uses it (helm gets it as the kubeconfig's C(proxy-url)),
        not chart downloads.
    type: str
  no_proxy:
    description:
      - Comma-separated host names (or C(.domain) suffixes, or C(*)) reached without O(proxy).
        E(K8S_AUTH_NO_PROXY) when not given.
    type: str
  proxy_headers:
    description:
      - Headers for O(proxy). Each suboption also reads E(K8S_AUTH_PROXY_HEADERS_PROXY_BASIC_AUTH),
        E(K8S_AUTH_PROXY_HEADERS_BASIC_AUTH) or E(K8S_AUTH_PROXY_HEADERS_USER_AGENT).
    type: dict
    suboptions:
      proxy_basic_auth:
        description:
          - C(user:password) for the proxy.
        type: str
      basic_auth:
        description:
          - C(user:password) for basic authentication, sent to the proxy (as kubernetes.core sends it).
        type: str
      user_agent:
        description:
          - User-Agent sent to the proxy. helm has no setting for it, so genai.stack.helm_release refuses it.
        type: str
  persist_config:
    description:
      - Write a refreshed token back to the kubeconfig file (the Python client's setting; helm never writes it).
        E(K8S_AUTH_PERSIST_CONFIG) when not given.
    type: bool
  impersonate_user:
    description:
      - User to act as (Kubernetes impersonation). E(K8S_AUTH_IMPERSONATE_USER) when not given.
    type: str
  impersonate_groups:
    description:
      - Groups to act as, with O(impersonate_user). E(K8S_AUTH_IMPERSONATE_GROUPS) (comma-separated)
        when not given.
    type: list
    elements: str
notes:
  - The connection options have kubernetes.core's names, aliases and E(K8S_AUTH_*) environment
    variables, so one C(module_defaults) group, C(group/genai.stack.k8s), serves this collection's
    Kubernetes modules and kubernetes.core's C(k8s) group together.
"""
