"""The two single-purpose MinIO identities, tried on the real server: the anchor writer can
only add anchors, the released reader can only read released objects. Every refusal is
checked together with the fact that nothing was written, changed or created."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from minio import MinioAdmin
from minio.credentials import StaticProvider
from minio.error import MinioAdminException

from safezone import projects
from safezone.errors import StorageError
from safezone.storage.broker import RELEASED_READER, derived_password
from safezone.storage.policies import (
    PolicyViolation,
    anchor_writer_policy,
    released_reader_policy,
)

from .support import unique
from .test_audit import ADMIN

BODY = b"group,count\nx,120\ny,140\n"


@pytest.fixture
def objects(zone):
    """One object in every bucket the zone has, plus one real audit anchor."""
    tag, broker = unique("t"), zone.broker
    raw, deid = unique("raw-id"), unique("deid-id")
    broker.ensure_bucket(raw)
    broker.ensure_bucket(deid, versioned=True)
    keys = {"released": f"{tag}/table.csv", "egress-quarantine": f"{tag}/r1/table.csv",
            "outbox": f"{tag}/alice/table.csv", "work": f"{tag}/notes.txt",
            raw: "people.csv", deid: "table.csv"}
    for bucket, key in keys.items():
        broker.write_object(bucket, key, BODY)
    projects.create_project(zone, ADMIN, unique("p"))  # anchors its audit event
    anchor = next(broker.s3.list_objects("audit", prefix=zone.settings.storage.anchor_prefix,
                                         recursive=True))
    keys["audit"] = anchor.object_name
    return keys


def denied(call, *args, **kwargs) -> None:
    with pytest.raises(ClientError) as refused:
        call(*args, **kwargs)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"


def absent(minio, bucket: str, key: str) -> bool:
    try:
        minio.root_s3().head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        return exc.response["Error"]["Code"] in {"404", "NoSuchKey"}
    return False


def content(minio, bucket: str, key: str) -> bytes:
    return minio.root_s3().get_object(Bucket=bucket, Key=key)["Body"].read()


def admin_api_refused(minio, user: str, password: str) -> None:
    """No admin call works, and the attempt to mint a service account left none behind."""
    admin = MinioAdmin(endpoint=minio.endpoint, credentials=StaticProvider(user, password),
                       secure=False)
    minted = unique("szx")
    for call in (admin.user_list, admin.policy_list,
                 lambda: admin.user_add(minted, "x" * 32),
                 # a plain user may mint keys of its own unless its policy denies it
                 lambda: admin.add_service_account(access_key=minted, secret_key="x" * 32)):
        with pytest.raises(MinioAdminException, match="403"):
            call()
    root = MinioAdmin(endpoint=minio.endpoint, secure=False,
                      credentials=StaticProvider(minio.root_user, minio.root_password))
    assert not json.loads(root.list_service_account(user)).get("accounts")
    assert minted not in json.loads(root.user_list())


def test_released_reader_reads_released_objects_and_nothing_else(zone, minio, objects):
    reader = minio.s3(RELEASED_READER, zone.broker.reader_password)
    released = objects["released"]
    assert reader.get_object(Bucket="released", Key=released)["Body"].read() == BODY

    for bucket, key in objects.items():
        if bucket != "released":
            denied(reader.get_object, Bucket=bucket, Key=key)
    denied(reader.list_objects_v2, Bucket="released")
    denied(reader.put_object, Bucket="released", Key=f"{released}.new", Body=b"forged")
    assert absent(minio, "released", f"{released}.new")
    denied(reader.put_object, Bucket="released", Key=released, Body=b"forged")
    denied(reader.delete_object, Bucket="released", Key=released)
    assert content(minio, "released", released) == BODY
    admin_api_refused(minio, RELEASED_READER, zone.broker.reader_password)


def test_stream_released_serves_a_download_without_presigned_urls(zone, objects):
    size, chunks = zone.broker.stream_released(objects["released"], chunk=7)
    parts = list(chunks)
    assert size == len(BODY) and b"".join(parts) == BODY and len(parts) > 1
    with pytest.raises(StorageError):  # a missing key, and any other bucket's key
        zone.broker.stream_released(f"{objects['released']}.missing")
    with pytest.raises(StorageError):
        zone.broker.stream_released(f"../outbox/{objects['outbox']}")


def test_anchor_writer_only_adds_anchors(zone, minio, objects):
    broker, prefix = zone.broker, zone.settings.storage.anchor_prefix
    writer = minio.s3(broker.anchor_user, broker.anchor_password)
    anchor = objects["audit"]
    broker.write_anchor(99, "ab" * 32)  # its one right, used the way the zone uses it
    assert not absent(minio, "audit", f"{prefix}{99:012d}-{'ab' * 32}.json")

    for bucket, key in objects.items():
        denied(writer.get_object, Bucket=bucket, Key=key)
    denied(writer.list_objects_v2, Bucket="audit")
    versions = minio.root_s3().list_object_versions(Bucket="audit", Prefix=anchor)
    version = versions["Versions"][0]["VersionId"]
    denied(writer.delete_object, Bucket="audit", Key=anchor)
    denied(writer.delete_object, Bucket="audit", Key=anchor, VersionId=version)
    after = minio.root_s3().list_object_versions(Bucket="audit", Prefix=anchor)
    assert "DeleteMarkers" not in after and len(after["Versions"]) == 1

    elsewhere = {"audit": "elsewhere/forged.json", "released": f"{objects['released']}.x",
                 "work": "forged.txt", "outbox": "forged.txt",
                 "egress-quarantine": "forged.txt"}
    other_zone = "anchors/" if prefix != "anchors/" else "anchors-other/"
    elsewhere_keys = [*elsewhere.items(), ("audit", f"{other_zone}{1:012d}-{'cd' * 32}.json")]
    for bucket, key in elsewhere_keys:
        denied(writer.put_object, Bucket=bucket, Key=key, Body=b"forged")
        assert absent(minio, bucket, key)
    admin_api_refused(minio, broker.anchor_user, broker.anchor_password)


def test_identity_passwords_default_to_a_derivation_of_the_root_password(zone):
    storage = zone.settings.storage
    assert zone.broker.anchor_password == derived_password(storage.root_password,
                                                           "anchor-writer")
    assert zone.broker.reader_password == derived_password(storage.root_password,
                                                           "released-reader")
    assert zone.broker.anchor_password != zone.broker.reader_password
    assert len(zone.broker.anchor_password) == 40


def test_policies_grant_one_action_on_one_bucket(tmp_path):
    writer, reader = anchor_writer_policy("anchors/"), released_reader_policy()
    assert [s for s in writer["Statement"] if s["Effect"] == "Allow"] == [{
        "Sid": "WriteAuditAnchors", "Effect": "Allow", "Action": ["s3:PutObject"],
        "Resource": ["arn:aws:s3:::audit/anchors/*"]}]
    assert [s for s in reader["Statement"] if s["Effect"] == "Allow"] == [{
        "Sid": "ReadReleasedOutputs", "Effect": "Allow", "Action": ["s3:GetObject"],
        "Resource": ["arn:aws:s3:::released/*"]}]
    for prefix in ("", "anchors/*", "a?/"):
        with pytest.raises(PolicyViolation):
            anchor_writer_policy(prefix)
    (tmp_path / "minio").mkdir()
    for widened in ('Action: ["s3:GetObject", "s3:ListBucket"]\n'
                    '    Resource: ["arn:aws:s3:::released/*"]',
                    'Action: ["s3:GetObject"]\n    Resource: ["arn:aws:s3:::*"]'):
        (tmp_path / "minio" / "released-reader.yaml").write_text(
            f"statements:\n  - Effect: Allow\n    {widened}\n")
        with pytest.raises(PolicyViolation):
            released_reader_policy(tmp_path)
