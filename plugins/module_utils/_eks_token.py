# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to genai.stack; not a public API.

An EKS cluster's Kubernetes connection from AWS alone: the endpoint and CA from DescribeCluster and a
bearer token of the kind EKS's authenticator accepts, made here so that no aws CLI is needed.

The token is ``k8s-aws-v1.`` followed by the unpadded URL-safe base64 of a presigned STS
GetCallerIdentity URL (GET) whose signature covers the header ``x-k8s-aws-id`` = the cluster's id (its
name; a local cluster on Outposts uses its id). EKS replays the request to STS with its own cluster id in
that header, so a token made for one cluster fails the signature on another. EKS accepts a token for
15 minutes after it was signed, whatever its X-Amz-Expires says; like ``aws eks get-token``, the
expiry reported here is one minute earlier.
"""

from __future__ import annotations

import base64
import datetime
import re
from urllib.parse import parse_qs, urlsplit

TOKEN_PREFIX = 'k8s-aws-v1.'
CLUSTER_ID_HEADER = 'x-k8s-aws-id'
# X-Amz-Expires of the presigned URL (what EKS's own tooling asks for; EKS enforces its own 15 min).
PRESIGN_EXPIRES = 60
TOKEN_LIFETIME = datetime.timedelta(minutes=15)
REPORTED_LIFETIME = datetime.timedelta(minutes=14)
# EKS's CreateCluster rule for names.
CLUSTER_NAME = re.compile(r'^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$')
_EVENT = 'before-sign.sts.GetCallerIdentity'


def cluster_name_problem(name):
    """Why `name` cannot be an EKS cluster's name, or None."""
    if not isinstance(name, str) or not name:
        return 'must be a non-empty string, got %r' % (name,)
    if not CLUSTER_NAME.match(name):
        return ('%r is not an EKS cluster name (1 to 100 letters, digits, - and _, starting with a letter or digit)'
                % name)
    return None


def cluster_id(cluster):
    """The id EKS expects in the token's x-k8s-aws-id header for a DescribeCluster `cluster`."""
    if cluster.get('outpostConfig') and cluster.get('id'):
        return cluster['id']
    return cluster['name']


def make_token(sts_client, cluster_identifier):
    """A token for `cluster_identifier`, signed with the client's credentials: (token, signed_at).

    The header is added for this one presign only, by a handler registered and removed around it, so
    the client can be shared."""
    def add_cluster_header(request, **_kwargs):
        request.headers[CLUSTER_ID_HEADER] = cluster_identifier

    handler_id = 'genai-stack-eks-token-%d' % id(add_cluster_header)
    events = sts_client.meta.events
    events.register_first(_EVENT, add_cluster_header, unique_id=handler_id)
    try:
        url = sts_client.generate_presigned_url('get_caller_identity', Params={}, ExpiresIn=PRESIGN_EXPIRES,
                                                HttpMethod='GET')
    finally:
        events.unregister(_EVENT, unique_id=handler_id)
    encoded = base64.urlsafe_b64encode(url.encode('utf-8')).decode('ascii').rstrip('=')
    return TOKEN_PREFIX + encoded, signed_at(url)


def presigned_url(token):
    """The presigned URL inside a token (for tests and diagnostics); ValueError if it is not one."""
    if not token.startswith(TOKEN_PREFIX):
        raise ValueError('not an EKS token: it does not start with %s' % TOKEN_PREFIX)
    body = token[len(TOKEN_PREFIX):]
    return base64.urlsafe_b64decode(body + '=' * (-len(body) % 4)).decode('utf-8')


def signed_at(url):
    """The signing time (UTC) of a presigned URL, from its X-Amz-Date."""
    stamp = parse_qs(urlsplit(url).query).get('X-Amz-Date', [''])[0]
    return datetime.datetime.strptime(stamp, '%Y%m%dT%H%M%SZ').replace(tzinfo=datetime.timezone.utc)


def expiration(signed):
    """When to stop using a token signed at `signed`, as `aws eks get-token` reports it."""
    return signed + REPORTED_LIFETIME


def connection_problem(cluster):
    """Why a DescribeCluster answer gives no usable connection (not ACTIVE, no endpoint or CA), or None."""
    status = cluster.get('status')
    if status not in (None, 'ACTIVE', 'UPDATING'):
        return 'its status is %s; the connection exists once it is ACTIVE' % status
    if not cluster.get('endpoint'):
        return 'DescribeCluster gave no endpoint'
    if not (cluster.get('certificateAuthority') or {}).get('data'):
        return 'DescribeCluster gave no certificate authority'
    return None


def ca_pem(cluster):
    """The cluster CA certificate(s) in PEM, from DescribeCluster's base64 certificateAuthority.data."""
    try:
        pem = base64.b64decode(cluster['certificateAuthority']['data'], validate=True)
    except (ValueError, TypeError) as exc:
        raise ValueError('the certificate authority DescribeCluster gave is not base64: %s' % exc) from None
    if b'-----BEGIN CERTIFICATE-----' not in pem:
        raise ValueError('the certificate authority DescribeCluster gave is not a PEM certificate')
    return pem
