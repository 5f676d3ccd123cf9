"""The roles take the AWS region from the usual sources and never override them behind the user's
back (issue 14, item 3): a play's module_defaults for group/genai.stack.aws, then AWS_REGION, then
AWS_DEFAULT_REGION (then the profile, amazon.aws's own resolution).

The sandbox's cluster exists in us-east-2 only, so a run that looks in eu-west-1 fails on its
first read of the cluster: cluster_gpu in check mode (reads only) shows which region it used.
"""
import pytest

PLAY = '''
- name: cluster_gpu under a play's AWS group defaults
  hosts: eks_clusters
  gather_facts: false
  module_defaults:
    group/genai.stack.aws:
      region: us-east-2
  roles:
    - role: genai.stack.cluster_gpu
'''

CHECK = ('--check', '-e', '{"cluster_gpu_kubernetes_enabled": false}')


@pytest.fixture
def play_with_group_region(tmp_path):
    path = tmp_path / 'group_region.yml'
    path.write_text(PLAY)
    return str(path)


@pytest.mark.alongside
def test_a_plays_group_region_wins_over_the_environment(run_playbook, play_with_group_region):
    run = run_playbook(play_with_group_region, *CHECK, env_extra={'AWS_REGION': 'eu-west-1', 'AWS_DEFAULT_REGION': 'eu-west-1'})
    assert run.returncode == 0, run
    run.assert_no_write()


@pytest.mark.alongside
def test_without_a_group_region_aws_region_is_used_and_shown(run_playbook):
    """The negative control: the same environment without the play's default looks in eu-west-1."""
    run = run_playbook('playbooks/cluster_gpu.yml', *CHECK, env_extra={'AWS_REGION': 'eu-west-1'})
    assert run.returncode != 0, run
    assert "no EKS cluster named 'sandbox' in eu-west-1" in run.output, run
    run.assert_no_write()


@pytest.mark.alongside
def test_aws_default_region_alone_is_enough(run_playbook):
    run = run_playbook('playbooks/cluster_gpu.yml', *CHECK, env_extra={'AWS_REGION': None, 'AWS_DEFAULT_REGION': 'us-east-2'})
    assert run.returncode == 0, run
    run.assert_no_write()
