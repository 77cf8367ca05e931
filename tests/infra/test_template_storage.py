"""The template's storage: the artifacts bucket, the user-state table and the event streams (issue 10)."""

from __future__ import annotations

import json
from typing import Any

from tests.infra.conftest import _actions, _resources_of_type


def test_bucket_is_encrypted_versioned_private_and_tls_only(template: dict[str, Any]) -> None:
    bucket = template["Resources"]["ArtifactsBucket"]
    assert bucket["Condition"] == "CreateBucket"
    props = bucket["Properties"]
    sse = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert sse["SSEAlgorithm"] == "AES256"
    assert props["VersioningConfiguration"]["Status"] == "Enabled"
    block = props["PublicAccessBlockConfiguration"]
    assert set(block) == {"BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"}
    assert all(value is True for value in block.values())

    (policy,) = _resources_of_type(template, "AWS::S3::BucketPolicy").values()
    assert policy["Properties"]["Bucket"] == {"Ref": "ArtifactsBucket"}
    denies = [
        s
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny" and s["Condition"]["Bool"]["aws:SecureTransport"] in ("false", False)
    ]
    assert denies, "no statement denies requests without TLS"
    assert len(denies[0]["Resource"]) == 2, "the TLS deny must cover the bucket and its objects"


def test_user_table_matches_reccore_and_is_protected(template: dict[str, Any]) -> None:
    from reccore.userstate.table import KEY_ATTRIBUTES, KEY_SCHEMA, TTL_ATTRIBUTE

    (name, table) = next(iter(_resources_of_type(template, "AWS::DynamoDB::Table").items()))
    props = table["Properties"]
    assert props["KeySchema"] == KEY_SCHEMA and props["AttributeDefinitions"] == KEY_ATTRIBUTES
    assert props["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert name == "UserStateTable"


def test_event_streams_deliver_to_their_prefixes_with_a_role_limited_to_them(template: dict[str, Any]) -> None:
    from reccore.eventlog import EVENTS_DIR
    from reccore.impressions import IMPRESSIONS_DIR

    streams = _resources_of_type(template, "AWS::KinesisFirehose::DeliveryStream")
    assert set(streams) == {"EventsDeliveryStream", "ImpressionsDeliveryStream"}
    for name, directory in (("EventsDeliveryStream", EVENTS_DIR), ("ImpressionsDeliveryStream", IMPRESSIONS_DIR)):
        props = streams[name]["Properties"]
        assert props["DeliveryStreamType"] == "DirectPut"
        destination = props["ExtendedS3DestinationConfiguration"]
        assert destination["Prefix"] == {"Fn::Sub": f"${{ModelPrefix}}/{directory}/"}
        assert destination["CompressionFormat"] == "UNCOMPRESSED"  # the readers take plain NDJSON
        assert destination["RoleARN"] == {"Fn::GetAtt": ["EventsDeliveryRole", "Arn"]}
    role = template["Resources"]["EventsDeliveryRole"]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "firehose.amazonaws.com"}
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    for statement in statements:
        resource = json.dumps(statement["Resource"])
        if "s3:PutObject" in _actions(statement):
            objects = [r["Fn::Sub"][0].rsplit("${ModelPrefix}/", 1)[1] for r in statement["Resource"]]
            assert objects == [f"{EVENTS_DIR}/*", f"{IMPRESSIONS_DIR}/*"], "objects only under the two log prefixes"
        elif "s3:ListBucket" in _actions(statement):
            assert statement["Condition"]["StringLike"]["s3:prefix"] == [
                {"Fn::Sub": f"${{ModelPrefix}}/{d}/*"} for d in (EVENTS_DIR, IMPRESSIONS_DIR)
            ]
        else:
            assert "/" not in resource.split(":::", 1)[-1], f"bucket-level lookups only: {statement}"
        assert not any("*" in a or a.startswith(("s3:Delete", "s3:GetObject")) for a in _actions(statement))
