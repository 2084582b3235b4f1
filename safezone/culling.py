"""Idle culling: the jupyterhub-idle-culler service of the hub, from policy and environment.

Defaults are in ``policies/operations.yaml`` (``idle_culling``); the environment (the local
launcher, the tests, the chart's ``hub.idleCulling`` values) overrides them. The culler
stops a server through the hub API, so the spawner's ``stop()`` runs and ends its grant.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from .config import POLICIES_DIR

SERVICE = "idle-culler"
# What the culler documents it needs (its README, "Permissions"): no admin, no user deletion.
SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
ENV = {"timeout_seconds": "SAFEZONE_IDLE_TIMEOUT_SECONDS",
       "cull_every_seconds": "SAFEZONE_IDLE_CULL_EVERY_SECONDS",
       "activity_interval_seconds": "SAFEZONE_ACTIVITY_INTERVAL_SECONDS"}


@dataclass(frozen=True)
class Culling:
    timeout_seconds: int  # 0: no culling
    cull_every_seconds: int
    activity_interval_seconds: int


def load_operations(path: Path | None = None) -> dict[str, Any]:
    """``policies/operations.yaml`` (read once per process; a grant reads it each time)."""
    return _read(path or POLICIES_DIR / "operations.yaml")


@cache
def _read(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def culling_settings(env: Mapping[str, str] | None = None,
                     policy: dict[str, Any] | None = None) -> Culling:
    """The policy's values, each replaced by its environment variable when set."""
    env = os.environ if env is None else env
    values = dict((policy or load_operations())["idle_culling"])
    for key, var in ENV.items():
        if env.get(var, "").strip():
            values[key] = env[var].strip()
    parsed = {}
    for key, value in values.items():
        try:
            parsed[key] = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"{ENV[key]} must be a whole number of seconds, not {value!r}"
                             ) from None
        if parsed[key] < 0 or (key != "timeout_seconds" and parsed[key] == 0):
            raise ValueError(f"{ENV[key]} must be a positive number of seconds")
    return Culling(**{k: parsed[k] for k in ENV})


def culler_service(culling: Culling, hub_api_url: str) -> dict[str, Any] | None:
    """The hub-managed service that culls idle default and named servers (None: off)."""
    if not culling.timeout_seconds:
        return None
    return {"name": SERVICE,
            "command": [sys.executable, "-m", "jupyterhub_idle_culler",
                        f"--timeout={culling.timeout_seconds}",
                        f"--cull-every={culling.cull_every_seconds}",
                        "--cull-named-servers=true", "--cull-default-servers=true",
                        f"--url={hub_api_url}"]}


def culler_role() -> dict[str, Any]:
    return {"name": "safezone-idle-culler", "services": [SERVICE], "scopes": list(SCOPES)}
