"""The ``safezone`` CLI against the running control plane: admin flow and clear failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from .support import attested_dataset, unique


def cli(stack, user: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SAFEZONE_URL": stack.control_plane.url,
           "SAFEZONE_TOKEN": stack.tokens[user]}
    return subprocess.run([sys.executable, "-m", "safezone.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_admin_creates_publishes_approves_and_revokes(stack):
    project, dataset = unique("cli"), unique("deid-cli")
    assert cli(stack, "admin", "projects", "create", project, "--title", "CLI").returncode == 0
    assert cli(stack, "admin", "datasets", "register", dataset,
               "--classification", "deidentified").returncode == 0
    refused = cli(stack, "admin", "datasets", "publish", dataset)  # not made by the pipeline
    assert refused.returncode == 1 and "no attestation" in refused.stderr
    dataset = unique("deid-cli")
    attested_dataset(stack.zone, dataset)
    assert cli(stack, "admin", "datasets", "publish", dataset).returncode == 0
    assert cli(stack, "admin", "projects", "attach", project, dataset).returncode == 0
    requested = cli(stack, "bob", "members", "request", project, "--justification", "why")
    assert requested.returncode == 0
    approved = cli(stack, "admin", "members", "approve", project, "bob", "--expires", "2099-01-01")
    assert approved.returncode == 1 and "one year" in approved.stderr  # too far ahead
    result = cli(stack, "admin", "members", "approve", project, "bob", "--expires",
                 _in_days(stack, 30))
    assert result.returncode == 0, result.stderr
    members = json.loads(cli(stack, "admin", "members", "list", project).stdout)
    assert [(m["user"], m["status"]) for m in members] == [("bob", "approved")]
    assert cli(stack, "admin", "members", "revoke", project, "bob").returncode == 0
    members = json.loads(cli(stack, "admin", "members", "list", project).stdout)
    assert members[0]["status"] == "revoked"


def _in_days(stack, n: int) -> str:
    from datetime import timedelta

    return (stack.zone.now() + timedelta(days=n)).isoformat()


def test_errors_are_one_line_and_nonzero(stack):
    result = cli(stack, "alice", "projects", "create", unique("nope"))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: 403:")
    result = cli(stack, "admin", "projects", "create", "Bad Name")
    assert result.returncode == 1 and "invalid project name" in result.stderr
    result = cli(stack, "admin", "members", "approve", "x", "bob", "--expires", "tomorrow")
    assert result.returncode == 1 and "ISO 8601" in result.stderr


def test_audit_verify_reports_intact_chain(stack):
    result = cli(stack, "admin", "audit", "verify")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("audit chain intact:")
