#!/usr/bin/env python3
"""IAM and scanner-skip checks of the templates (cfn/initial.yaml, cfn/redshift.yaml). Needs PyYAML
(check.sh runs it with the checkov virtualenv's Python).

Checks, each printed as one PASS/FAIL line:
  stack-role    RedshiftStackPolicy (the CloudFormation service role of the on-demand stack) allows
                exactly the actions the resource providers of that stack's resources list in their
                schemas' handlers (create, read, update, delete: tests/infra/provider-permissions.json,
                copied from aws-cloudformation/aws-cloudformation-resource-providers-redshift at the
                commit it names), spelled as IAM spells them, plus the listed extras with their reasons
  subnet-group  the ClusterSubnetGroup (a permanent-stack resource, created with the deployer's
                credentials) needs none of its write actions in either role
  lambda-role   the functions' role holds no Redshift, EC2 (beyond the ENIs a function in a VPC needs)
                or CreateServiceLinkedRole permission, and may pass only the stack role, only to
                CloudFormation; stack-create passes it (CreateStack's cloudformation:RoleArn condition)
  checkov-skips every inline checkov skip (Metadata: checkov: skip:) names a check and gives its reason
  secret-attach the on-demand template attaches the cluster to the master secret

Usage: check_iam.py  (exit status 0 when every check passes)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

# The schemas list a few names that are not IAM actions (IAM ignores an unknown action, so granting
# them grants nothing): the Service Authorization Reference's names, which the policy uses instead.
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonredshift.html
SCHEMA_SPELLING = {
    "redshift:ModifyClusterDbRevisions": "redshift:ModifyClusterDbRevision",
    "redshift:DescribeSnapshotCopyGrant": "redshift:DescribeSnapshotCopyGrants",
}
# Placeholder actions of the resource-provider template left in the ClusterParameterGroup schema
# ("initech" is the example service of the CloudFormation CLI's generated schema): no such service.
PLACEHOLDER_SERVICES = ("initech:",)

# Permissions the stack role needs beyond the providers' handlers, each with its reason.
EXTRAS = {
    "secretsmanager:GetSecretValue": "CloudFormation resolves the {{resolve:secretsmanager:...}} dynamic references",
    "secretsmanager:DescribeSecret": "SecretTargetAttachment reads the secret before it writes it",
    "secretsmanager:PutSecretValue": "SecretTargetAttachment writes host, port, engine and dbname into the secret",
    "kms:Decrypt": "the secret is encrypted with the project key",
    "kms:GenerateDataKey": "PutSecretValue encrypts the new secret version with the project key",
    "kms:DescribeKey": "Redshift checks the cluster's KmsKeyId",
    "kms:CreateGrant": "Redshift takes a grant on the project key for an encrypted cluster",
}
# The types whose handlers CloudFormation calls with the stack role: the resources of cfn/redshift.yaml
# (SecretTargetAttachment's schema is not published with the Redshift providers; its needs are EXTRAS).
STACK_TYPES = ("AWS::Redshift::Cluster", "AWS::Redshift::ClusterParameterGroup")
HANDLERS = ("create", "read", "update", "delete")


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form tags (!Ref, !Sub, ...), as their long forms."""


def _tag(loader: yaml.Loader, suffix: str, node: yaml.Node):
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CfnLoader.add_multi_constructor("!", _tag)


def load(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=CfnLoader)


def statements(template: dict, policy: str) -> list[dict]:
    out = []
    for s in template["Resources"][policy]["Properties"]["PolicyDocument"]["Statement"]:
        if isinstance(s, dict) and "Fn::If" in s:
            # A conditional statement: the branch that is a statement (the other is AWS::NoValue).
            s = next(b for b in s["Fn::If"][1:] if isinstance(b, dict) and "Effect" in b)
        out.append(s)
    return out


def actions(stmts: list[dict]) -> set[str]:
    out: set[str] = set()
    for s in stmts:
        if s.get("Effect") != "Allow":
            continue
        a = s["Action"]
        out.update([a] if isinstance(a, str) else a)
    return out


class Report:
    def __init__(self) -> None:
        self.failed = False

    def check(self, name: str, problems: list[str], ok_detail: str = "") -> None:
        if problems:
            self.failed = True
            print(f"FAIL iam {name}")
            for p in problems:
                print(f"     - {p}")
        else:
            print(f"PASS iam {name}" + (f" ({ok_detail})" if ok_detail else ""))


def main() -> int:
    report = Report()
    initial = load(ROOT / "cfn/initial.yaml")
    redshift = load(ROOT / "cfn/redshift.yaml")
    schema = json.loads((HERE / "provider-permissions.json").read_text())

    def handler_actions(types) -> set[str]:
        out: set[str] = set()
        for t in types:
            for h in HANDLERS:
                for a in schema["types"][t]["handlers"][h]:
                    if not a.startswith(PLACEHOLDER_SERVICES):
                        out.add(SCHEMA_SPELLING.get(a, a))
        return out

    # stack-role
    resource_types = {r["Type"] for r in redshift["Resources"].values()}
    problems = []
    for t in sorted(resource_types - set(STACK_TYPES) - {"AWS::SecretsManager::SecretTargetAttachment"}):
        problems.append(f"cfn/redshift.yaml has a {t}, whose handlers' permissions this check does not know")
    want = handler_actions(STACK_TYPES) | set(EXTRAS)
    have = actions(statements(initial, "RedshiftStackPolicy"))
    for a in sorted(want - have):
        why = EXTRAS.get(a, "listed by the handlers of " + ", ".join(
            t for t in STACK_TYPES
            if any(SCHEMA_SPELLING.get(x, x) == a for h in HANDLERS for x in schema["types"][t]["handlers"][h])))
        problems.append(f"RedshiftStackPolicy lacks {a} ({why})")
    for a in sorted(have - want):
        problems.append(f"RedshiftStackPolicy allows {a}, which no handler lists and no extra explains")
    stack_role = initial["Resources"]["RedshiftStackRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    if [s["Principal"] for s in stack_role] != [{"Service": "cloudformation.amazonaws.com"}]:
        problems.append("RedshiftStackRole is not assumed by cloudformation.amazonaws.com alone")
    report.check("stack-role", problems,
                 f"{len(have)} actions = handlers of {', '.join(STACK_TYPES)} at "
                 f"{schema['_source']['commit'][:12]} + {len(EXTRAS)} extras")

    # subnet-group
    subnet_writes = {a for h in ("create", "update", "delete")
                     for a in schema["types"]["AWS::Redshift::ClusterSubnetGroup"]["handlers"][h]
                     if "ClusterSubnetGroup" in a and not a.startswith("redshift:Describe")}
    lambda_actions = actions(statements(initial, "LambdaPolicy"))
    problems = [f"{p} allows {a}: the subnet group belongs to the permanent stack"
                for p, acts in (("RedshiftStackPolicy", have), ("LambdaPolicy", lambda_actions))
                for a in sorted(acts & subnet_writes)]
    if "AWS::Redshift::ClusterSubnetGroup" not in {r["Type"] for r in initial["Resources"].values()}:
        problems.append("cfn/initial.yaml has no ClusterSubnetGroup")
    report.check("subnet-group", problems, ", ".join(sorted(subnet_writes)) + " stay with the deployer")

    # lambda-role
    problems = []
    eni = {"ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface", "ec2:DescribeNetworkInterfaces",
           "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"}
    for a in sorted(lambda_actions):
        if a.startswith("redshift:") or (a.startswith("ec2:") and a not in eni) or a == "iam:CreateServiceLinkedRole":
            problems.append(f"LambdaPolicy allows {a}: CloudFormation holds it, through RedshiftStackRole")
    for s in statements(initial, "LambdaPolicy"):
        acts = [s["Action"]] if isinstance(s["Action"], str) else s["Action"]
        if "iam:PassRole" in acts:
            if s["Resource"] != [{"Fn::GetAtt": ["RedshiftStackRole", "Arn"]}]:
                problems.append(f"LambdaPolicy passes {s['Resource']}, not only RedshiftStackRole")
            cond = s.get("Condition", {}).get("StringEquals", {})
            if cond.get("iam:PassedToService") != "cloudformation.amazonaws.com":
                problems.append("LambdaPolicy's iam:PassRole is not limited to cloudformation.amazonaws.com")
        if "cloudformation:CreateStack" in acts:
            cond = s.get("Condition", {}).get("StringEquals", {})
            if cond.get("cloudformation:RoleArn") != [{"Fn::GetAtt": ["RedshiftStackRole", "Arn"]}]:
                problems.append("CreateStack is not bound to RedshiftStackRole (cloudformation:RoleArn)")
    env = [f["Properties"]["Environment"]["Variables"].get("ETL_CFN_ROLE_ARN")
           for f in initial["Resources"].values() if f["Type"] == "AWS::Lambda::Function"]
    if not env or any(v != {"Fn::GetAtt": ["RedshiftStackRole", "Arn"]} for v in env):
        problems.append("not every function has ETL_CFN_ROLE_ARN = RedshiftStackRole.Arn")
    report.check("lambda-role", problems)

    # checkov-skips
    problems = []
    skips = 0
    for name, template in (("cfn/initial.yaml", initial), ("cfn/redshift.yaml", redshift)):
        for logical, r in template["Resources"].items():
            for skip in (r.get("Metadata") or {}).get("checkov", {}).get("skip", []):
                skips += 1
                if not str(skip.get("id", "")).startswith("CKV"):
                    problems.append(f"{name} {logical}: a checkov skip without a check id: {skip}")
                if len(str(skip.get("comment", "")).split()) < 5:
                    problems.append(f"{name} {logical}: checkov skip {skip.get('id')} gives no reason")
    report.check("checkov-skips", problems, f"{skips} skips, each with its reason")

    # secret-attach
    problems = []
    attachments = [r["Properties"] for r in redshift["Resources"].values()
                   if r["Type"] == "AWS::SecretsManager::SecretTargetAttachment"]
    clusters = [k for k, r in redshift["Resources"].items() if r["Type"] == "AWS::Redshift::Cluster"]
    if len(attachments) != 1 or len(clusters) != 1:
        problems.append(f"expected one cluster and one secret attachment, found {clusters} and {attachments}")
    else:
        a = attachments[0]
        if a.get("TargetId") != {"Ref": clusters[0]} or a.get("TargetType") != "AWS::Redshift::Cluster":
            problems.append(f"the attachment does not target the cluster: {a}")
        if a.get("SecretId") != {"Ref": "MasterSecretArn"}:
            problems.append(f"the attachment does not name the master secret: {a}")
    report.check("secret-attach", problems)

    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
