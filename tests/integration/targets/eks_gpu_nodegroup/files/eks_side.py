"""What other actors do to the node group, and reads the module does not return (boto3).

  eks_side.py set-desired CLUSTER NODEGROUP N   what a scaling alarm or the Cluster Autoscaler does:
                                                the node group's desired size becomes N
  eks_side.py cluster-sg CLUSTER                the cluster security group (DescribeCluster)
Prints JSON.
"""
import json
import sys

import boto3


def main(argv):
    eks = boto3.client('eks')
    if argv[0] == 'set-desired':
        cluster, name, size = argv[1], argv[2], int(argv[3])
        scaling = eks.describe_nodegroup(clusterName=cluster, nodegroupName=name)['nodegroup']['scalingConfig']
        update = eks.update_nodegroup_config(clusterName=cluster, nodegroupName=name, scalingConfig=dict(scaling, desiredSize=size))
        eks.get_waiter('nodegroup_active').wait(clusterName=cluster, nodegroupName=name, WaiterConfig={'Delay': 1, 'MaxAttempts': 60})
        print(json.dumps({'update': update['update']['id'], 'desiredSize': size}))
    elif argv[0] == 'cluster-sg':
        config = eks.describe_cluster(name=argv[1])['cluster']['resourcesVpcConfig']
        print(json.dumps({'id': config.get('clusterSecurityGroupId'), 'subnets': config.get('subnetIds')}))
    else:
        raise SystemExit('unknown command %s' % argv[0])
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
