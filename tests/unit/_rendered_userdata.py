"""The shell part of the GPU node user data as _userdata renders it for a demo cluster: shared by the
tests that run it (test_userdata_bootstrap) and read the agent configuration out of it
(test_node_role_policy)."""
import email

from ansible_collections.genai.stack.plugins.module_utils import _userdata

# The AMI families whose user data has a shell part that sets up the CloudWatch agent: every flavour
# _userdata.render supports but Bottlerocket's, which is TOML settings (test_userdata_bootstrap checks the list).
FLAVOURS = ('nodeadm', 'bootstrap')


def demo_cluster():
    return {'name': 'demo', 'endpoint': 'https://ABC.gr7.us-east-2.eks.amazonaws.com',
            'certificateAuthority': {'data': 'Q0FEQVRB'}, 'serviceIpv4Cidr': '172.20.0.0/16'}


def shell_part(flavour):
    """The one text/x-shellscript part of the rendered MIME document."""
    text = _userdata.render(flavour, demo_cluster(), 'gpu-nodes', 'us-east-2', {'capability': 'gpu'}, [])
    scripts = [p.get_payload() for p in email.message_from_string(text).walk() if p.get_content_type() == 'text/x-shellscript']
    assert len(scripts) == 1, 'one shell part expected in the %s user data' % flavour
    return scripts[0]
