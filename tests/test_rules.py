"""Unit tests of the rule tables and the policy renderer (no services)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from safezone.errors import InvalidInput
from safezone.memberships import TRANSITIONS, effective_status
from safezone.models import Membership, MembershipStatus
from safezone.naming import check_bucket_name, check_prefix, check_project_name
from safezone.storage.policies import (
    DatasetLocation,
    PolicyViolation,
    buckets_named,
    session_policy,
)


def test_every_membership_state_is_reachable_and_left_only_by_table():
    targets = {target for _, target in TRANSITIONS.values()}
    assert targets | {MembershipStatus.EXPIRED} == set(MembershipStatus)
    sources = set().union(*(frm for frm, _ in TRANSITIONS.values()))
    assert set(MembershipStatus) <= sources | {MembershipStatus.REQUESTED}


def test_approved_past_expiry_counts_as_expired():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    m = Membership(status=MembershipStatus.APPROVED, expires_at=now + timedelta(seconds=1))
    assert effective_status(m, now) is MembershipStatus.APPROVED
    assert effective_status(m, now + timedelta(seconds=1)) is MembershipStatus.EXPIRED
    m.expires_at = None
    assert effective_status(m, now) is MembershipStatus.EXPIRED


def test_session_policy_covers_only_its_datasets_workspace_and_outbox():
    policy = session_policy("demo", "alice", [DatasetLocation("deid-a", "deid-a", ""),
                                              DatasetLocation("deid-b", "deid-b", "v1/")])
    allowed = {"Statement": [s for s in policy["Statement"] if s["Effect"] == "Allow"]}
    assert buckets_named(allowed) == {"deid-a", "deid-b", "work", "outbox"}
    resources = [r for s in policy["Statement"] for r in s.get("Resource", [])]
    assert "arn:aws:s3:::deid-b/v1/*" in resources
    assert "arn:aws:s3:::outbox/demo/alice/*" in resources
    denied = {s["Sid"]: s for s in policy["Statement"] if s["Effect"] == "Deny"}
    assert set(denied) == {"NoKeyManagement", "NoServerSideCopy"}
    keys = denied["NoKeyManagement"]
    assert all(a.startswith("admin:") for a in keys["Action"]) and "Resource" not in keys
    copies = denied["NoServerSideCopy"]  # any PutObject that names a copy source
    assert copies["Action"] == ["s3:PutObject"] and copies["Resource"] == ["arn:aws:s3:::*"]
    assert copies["Condition"] == {"Null": {"s3:x-amz-copy-source": "false"}}


@pytest.mark.parametrize("bucket", ["raw-health", "egress-quarantine", "released", "audit"])
def test_session_policy_refuses_forbidden_buckets(bucket):
    with pytest.raises(PolicyViolation):
        session_policy("demo", "alice", [DatasetLocation("x", bucket, "")])


def test_names():
    assert check_project_name("demo-health") == "demo-health"
    assert check_bucket_name("deid-health-2024") == "deid-health-2024"
    for bad in ("../x/", "a/../", "/abs/", "x"):
        with pytest.raises(InvalidInput):
            check_prefix(bad)
    assert check_prefix("v1/part-2/") == "v1/part-2/"
