#!/usr/bin/env bash
# The GPU guide's AWS steps as a user runs them by hand with the AWS CLI (v1), for the
# benchmark's "manual procedure" comparison (bench/run.py). Same work as genai.stack.cluster_gpu:
# inline CloudWatch policy on the node role, EKS NVIDIA AMI from SSM, launch template with
# nodeadm + CloudWatch agent user data (IMDSv2 required, encrypted gp3 root), the managed node
# group, step-scaling policies and Metrics Insights alarms for GPU and CPU, the label
# capability=cpu on the CPU node group.
#
#   gpu_guide.sh create CLUSTER     (not idempotent, like the guide: a second run fails on
#                                    the existing launch template)
#   gpu_guide.sh delete CLUSTER     (teardown; not timed)
#
# Environment: AWS_* as for any AWS CLI use (the benchmark points AWS_ENDPOINT_URL at the
# sandbox); AWS_CLI (default: aws on PATH); NODE_ROLE_ARN; NODEGROUP (default bench-manual);
# CPU_NODEGROUP (default <cluster>-cpu; "" skips the label step).
set -euo pipefail

action="${1:?usage: gpu_guide.sh create|delete CLUSTER}"
CLUSTER="${2:?usage: gpu_guide.sh create|delete CLUSTER}"
AWS="${AWS_CLI:-aws}"
REGION="${AWS_REGION:-us-east-2}"
NODE_ROLE_ARN="${NODE_ROLE_ARN:-arn:aws:iam::123456789012:role/sandbox-eks-node-role}"
NODE_ROLE_NAME="${NODE_ROLE_ARN##*/}"
NODEGROUP="${NODEGROUP:-bench-manual}"
CPU_NODEGROUP="${CPU_NODEGROUP-${CLUSTER}-cpu}"
TEMPLATE="${CLUSTER}-${NODEGROUP}"
POLICY_NAME="${NODEGROUP}-cloudwatch-metrics"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POLICY_FILE="${HERE}/../../roles/cluster_gpu/files/cloudwatch-metrics-policy.json"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
aws() { "$AWS" --region "$REGION" "$@"; }

if [[ "$action" == delete ]]; then
  for m in gpu cpu; do for d in out in; do
    aws cloudwatch delete-alarms --alarm-names "${TEMPLATE}-${m}-scale-${d}" || true
  done; done
  aws eks delete-nodegroup --cluster-name "$CLUSTER" --nodegroup-name "$NODEGROUP" >/dev/null || true
  aws eks wait nodegroup-deleted --cluster-name "$CLUSTER" --nodegroup-name "$NODEGROUP" || true
  aws ec2 delete-launch-template --launch-template-name "$TEMPLATE" >/dev/null || true
  aws iam delete-role-policy --role-name "$NODE_ROLE_NAME" --policy-name "$POLICY_NAME" || true
  if [[ -n "$CPU_NODEGROUP" ]]; then
    aws eks update-nodegroup-config --cluster-name "$CLUSTER" --nodegroup-name "$CPU_NODEGROUP" \
      --labels 'removeLabels=capability' >/dev/null || true
  fi
  exit 0
fi
[[ "$action" == create ]] || { echo "unknown action $action" >&2; exit 2; }

# Step 1: let the nodes publish CloudWatch metrics.
aws iam put-role-policy --role-name "$NODE_ROLE_NAME" --policy-name "$POLICY_NAME" \
  --policy-document "file://${POLICY_FILE}"

# Step 2: what the user data needs from the cluster, and the AMI for its Kubernetes version.
read -r VERSION ENDPOINT CA CIDR < <(aws eks describe-cluster --name "$CLUSTER" --output text \
  --query 'cluster.[version, endpoint, certificateAuthority.data, kubernetesNetworkConfig.serviceIpv4Cidr]')
SUBNETS="$(aws eks describe-cluster --name "$CLUSTER" --output text --query 'cluster.resourcesVpcConfig.subnetIds')"
AMI="$(aws ssm get-parameter --output text --query Parameter.Value \
  --name "/aws/service/eks/optimized-ami/${VERSION}/amazon-linux-2023/x86_64/nvidia/recommended/image_id")"

# Step 3: user data (nodeadm NodeConfig + CloudWatch agent with nvidia_gpu metrics).
cat >"$WORK/userdata" <<EOF
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="==BOUNDARY=="

--==BOUNDARY==
Content-Type: application/node.eks.aws; charset="us-ascii"

---
apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  cluster:
    name: ${CLUSTER}
    apiServerEndpoint: ${ENDPOINT}
    certificateAuthority: ${CA}
    cidr: ${CIDR}
  kubelet:
    flags:
      - "--node-labels=capability=gpu"

--==BOUNDARY==
Content-Type: text/x-shellscript; charset="us-ascii"

#!/bin/bash
set -euo pipefail
dnf install -y amazon-cloudwatch-agent
mkdir -p /opt/aws/amazon-cloudwatch-agent/etc
cat > /opt/aws/amazon-cloudwatch-agent/etc/gpu.json <<'CWAGENT'
{"agent": {"metrics_collection_interval": 60, "region": "${REGION}", "run_as_user": "root"},
 "metrics": {"namespace": "CWAgent",
  "append_dimensions": {"AutoScalingGroupName": "\${aws:AutoScalingGroupName}", "InstanceId": "\${aws:InstanceId}", "InstanceType": "\${aws:InstanceType}"},
  "metrics_collected": {"nvidia_gpu": {"measurement": ["utilization_gpu", "utilization_memory", "memory_total", "memory_used", "memory_free", "power_draw"],
    "metrics_collection_interval": 60,
    "append_dimensions": {"ClusterName": "${CLUSTER}", "NodegroupName": "${NODEGROUP}", "NodegroupType": "gpu"}}},
  "aggregation_dimensions": [["ClusterName", "NodegroupName", "NodegroupType"]]}}
CWAGENT
/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c file:/opt/aws/amazon-cloudwatch-agent/etc/gpu.json

--==BOUNDARY==--
EOF

# Step 4: launch template (IMDSv2 required, encrypted gp3 root volume).
cat >"$WORK/lt.json" <<EOF
{"ImageId": "${AMI}", "InstanceType": "g4dn.2xlarge", "UserData": "$(base64 -w0 "$WORK/userdata")",
 "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 60, "VolumeType": "gp3", "Encrypted": true, "DeleteOnTermination": true}}],
 "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 2},
 "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "${TEMPLATE}"}]}]}
EOF
LT_ID="$(aws ec2 create-launch-template --launch-template-name "$TEMPLATE" \
  --launch-template-data "file://$WORK/lt.json" --output text --query LaunchTemplate.LaunchTemplateId)"

# Step 5: the GPU node group, and wait for it.
# shellcheck disable=SC2086  # SUBNETS is a list of words
aws eks create-nodegroup --cluster-name "$CLUSTER" --nodegroup-name "$NODEGROUP" \
  --node-role "$NODE_ROLE_ARN" --subnets $SUBNETS \
  --scaling-config minSize=2,maxSize=2,desiredSize=2 \
  --launch-template "id=${LT_ID},version=1" --labels capability=gpu \
  --tags "k8s.io/cluster-autoscaler/enabled=true,k8s.io/cluster-autoscaler/${CLUSTER}=owned" >/dev/null
aws eks wait nodegroup-active --cluster-name "$CLUSTER" --nodegroup-name "$NODEGROUP"
ASG="$(aws eks describe-nodegroup --cluster-name "$CLUSTER" --nodegroup-name "$NODEGROUP" \
  --output text --query 'nodegroup.resources.autoScalingGroups[0].name')"

# Steps 6-8: step-scaling policies and Metrics Insights alarms, GPU and CPU.
GPU_QUERY="SELECT AVG(nvidia_smi_utilization_gpu) FROM CWAgent WHERE ClusterName = '${CLUSTER}' AND NodegroupName = '${NODEGROUP}' AND NodegroupType = 'gpu'"
CPU_QUERY="SELECT AVG(CPUUtilization) FROM SCHEMA(\\\"AWS/EC2\\\", AutoScalingGroupName) WHERE AutoScalingGroupName = '${ASG}'"
for spec in gpu:out:40 gpu:in:10 cpu:out:60 cpu:in:5; do
  IFS=: read -r metric direction threshold <<<"$spec"
  name="${TEMPLATE}-${metric}-scale-${direction}"
  if [[ "$direction" == out ]]; then
    steps='MetricIntervalLowerBound=0,ScalingAdjustment=1'; op=GreaterThanThreshold
  else
    steps='MetricIntervalUpperBound=0,ScalingAdjustment=-1'; op=LessThanThreshold
  fi
  arn="$(aws autoscaling put-scaling-policy --auto-scaling-group-name "$ASG" --policy-name "$name" \
    --policy-type StepScaling --adjustment-type ChangeInCapacity --metric-aggregation-type Average \
    --step-adjustments "$steps" --output text --query PolicyARN)"
  if [[ "$metric" == gpu ]]; then query="$GPU_QUERY"; else query="$CPU_QUERY"; fi
  aws cloudwatch put-metric-alarm --alarm-name "$name" --comparison-operator "$op" \
    --threshold "$threshold" --evaluation-periods 1 --treat-missing-data missing \
    --metrics "[{\"Id\": \"utilization\", \"Expression\": \"${query}\", \"Period\": 120, \"ReturnData\": true}]" \
    --alarm-actions "$arn"
done

# Step 9: label the CPU node group for CPU-mode workloads.
if [[ -n "$CPU_NODEGROUP" ]]; then
  aws eks update-nodegroup-config --cluster-name "$CLUSTER" --nodegroup-name "$CPU_NODEGROUP" \
    --labels 'addOrUpdateLabels={capability=cpu}' >/dev/null
fi
echo "node group ${NODEGROUP} of ${CLUSTER}: template ${LT_ID}, Auto Scaling group ${ASG}"
