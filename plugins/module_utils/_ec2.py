# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to genai.stack; not a public API. The EC2 service layer of the GPU node group
module: launch templates, and the AMI, subnets and instance type it checks before writing."""

from __future__ import annotations

from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list

from ansible_collections.genai.stack.plugins.module_utils._aws import AWSService

# EC2's answers for a launch template that does not exist (by name; by id, or an id of no template).
TEMPLATE_NAME_NOT_FOUND = ('InvalidLaunchTemplateName.NotFoundException',)
TEMPLATE_ID_NOT_FOUND = ('InvalidLaunchTemplateId.NotFound', 'InvalidLaunchTemplateId.Malformed')
AMI_NOT_FOUND = ('InvalidAMIID.NotFound', 'InvalidAMIID.Malformed', 'InvalidAMIID.Unavailable')
SUBNET_NOT_FOUND = ('InvalidSubnetID.NotFound', 'InvalidSubnetID.Malformed')
# DescribeInstanceTypes refuses a type it does not offer (or a malformed one) instead of answering nothing.
INSTANCE_TYPE_NOT_FOUND = ('InvalidInstanceType', 'InvalidParameterValue')


def tag_specifications(resource_types, tags):
    """TagSpecifications giving `tags` (sorted by key) to each of `resource_types`."""
    tag_list = ansible_dict_to_boto3_tag_list(dict(sorted(tags.items())))
    return [{'ResourceType': resource_type, 'Tags': list(tag_list)} for resource_type in resource_types]


class EC2(AWSService):
    """EC2 calls of the GPU node group module."""

    def describe_launch_template(self, name):
        """The launch template of that name, or None."""
        found = self.lookup('describe launch template %r' % name, 'describe_launch_templates', TEMPLATE_NAME_NOT_FOUND,
                            LaunchTemplateNames=[name])
        templates = (found or {}).get('LaunchTemplates') or []
        return templates[0] if templates else None

    def launch_template_versions(self, template_id, versions):
        """LaunchTemplateData of the given versions, keyed by version number (as text)."""
        wanted = sorted({str(v) for v in versions if v is not None})
        if not wanted:
            return {}
        found = self.lookup('read versions %s of launch template %s' % (wanted, template_id), 'describe_launch_template_versions',
                            TEMPLATE_ID_NOT_FOUND, LaunchTemplateId=template_id, Versions=wanted)
        return {str(v['VersionNumber']): v.get('LaunchTemplateData') or {} for v in (found or {}).get('LaunchTemplateVersions') or []}

    def create_launch_template(self, name, data, tags):
        """Create the template; returns (id, its first version number as text)."""
        created = self.call('create launch template %s' % name, 'create_launch_template', LaunchTemplateName=name,
                            LaunchTemplateData=data, TagSpecifications=tag_specifications(['launch-template'], tags))['LaunchTemplate']
        return created['LaunchTemplateId'], str(created['LatestVersionNumber'])

    def create_launch_template_version(self, name, template_id, data, description):
        """A new version holding the whole `data`; returns its number as text."""
        # No SourceVersion: EC2 would copy every setting `data` leaves out from the source version,
        # so a removed setting (security groups, KMS key) would stay.
        created = self.call('create a version of launch template %s' % name, 'create_launch_template_version',
                            LaunchTemplateId=template_id, LaunchTemplateData=data, VersionDescription=description)
        return str(created['LaunchTemplateVersion']['VersionNumber'])

    def set_default_launch_template_version(self, name, template_id, version):
        self.call('set the default version of launch template %s' % name, 'modify_launch_template',
                  LaunchTemplateId=template_id, DefaultVersion=version)

    def delete_launch_template(self, name, template_id):
        self.call('delete launch template %s' % name, 'delete_launch_template', LaunchTemplateId=template_id)

    def describe_image(self, ami_id):
        """The AMI, or None when it does not exist or is not visible to the account."""
        found = self.lookup('describe AMI %s' % ami_id, 'describe_images', AMI_NOT_FOUND, ImageIds=[ami_id])
        images = (found or {}).get('Images') or []
        return images[0] if images else None

    def describe_subnets(self, subnet_ids):
        """The subnets; AWSServiceError (code in SUBNET_NOT_FOUND) when one does not exist."""
        return self.call('describe subnets', 'describe_subnets', SubnetIds=subnet_ids)['Subnets']

    def describe_instance_type(self, instance_type):
        """The DescribeInstanceTypes entry of the type, or None when EC2 does not offer it."""
        found = self.lookup('describe instance type %s' % instance_type, 'describe_instance_types', INSTANCE_TYPE_NOT_FOUND,
                            InstanceTypes=[instance_type])
        types = (found or {}).get('InstanceTypes') or []
        return types[0] if types else None
