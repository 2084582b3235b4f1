"""The retention policy, ``policies/retention.yaml``, as the destruction reads it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from ..config import POLICIES_DIR

FILE = "retention.yaml"


@dataclass(frozen=True)
class RetentionPolicy:
    """How long ended projects are kept, what goes, where certificates are kept."""

    version: int
    sha256: str
    retention: timedelta
    prefixes: tuple[tuple[str, str], ...]  # (bucket, prefix template with {project})
    quarantine: bool
    certificate_prefix: str
    certificate_keep: timedelta
    locked_retry: timedelta

    def project_prefixes(self, project: str) -> list[tuple[str, str]]:
        return [(bucket, prefix.format(project=project)) for bucket, prefix in self.prefixes]

    def summary(self) -> dict[str, Any]:
        """What a certificate says about the policy it was made under."""
        return {"file": f"policies/{FILE}", "version": self.version, "sha256": self.sha256,
                "project_retention_days": self.retention.days,
                "locations": [f"{b}/{p}" for b, p in self.prefixes],
                "quarantine": self.quarantine}


@cache
def load_policy(policies_dir: Path = POLICIES_DIR) -> RetentionPolicy:
    raw_bytes = (policies_dir / FILE).read_bytes()
    raw = yaml.safe_load(raw_bytes)
    projects, certificates = raw["projects"], raw["certificates"]
    days = int(projects["retention_days"])
    if days < 0:
        raise ValueError(f"{FILE}: projects.retention_days must be 0 or more")
    prefixes = tuple((p["bucket"], p["prefix"]) for p in projects["prefixes"])
    if any("{project}" not in prefix for _, prefix in prefixes):
        raise ValueError(f"{FILE}: every project prefix must contain {{project}}")
    return RetentionPolicy(
        version=int(raw["version"]), sha256=hashlib.sha256(raw_bytes).hexdigest(),
        retention=timedelta(days=days), prefixes=prefixes,
        quarantine=bool(projects.get("quarantine", True)),
        certificate_prefix=str(certificates["prefix"]),
        certificate_keep=timedelta(days=int(certificates["keep_days"])),
        locked_retry=timedelta(minutes=int(raw.get("locked_retry_minutes", 60))))
