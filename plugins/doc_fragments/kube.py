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
      - Path to a kubeconfig file.
      - When not given, E(K8S_AUTH_KUBECONFIG) is used, then E(KUBECONFIG) (which may list several
        files), then C(~/.kube/config).
    type: path
  context:
    description:
      - The kubeconfig context to use. When not given, E(K8S_AUTH_CONTEXT) or the current context.
    type: str
  host:
    description:
      - URL of the Kubernetes API server, overriding the kubeconfig. E(K8S_AUTH_HOST) when not given.
    type: str
  api_key:
    description:
      - Bearer token for the API server, overriding the kubeconfig. E(K8S_AUTH_API_KEY) when not given.
      - Never placed on a command line; the helm binary receives it through its environment.
    type: str
  validate_certs:
    description:
      - Verify the API server's TLS certificate.
    type: bool
    default: true
    aliases: [verify_ssl]
  ca_cert:
    description:
      - Path to a CA bundle for the API server, overriding the kubeconfig.
    type: path
    aliases: [ssl_ca_cert]
"""
