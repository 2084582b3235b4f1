"""Fault injection (``SAFEZONE_FAILPOINTS``) is for tests: a Kubernetes zone with it set
refuses to start, with one line naming the variable, before it opens its database; a
local zone (how tests/test_faults.py and the other fault tests run) still honours it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from safezone import failpoints
from safezone.config import Settings

SPEC = "grant.identity_created=kill"
ENTRY_POINTS = {
    "control plane": ["-m", "safezone.api.main"],
    "deid verify": ["-m", "safezone.cli", "deid", "verify", "deid-x"],
    "restore": ["-m", "safezone.cli", "restore", "/nonexistent-snapshot"],
}


def _clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This process's environment without any SAFEZONE_* (or a metrics folder a start
    would empty), a database file that must never be created, and ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SAFEZONE_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    return {**env, "SAFEZONE_DATABASE_URL": f"sqlite:///{tmp_path / 'zone.sqlite'}",
            "SAFEZONE_MINIO_ENDPOINT": "127.0.0.1:1", **extra}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_a_kubernetes_zone_with_failpoints_refuses_to_start(tmp_path, entry):
    env = _clean_env(tmp_path, SAFEZONE_MODE="kubernetes", SAFEZONE_FAILPOINTS=SPEC)
    done = subprocess.run([sys.executable, *ENTRY_POINTS[entry]], env=env,
                          capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr
    assert [line for line in lines if line.startswith("error:")] == lines[-1:], done.stderr
    assert "SAFEZONE_FAILPOINTS is set but SAFEZONE_MODE is kubernetes" in lines[-1]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "zone.sqlite").exists()  # refused before opening the database


def test_settings_refuse_failpoints_only_in_kubernetes_mode(monkeypatch, tmp_path):
    for name, value in _clean_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SAFEZONE_FAILPOINTS", SPEC)
    monkeypatch.setenv("SAFEZONE_MODE", "local")  # the fault tests' processes
    assert not Settings.from_env().kubernetes
    monkeypatch.setenv("SAFEZONE_MODE", "kubernetes")
    with pytest.raises(ValueError, match=r"^SAFEZONE_FAILPOINTS is set .* unset "
                                         r"SAFEZONE_FAILPOINTS$"):
        Settings.from_env()
    monkeypatch.setenv("SAFEZONE_FAILPOINTS", " ")  # blank: nothing injected
    assert Settings.from_env().kubernetes


def test_a_local_process_still_reaches_its_failpoint(tmp_path):
    """The way the fault tests enable a point still works: the process kills itself."""
    env = _clean_env(tmp_path, SAFEZONE_MODE="local", SAFEZONE_FAILPOINTS=SPEC)
    code = ("from safezone.config import Settings; from safezone import failpoints; "
            "Settings.from_env(); failpoints.reach('grant.identity_created')")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == -9, done.stderr
    assert failpoints.VARIABLE == "SAFEZONE_FAILPOINTS"
