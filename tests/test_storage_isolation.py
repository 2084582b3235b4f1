"""With the exact credentials a notebook receives: what it may and may not touch in MinIO.

Every refusal is tried for real against the MinIO server and must be S3 AccessDenied.
"""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from minio import MinioAdmin
from minio.credentials import StaticProvider
from minio.error import MinioAdminException

from safezone.models import SessionGrant

from .support import (
    grant_s3,
    issue_grant,
    notebook_s3,
    provision,
    register_published_dataset,
    unique,
)


def assert_denied(call, *args, **kwargs) -> None:
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    assert caught.value.response["Error"]["Code"] == "AccessDenied", caught.value.response


@pytest.fixture(scope="module")
def setting(stack):
    mine = provision(stack, member="alice")
    other = provision(stack, member="bob")
    grant = issue_grant(stack, "alice", mine.project)
    root = stack.minio.root_s3()
    root.put_object(Bucket="work", Key=f"{other.project}/secret.txt", Body=b"other project")
    root.put_object(Bucket="outbox", Key=f"{mine.project}/bob/result.csv", Body=b"bob's")
    for bucket in ("egress-quarantine", "released", "audit"):
        root.put_object(Bucket=bucket, Key="probe/x.txt", Body=b"x")
    return mine, other, grant, notebook_s3(stack, grant)


def test_reads_published_dataset_of_its_project(setting):
    mine, _, grant, s3 = setting
    assert s3.get_object(Bucket=mine.dataset, Key="data.parquet")["Body"].read(4) == b"PAR1"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=mine.dataset)["Contents"]]
    assert keys == ["_attestation.json", "_report.html", "_report.md", "data.parquet"]
    assert [d["name"] for d in grant["datasets"]] == [mine.dataset]


def test_raw_bucket_is_neither_listed_nor_read(setting):
    mine, _, _, s3 = setting
    assert_denied(s3.list_objects_v2, Bucket=mine.raw_dataset)
    assert_denied(s3.get_object, Bucket=mine.raw_dataset, Key="people.csv")


def test_dataset_is_read_only(setting):
    mine, _, _, s3 = setting
    assert_denied(s3.put_object, Bucket=mine.dataset, Key="data.parquet", Body=b"overwritten")
    assert_denied(s3.delete_object, Bucket=mine.dataset, Key="data.parquet")


def test_other_projects_dataset_and_workspace_are_refused(setting):
    _, other, _, s3 = setting
    assert_denied(s3.get_object, Bucket=other.dataset, Key="data.parquet")
    assert_denied(s3.list_objects_v2, Bucket=other.dataset)
    assert_denied(s3.get_object, Bucket="work", Key=f"{other.project}/secret.txt")
    assert_denied(s3.list_objects_v2, Bucket="work", Prefix=f"{other.project}/")
    assert_denied(s3.put_object, Bucket="work", Key=f"{other.project}/planted.txt", Body=b"x")


def test_own_workspace_and_outbox_are_writable(setting):
    mine, _, _, s3 = setting
    s3.put_object(Bucket="work", Key=f"{mine.project}/notes.txt", Body=b"mine")
    assert s3.get_object(Bucket="work", Key=f"{mine.project}/notes.txt")["Body"].read() == b"mine"
    listed = s3.list_objects_v2(Bucket="work", Prefix=f"{mine.project}/")
    assert [o["Key"] for o in listed["Contents"]] == [f"{mine.project}/notes.txt"]
    s3.put_object(Bucket="outbox", Key=f"{mine.project}/alice/table.csv", Body=b"a,b\n")
    s3.list_objects_v2(Bucket="outbox", Prefix=f"{mine.project}/alice/")


def test_no_server_side_copy_of_a_dataset_into_the_workspace(setting):
    """A copy's audit entry names its destination bucket, so it would be a dataset read the
    access records never see: refused, and nothing lands in work/; reading and writing the
    bytes (which the records see) works."""
    mine, _, _, s3 = setting
    target = f"{mine.project}/copied.parquet"
    assert_denied(s3.copy_object, Bucket="work", Key=target,
                  CopySource={"Bucket": mine.dataset, "Key": "data.parquet"})
    upload = s3.create_multipart_upload(Bucket="work", Key=target)
    assert_denied(s3.upload_part_copy, Bucket="work", Key=target, PartNumber=1,
                  UploadId=upload["UploadId"],
                  CopySource={"Bucket": mine.dataset, "Key": "data.parquet"})
    s3.abort_multipart_upload(Bucket="work", Key=target, UploadId=upload["UploadId"])
    listed = s3.list_objects_v2(Bucket="work", Prefix=target)
    assert listed.get("KeyCount", 0) == 0
    body = s3.get_object(Bucket=mine.dataset, Key="data.parquet")["Body"].read()
    s3.put_object(Bucket="work", Key=target, Body=body)
    assert s3.get_object(Bucket="work", Key=target)["Body"].read() == body


def test_whole_buckets_are_not_listable(setting):
    mine, other, _, s3 = setting
    assert_denied(s3.list_objects_v2, Bucket="work")
    assert_denied(s3.list_objects_v2, Bucket="outbox")
    # MinIO answers ListBuckets with the buckets this identity may touch, and no others.
    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert mine.dataset in names
    assert not names & {mine.raw_dataset, other.dataset, "egress-quarantine", "released",
                        "audit"}


def test_another_users_outbox_is_refused(setting):
    mine, _, _, s3 = setting
    assert_denied(s3.get_object, Bucket="outbox", Key=f"{mine.project}/bob/result.csv")
    assert_denied(s3.put_object, Bucket="outbox", Key=f"{mine.project}/bob/forged.csv", Body=b"x")
    assert_denied(s3.list_objects_v2, Bucket="outbox", Prefix=f"{mine.project}/bob/")


@pytest.mark.parametrize("bucket", ["egress-quarantine", "released", "audit"])
def test_egress_and_audit_buckets_are_refused(setting, bucket):
    _, _, _, s3 = setting
    assert_denied(s3.get_object, Bucket=bucket, Key="probe/x.txt")
    assert_denied(s3.put_object, Bucket=bucket, Key="probe/y.txt", Body=b"y")
    assert_denied(s3.list_objects_v2, Bucket=bucket)


def test_notebook_credentials_cannot_mint_identities(stack, setting):
    _, _, grant, _ = setting
    env = grant["environment"]
    admin = MinioAdmin(endpoint=stack.minio.endpoint, secure=False,
                       credentials=StaticProvider(env["AWS_ACCESS_KEY_ID"],
                                                  env["AWS_SECRET_ACCESS_KEY"],
                                                  env["AWS_SESSION_TOKEN"]))
    with pytest.raises(MinioAdminException) as caught:
        admin.add_service_account(access_key="SZEVILEVILEVIL00001", secret_key="x" * 32)
    assert "AccessDenied" in str(caught.value)


def test_issuer_ceiling_holds_even_for_a_rogue_session_policy(stack, setting):
    """Defence in depth: a session parent whose own policy allows everything (a bug in the
    renderer, say) still gets keys that cannot reach raw-*, audit or released: every
    session key carries the issuer's ceiling as its session policy."""
    mine, _, _, _ = setting
    rogue = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["s3:*"], "Resource": ["arn:aws:s3:::*"]}]}
    broker = stack.zone.broker
    parent = "szs-rogue-" + unique("p")
    broker.prepare_session_parent(parent, rogue)
    keys = broker.issue_session_keys(parent, "rogue", stack.zone.now() + broker_lifetime())
    try:
        s3 = grant_s3(stack.minio, keys)
        assert_denied(s3.get_object, Bucket=mine.raw_dataset, Key="people.csv")
        assert_denied(s3.get_object, Bucket="audit", Key="probe/x.txt")
        assert_denied(s3.put_object, Bucket="released", Key="x", Body=b"x")
    finally:
        broker.remove_session_parent(parent)


def broker_lifetime():
    from datetime import timedelta

    return timedelta(hours=1)


def test_stored_policy_names_only_published_deidentified_data(stack, setting):
    """The policy MinIO holds for the grant never mentions raw or unpublished datasets."""
    mine, _, grant, _ = setting
    draft = unique("deid-draft")
    stack.api("admin").post("/api/datasets", json={"name": draft,
                                                   "classification": "deidentified"})
    with stack.zone.sessions() as db:
        parent = db.get(SessionGrant, grant["grant_id"]).parent
    text = json.dumps(json.loads(stack.zone.broker.admin.policy_info(parent)))
    assert mine.dataset in text
    assert mine.raw_dataset not in text and draft not in text and "raw-" not in text
    for forbidden in ("egress-quarantine", "released", "audit"):
        assert f":::{forbidden}" not in text


def test_second_dataset_shows_up_in_next_grant_only_when_published(stack, setting):
    mine, _, _, _ = setting
    extra = unique("deid-extra")
    register_published_dataset(stack, extra)
    stack.api("admin").post(f"/api/projects/{mine.project}/datasets", json={"dataset": extra}
                            ).raise_for_status()
    grant = issue_grant(stack, "alice", mine.project, server_name="second")
    s3 = notebook_s3(stack, grant)
    assert s3.get_object(Bucket=extra, Key="data.parquet")["Body"].read()
    stack.api("admin").post(f"/api/datasets/{extra}/withdraw").raise_for_status()
    grant = issue_grant(stack, "alice", mine.project, server_name="second")
    assert extra not in [d["name"] for d in grant["datasets"]]
    assert_denied(notebook_s3(stack, grant).get_object, Bucket=extra, Key="data.parquet")
