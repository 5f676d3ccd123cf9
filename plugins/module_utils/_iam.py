# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to genai.stack; not a public API. The IAM service layer of the GPU node group
module (its node role and the role's inline policy) and the SSM public parameters of EKS AMIs."""

from __future__ import annotations

import json
from urllib.parse import unquote

from ansible_collections.amazon.aws.plugins.module_utils.arn import parse_aws_arn

from ansible_collections.genai.stack.plugins.module_utils._aws import AWSService

NOT_FOUND = ('NoSuchEntity',)
ACCESS_DENIED = ('AccessDenied', 'AccessDeniedException')
SSM_NOT_FOUND = ('ParameterNotFound',)


def role_name(arn):
    """The name of the IAM role of an ARN (its path left out), or None for an ARN of anything else."""
    parsed = parse_aws_arn(arn or '')
    if not parsed or parsed.get('service') != 'iam' or not (parsed.get('resource') or '').startswith('role/'):
        return None
    return parsed['resource'].rsplit('/', 1)[-1]


def policy_document(document):
    """A policy document as a dict, from a dict or JSON text (IAM returns it URL-encoded)."""
    if isinstance(document, str):
        text = document.strip()
        if text.lower().startswith('%7b'):
            text = unquote(text)
        try:
            document = json.loads(text)
        except ValueError:
            raise ValueError('is not valid JSON')
    if not isinstance(document, dict):
        raise ValueError('must be a JSON object (a dict), got %s' % type(document).__name__)
    if not document.get('Statement'):
        raise ValueError('has no Statement')
    return document


class IAM(AWSService):
    """IAM calls on one role and its inline policies."""

    def get_role(self, name):
        """The role, or None when it does not exist; AWSServiceError otherwise (its code in
        ACCESS_DENIED for a caller without iam:GetRole)."""
        found = self.lookup('read IAM role %r' % name, 'get_role', NOT_FOUND, RoleName=name)
        return found and found['Role']

    def get_role_policy(self, role, name):
        """The inline policy's document as a dict, or None when the role has no such policy."""
        found = self.lookup('read inline policy %s of IAM role %s' % (name, role), 'get_role_policy', NOT_FOUND,
                            RoleName=role, PolicyName=name)
        if found is None:
            return None
        document = found['PolicyDocument']
        return policy_document(document) if isinstance(document, str) else document

    def put_role_policy(self, role, name, document):
        self.call('put inline policy %s on IAM role %s' % (name, role), 'put_role_policy', RoleName=role, PolicyName=name,
                  PolicyDocument=json.dumps(document, sort_keys=True))

    def delete_role_policy(self, role, name):
        """Delete the inline policy; one already gone is not an error."""
        self.lookup('delete inline policy %s of IAM role %s' % (name, role), 'delete_role_policy', NOT_FOUND,
                    RoleName=role, PolicyName=name)


class SSM(AWSService):
    """SSM public parameters (the AMI ids EKS and Bottlerocket publish)."""

    def parameter(self, name):
        """The parameter's value, or None when there is no parameter of that name."""
        found = self.lookup('read SSM parameter %s' % name, 'get_parameter', SSM_NOT_FOUND, Name=name)
        return found and found['Parameter']['Value']
