"""A throw-away EKS cluster in the sandbox's AWS emulator, shaped like the seeded `sandbox` one.

    python tests/docs/install_check_cluster.py create|delete NAME

tests/docs/check-install.sh runs the demo on its own cluster so that it does not change the
`sandbox` cluster other test runs converge at the same time. Created like sandbox/aws/seed.py
does (same VPC, subnets, roles, Kubernetes version, a CPU node group `<NAME>-cpu`), through its
clients, whose requests are not journaled. Both commands are idempotent.
"""
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, ROOT)

from sandbox.aws import seed  # noqa: E402  pylint: disable=wrong-import-position


def create(name):
    clients = seed._clients(os.environ['AWS_ENDPOINT_URL'])  # pylint: disable=protected-access
    ec2, iam, eks = clients['ec2'], clients['iam'], clients['eks']
    _vpc, subnets = seed.seed_network(ec2)
    cluster_role = seed.seed_role(iam, seed.CLUSTER_ROLE, 'eks.amazonaws.com', seed.CLUSTER_POLICIES, False)
    node_role = seed.seed_role(iam, seed.NODE_ROLE, 'ec2.amazonaws.com', seed.NODE_POLICIES, True)
    if name not in eks.list_clusters()['clusters']:
        eks.create_cluster(name=name, version=seed.KUBERNETES_VERSION, roleArn=cluster_role,
                           resourcesVpcConfig={'subnetIds': subnets, 'endpointPrivateAccess': True,
                                               'endpointPublicAccess': True},
                           tags={'sandbox': 'true', 'purpose': 'check-install'})
        ec2.create_tags(Resources=subnets, Tags=[{'Key': 'kubernetes.io/cluster/%s' % name, 'Value': 'shared'}])
    if '%s-cpu' % name not in eks.list_nodegroups(clusterName=name)['nodegroups']:
        eks.create_nodegroup(clusterName=name, nodegroupName='%s-cpu' % name,
                             scalingConfig={'minSize': 2, 'maxSize': 2, 'desiredSize': 2},
                             subnets=subnets, instanceTypes=['m5.xlarge'], nodeRole=node_role,
                             labels={'sandbox/pool': 'cpu'}, tags={'sandbox': 'true'})


def delete(name):
    clients = seed._clients(os.environ['AWS_ENDPOINT_URL'])  # pylint: disable=protected-access
    ec2, eks = clients['ec2'], clients['eks']
    if name not in eks.list_clusters()['clusters']:
        return
    for nodegroup in eks.list_nodegroups(clusterName=name)['nodegroups']:
        eks.delete_nodegroup(clusterName=name, nodegroupName=nodegroup)
    eks.delete_cluster(name=name)
    _vpc, subnets = seed.seed_network(ec2)
    ec2.delete_tags(Resources=subnets, Tags=[{'Key': 'kubernetes.io/cluster/%s' % name}])


if __name__ == '__main__':
    {'create': create, 'delete': delete}[sys.argv[1]](sys.argv[2])
