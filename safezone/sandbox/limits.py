"""The sandbox policy (``policies/sandbox.yaml``): cgroup limits and what a sandbox may reach."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..config import POLICIES_DIR


@dataclass(frozen=True)
class Limits:
    memory_mib: int
    cpus: float
    processes: int

    @property
    def memory_bytes(self) -> int:
        return self.memory_mib * 1024 * 1024


def load_policy(path: Path | None = None) -> dict[str, Any]:
    return yaml.safe_load((path or POLICIES_DIR / "sandbox.yaml").read_text())


def limits_for(project: str, policy: dict[str, Any] | None = None) -> Limits:
    """The project's limits: its own entry over the defaults."""
    policy = policy or load_policy()
    values = {**policy["limits"]["default"],
              **(policy["limits"].get("projects") or {}).get(project, {})}
    limits = Limits(int(values["memory_mib"]), float(values["cpus"]), int(values["processes"]))
    if limits.memory_mib < 64 or limits.cpus <= 0 or limits.processes < 16:
        raise ValueError(f"sandbox limits of {project} are too small to run a server: {limits}")
    return limits
