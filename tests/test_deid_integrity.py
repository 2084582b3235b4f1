"""Only attested datasets are published and mounted; the pipeline's own MinIO identity
reaches only its input and output (real MinIO)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections import Counter
from datetime import timedelta

import pytest
from minio.error import S3Error
from sqlalchemy import select

from safezone import audit, datasets, grants, memberships, projects
from safezone.deid import pipeline
from safezone.deid.recipe import load_recipe
from safezone.deid.report import render_html
from safezone.errors import InvalidInput, InvalidTransition
from safezone.models import AuditEvent, DatasetStatus
from safezone.permissions import ADMIN_SCOPE, SESSIONS_SCOPE, STEWARD_SCOPE, Identity
from safezone.storage.policies import PolicyViolation, pipeline_policy

from .support import PIPELINE_KEY, attested_dataset, grant_s3, steward_env, unique
from .test_deid import KEY, SMALL, SMALL_RECIPE

ADMIN = Identity("admin", "user", frozenset({ADMIN_SCOPE}))
STEWARD = Identity("steward", "user", frozenset({STEWARD_SCOPE}))
SPAWNER = Identity("safezone-spawner", "service", frozenset({SESSIONS_SCOPE}))
TABLE = b"id,age\n1,40\n2,41\n"


def denied(call, *args, **kwargs) -> None:
    with pytest.raises(S3Error) as caught:
        call(*args, **kwargs)
    assert caught.value.code in {"AccessDenied", "InvalidAccessKeyId"}, caught.value.code


def status_of(zone, name: str) -> DatasetStatus:
    return datasets.get_location(zone, name).status


def mounted_project(zone, dataset: str) -> str:
    project = unique("p")
    projects.create_project(zone, ADMIN, project)
    datasets.change_status(zone, ADMIN, dataset, "publish")
    projects.attach_dataset(zone, ADMIN, project, dataset)
    memberships.approve_membership(zone, ADMIN, project, "alice",
                                   zone.now() + timedelta(days=5))
    return project


def test_a_dataset_not_made_by_the_pipeline_cannot_be_published(zone):
    name = unique("deid-hand")
    datasets.register_dataset(zone, STEWARD, name, "deidentified")
    zone.broker.write_object(name, "data.csv", TABLE)
    with pytest.raises(InvalidTransition, match="no attestation"):
        datasets.change_status(zone, ADMIN, name, "publish")
    assert status_of(zone, name) is DatasetStatus.DRAFT


def test_an_object_added_after_the_attestation_blocks_publishing(zone):
    name = unique("deid-extra")
    attested_dataset(zone, name, TABLE)
    zone.broker.write_object(name, "leak.csv", b"name,rrn\nHong,900101-1234567\n")
    with pytest.raises(InvalidTransition, match=r"leak\.csv: not part of the attestation"):
        datasets.change_status(zone, ADMIN, name, "publish")
    zone.broker.delete_object(name, "leak.csv")  # a delete marker hides it again
    datasets.change_status(zone, ADMIN, name, "publish")
    assert status_of(zone, name) is DatasetStatus.PUBLISHED


def test_tampered_output_leaves_new_sessions_and_the_audit_says_so(zone, minio):
    name = unique("deid-tamper")
    attested_dataset(zone, name, TABLE)
    project = mounted_project(zone, name)
    first = grants.issue_grant(zone, SPAWNER, "alice", project, server_name="a")
    assert [d["name"] for d in first.datasets] == [name]

    minio.root_s3().put_object(Bucket=name, Key="data.parquet", Body=b"PAR1 other rows PAR1")
    second = grants.issue_grant(zone, SPAWNER, "alice", project, server_name="b")
    assert second.datasets == []
    assert status_of(zone, name) is DatasetStatus.WITHDRAWN
    s3 = grant_s3(minio, second)
    with pytest.raises(Exception) as caught:
        s3.get_object(Bucket=name, Key="data.parquet")
    assert caught.value.response["Error"]["Code"] == "AccessDenied"
    with zone.sessions() as db:
        event = db.scalars(select(AuditEvent).where(AuditEvent.action ==
                                                    "dataset.integrity_failed")
                           .where(AuditEvent.subject == f"dataset:{name}")).one()
    assert event.data["problems"] == ["data.parquet: replaced since the attestation"]
    assert event.data["was"] == "published" and event.data["now"] == "withdrawn"
    with pytest.raises(InvalidTransition, match="replaced"):
        datasets.change_status(zone, ADMIN, name, "publish")


def test_verify_names_a_deleted_output_and_withdraws(zone):
    name = unique("deid-gone")
    attested_dataset(zone, name, TABLE)
    datasets.change_status(zone, ADMIN, name, "publish")
    assert pipeline.verify(zone, STEWARD, name) == []
    zone.broker.delete_object(name, "data.parquet")
    assert pipeline.verify(zone, STEWARD, name) == ["data.parquet: missing since the attestation"]
    assert status_of(zone, name) is DatasetStatus.WITHDRAWN


def test_the_attestation_pins_every_object_by_version(zone):
    name = unique("deid-pin")
    attested_dataset(zone, name, TABLE)
    pinned = datasets.get_location(zone, name).attestation["objects"]
    assert set(pinned) == {"data.parquet", "_report.md", "_report.html", "_attestation.json"}
    stored = zone.broker.current_objects(name)
    assert {k: v.version_id for k, v in stored.items()} == \
        {k: v["version_id"] for k, v in pinned.items()}
    in_bucket = json.loads(zone.broker.read_object(name, "_attestation.json", 1 << 20))
    assert in_bucket["outputs"][0]["sha256"] == pinned["data.parquet"]["sha256"]


def test_pipeline_identity_reaches_only_its_input_and_output(zone, minio):
    raw, other_raw, output = unique("raw-in"), unique("raw-other"), unique("deid-out")
    for bucket in (raw, other_raw):
        datasets.register_dataset(zone, STEWARD, bucket, "raw")
        zone.broker.write_object(bucket, "in.csv", TABLE)
    zone.broker.write_object(raw, "second.csv", TABLE)
    neighbour = unique("deid-neighbour")
    attested_dataset(zone, neighbour, TABLE)
    datasets.register_dataset(zone, STEWARD, output, "deidentified")
    with pipeline.pipeline_identity(zone, STEWARD, raw, "in.csv", output) as client:
        assert client.get_object(raw, "in.csv").read() == TABLE
        client.put_object(output, "probe", io.BytesIO(b"x"), 1)
        denied(client.get_object, raw, "second.csv")
        denied(client.get_object, other_raw, "in.csv")
        denied(lambda: list(client.list_objects(raw)))
        denied(client.put_object, raw, "in.csv", io.BytesIO(b"x"), 1)
        denied(client.get_object, output, "probe")
        denied(client.get_object, neighbour, "data.parquet")
        denied(client.put_object, neighbour, "data.parquet", io.BytesIO(b"x"), 1)
        for bucket in ("audit", "released", "egress-quarantine", "work", "outbox"):
            denied(lambda b=bucket: list(client.list_objects(b)))
    denied(client.get_object, raw, "in.csv")  # deleted when the run ends


def test_input_changed_between_the_passes_writes_nothing(zone, monkeypatch):
    raw = unique("raw-moving")
    datasets.register_dataset(zone, STEWARD, raw, "raw")
    zone.broker.write_object(raw, "in.csv", TABLE)
    original = pipeline.RawInput.batches

    def batches(self):
        yield from original(self)
        if len(self.reads) == 1:  # a steward re-uploads while the run is between passes
            zone.broker.write_object(raw, "in.csv", TABLE + b"3,42\n")

    monkeypatch.setattr(pipeline.RawInput, "batches", batches)
    output = unique("deid-moving")
    with pytest.raises(InvalidInput, match="changed during the run"):
        pipeline.run(zone, STEWARD, load_recipe("version: 1\ncolumns:\n  id: {technique: keep}\n"
                                              "  age: {technique: keep}\n"),
                     raw, "in.csv", output, PIPELINE_KEY)
    assert not zone.broker.bucket_exists(output)


def test_a_published_dataset_is_not_overwritten_by_a_new_run(zone):
    name = unique("deid-live")
    facts = attested_dataset(zone, name, TABLE)
    datasets.change_status(zone, ADMIN, name, "publish")
    with pytest.raises(InvalidInput, match="withdraw it before re-running"):
        pipeline.run(zone, STEWARD, load_recipe("version: 1\ncolumns:\n  id: {technique: keep}\n"
                                              "  age: {technique: keep}\n"),
                     facts["input"]["bucket"], facts["input"]["key"], name, PIPELINE_KEY)
    assert pipeline.verify(zone, STEWARD, name) == []


def test_html_report_shows_markup_in_values_as_text():
    attestation = {"dataset": "deid-x", "run_at": "2026-11-27", "run_by": "steward",
                   "tool": "safezone", "input": {"bucket": "raw-x", "key": "a.csv",
                                                 "sha256": "0" * 64, "bytes": 10},
                   "recipe_sha256": "1" * 64, "rows_in": 3, "rows_out": 3,
                   "rows_suppressed": 0, "k": 2, "k_achieved": 3, "classes": 1,
                   "quasi_identifiers": ["region"], "l": 1, "l_achieved": None,
                   "sensitive": [], "identifier_scan": "clean"}
    values = Counter({"<script>alert(1)</script>": 2, "a|b": 1})
    page = render_html(attestation, {"region": {"technique": "generalise", "to": "sido",
                                                "role": "quasi_identifier"}},
                       {"region": values}, {"region": values})
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<td>a|b</td>" in page and page.count("<table>") == 3
    assert '<html lang="ko">' in page and "De-identification report" in page


@pytest.mark.parametrize(("bucket", "key", "output", "words"), [
    ("deid-a", "in.csv", "deid-b", "not a raw bucket"),
    ("raw-a", "in.csv", "raw-b", "not a de-identified bucket"),
    ("raw-a", "*.csv", "deid-b", "wildcard"),
    ("raw-a", "in?.csv", "deid-b", "wildcard"),
])
def test_pipeline_policy_refuses_anything_but_one_raw_object_and_one_dataset(
        bucket, key, output, words):
    with pytest.raises(PolicyViolation, match=words):
        pipeline_policy(bucket, key, output)


def test_pipeline_policy_names_exactly_its_input_object_and_output():
    policy = pipeline_policy("raw-a", "dir/in.csv", "deid-b")
    resources = sorted(r for s in policy["Statement"] for r in s["Resource"])
    assert resources == ["arn:aws:s3:::deid-b/*", "arn:aws:s3:::raw-a/dir/in.csv"]
    assert all("s3:ListBucket" not in s["Action"] for s in policy["Statement"])


def test_a_killed_run_leaves_no_identity_behind_and_runs_again(zone, tmp_path):
    """``kill -9`` of ``safezone deid run`` just after it made its MinIO identity (a real
    CLI process, SIGKILL from the failpoint): the next run deletes the orphan before it
    starts, so the dead run's keys are refused at once instead of for 16 more minutes;
    the re-run writes one attested dataset and the audit chain verifies."""
    raw, dataset = unique("raw-kill"), unique("deid-kill")
    datasets.register_dataset(zone, STEWARD, raw, "raw")
    zone.broker.write_object(raw, "in.csv", SMALL.encode())
    (tmp_path / "recipe.yaml").write_text(SMALL_RECIPE)
    (tmp_path / "key").write_bytes(KEY)
    before = {key for key, _ in zone.broker.pipeline_identities()}
    killed = subprocess.run(
        [sys.executable, "-m", "safezone.cli", "deid", "run", "--recipe",
         str(tmp_path / "recipe.yaml"), "--input", f"{raw}/in.csv", "--dataset", dataset,
         "--key-file", str(tmp_path / "key")],
        env={**steward_env(zone), "SAFEZONE_FAILPOINTS": "deid.identity_created=kill"},
        capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    orphans = {key for key, _ in zone.broker.pipeline_identities()} - before
    assert len(orphans) == 1  # what kill -9 leaves: nobody ran the cleanup

    facts = pipeline.run(zone, STEWARD, load_recipe(SMALL_RECIPE), raw, "in.csv", dataset,
                         KEY)
    assert not orphans & {key for key, _ in zone.broker.pipeline_identities()}
    assert facts["rows_out"] == 7 and pipeline.verify(zone, STEWARD, dataset) == []
    with zone.sessions() as db:
        actions = Counter(e.action for e in db.scalars(select(AuditEvent).where(
            AuditEvent.subject == f"dataset:{dataset}")))
        assert actions["dataset.attested"] == 1
        assert audit.verify(db, zone.broker.list_anchors()) == []


def test_only_a_dead_owner_on_this_host_makes_an_identity_an_orphan():
    from safezone import process_lease

    mine = process_lease.owner_tag()
    assert not process_lease.owner_gone(f"safezone deid run -> deid-x {mine}")
    host, pid, start = mine.removeprefix(process_lease.PREFIX).split(":")
    assert process_lease.owner_gone(f"{process_lease.PREFIX}{host}:{pid}:{int(start) + 1}")
    assert process_lease.owner_gone(f"{process_lease.PREFIX}{host}:999999999:1")
    assert not process_lease.owner_gone(f"{process_lease.PREFIX}elsewhere:999999999:1")
    assert not process_lease.owner_gone("a description without an owner")
