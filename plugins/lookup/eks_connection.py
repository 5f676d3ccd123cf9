# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: eks_connection
short_description: The Kubernetes connection of an EKS cluster, from AWS alone, with a fresh token
version_added: 0.3.0
author:
  - genai.stack maintainers (@genai-stack)
description:
  - Reads the cluster with EKS DescribeCluster and returns kubernetes.core's connection options for it, V(host),
    V(ca_cert) and V(api_key), ready to be a host's C(genai_stack_kube) or any C(module_defaults) of
    C(group/genai.stack.k8s) or C(group/kubernetes.core.k8s).
  - V(api_key) is a token EKS's authenticator accepts, made by this plugin the way C(aws eks get-token) makes it
    (a presigned STS C(GetCallerIdentity) request that covers the cluster's C(x-k8s-aws-id) header), from the same
    AWS credentials as the DescribeCluster call. No aws CLI and no long-lived ServiceAccount token are needed.
  - EKS accepts a token for 15 minutes after it is made. A lookup is evaluated each time a task uses the variable
    that holds it, so a variable set to this lookup gives every task a fresh token (and one DescribeCluster call).
    A single task that runs longer than 15 minutes against the API server (a helm wait, for example) needs a
    kubeconfig whose user runs a credential plugin instead.
  - The identity of those credentials must be allowed by the cluster, through an EKS access entry (or the
    C(aws-auth) ConfigMap of a cluster in C(CONFIG_MAP) mode). The C(eks:DescribeCluster) permission on the
    cluster is needed; making the token needs none.
  - The cluster's CA certificate is written to a file under O(ca_cert_dir) named after its SHA-256 digest, because
    kubernetes.core's C(ca_cert) is a path. It is public data; nothing else is written, in check mode or not.
options:
  _terms:
    description:
      - EKS cluster names. One name returns one dictionary; several return a list of them, in order.
      - A name EKS would refuse fails before any request.
    required: true
    type: list
    elements: str
  ca_cert_dir:
    description:
      - Directory for the clusters' CA files; created with mode 0700 when missing.
      - Defaults to C(genai-stack-<uid>/eks-ca) in the system's temporary directory.
    type: path
    env:
      - name: GENAI_STACK_EKS_CA_DIR
extends_documentation_fragment:
  - amazon.aws.boto3
  - amazon.aws.common.plugins
  - amazon.aws.region.plugins
notes:
  - The region comes, in order, from O(region), E(AWS_REGION), E(AWS_DEFAULT_REGION) and the profile's region.
  - Lookups run on the controller and do not see a play's C(module_defaults); credentials come from the options
    above or the usual AWS sources of the controller (environment, profile, SSO, instance role).
seealso:
  - name: Amazon EKS access entries
    description: How an IAM identity is allowed into an EKS cluster.
    link: https://docs.aws.amazon.com/eks/latest/userguide/access-entries.html
"""

EXAMPLES = r"""
# In inventories/prod/host_vars/arthur-prod.yml, every role's Kubernetes and helm calls for this host go to
# the EKS cluster arthur-prod, each with a fresh token:
#   genai_stack_kube: "{{ lookup('genai.stack.eks_connection', 'arthur-prod', region='us-east-2') }}"

- name: A play of kubernetes.core tasks against one EKS cluster
  hosts: localhost
  module_defaults:
    group/kubernetes.core.k8s: "{{ lookup('genai.stack.eks_connection', 'arthur-prod') }}"
  tasks:
    - name: Namespaces of arthur-prod
      kubernetes.core.k8s_info:
        kind: Namespace
"""

RETURN = r"""
_raw:
  description: One dictionary of kubernetes.core connection options per cluster name.
  type: list
  elements: dict
  contains:
    host:
      description: The cluster's API server endpoint.
      type: str
      sample: https://0123456789ABCDEF0123456789ABCDEF.gr7.us-east-2.eks.amazonaws.com
    ca_cert:
      description: Path of a file holding the cluster's CA certificate (PEM).
      type: path
    api_key:
      description:
        - The bearer token, valid for 15 minutes. Modules of this collection and kubernetes.core never print it
          (their C(api_key) option is C(no_log)); do not print the variable yourself.
      type: str
"""

import hashlib
import os
import tempfile

try:
    import botocore
except ImportError:
    pass  # the base class reports a missing boto3

from ansible.errors import AnsibleLookupError

from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.plugin_utils.lookup import AWSLookupBase
from ansible_collections.genai.stack.plugins.module_utils import _eks_token
from ansible_collections.genai.stack.plugins.module_utils._aws import AWSServiceError
from ansible_collections.genai.stack.plugins.module_utils._eks import EKS


def default_ca_dir():
    return os.path.join(tempfile.gettempdir(), 'genai-stack-%d' % os.getuid(), 'eks-ca')


def write_ca(directory, pem):
    """The path of a file holding `pem` under `directory`, written atomically when it is not there yet."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, hashlib.sha256(pem).hexdigest() + '.pem')
    if os.path.isfile(path):
        with open(path, 'rb') as existing:
            if existing.read() == pem:
                return path
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.ca-', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(pem)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


class LookupModule(AWSLookupBase):
    def run(self, terms, variables=None, **kwargs):
        super().run(terms, variables, **kwargs)
        names = [str(term) for term in terms]
        for name in names:
            problem = _eks_token.cluster_name_problem(name)
            if problem:
                raise AnsibleLookupError('eks_connection: _terms: %s' % problem)
        ca_dir = self.get_option('ca_cert_dir') or default_ca_dir()
        eks = EKS(self.client('eks', AWSRetry.jittered_backoff()))
        sts = self.client('sts')
        return [self._connection(eks, sts, name, ca_dir) for name in names]

    def _connection(self, eks, sts, name, ca_dir):
        try:
            cluster = eks.describe_cluster(name)
        except AWSServiceError as exc:
            raise AnsibleLookupError('eks_connection: could not describe EKS cluster %s: %s' % (name, exc.exception))
        if cluster is None:
            raise AnsibleLookupError('eks_connection: _terms: no EKS cluster %s in region %s' % (name, self.region))
        problem = _eks_token.connection_problem(cluster)
        if problem:
            raise AnsibleLookupError('eks_connection: _terms: EKS cluster %s has no connection yet: %s' % (name, problem))
        try:
            ca_path = write_ca(ca_dir, _eks_token.ca_pem(cluster))
        except ValueError as exc:
            raise AnsibleLookupError('eks_connection: EKS cluster %s: %s' % (name, exc))
        except OSError as exc:
            raise AnsibleLookupError('eks_connection: ca_cert_dir: cannot write the CA of %s: %s' % (name, exc))
        try:
            token, _signed = _eks_token.make_token(sts, _eks_token.cluster_id(cluster))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise AnsibleLookupError('eks_connection: could not sign a token for %s (AWS credentials): %s' % (name, exc))
        return {'host': cluster['endpoint'], 'ca_cert': ca_path, 'api_key': token}
