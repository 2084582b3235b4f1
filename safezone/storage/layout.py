"""The bucket layout of the zone, loaded from ``policies/minio/buckets.yaml``."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from ..config import POLICIES_DIR


@dataclass(frozen=True)
class Layout:
    buckets: dict[str, bool]  # name -> object lock
    dataset_prefixes: dict[str, str]  # classification -> bucket prefix
    never_for_sessions: tuple[str, ...]

    def is_forbidden_for_sessions(self, bucket: str) -> bool:
        return any(fnmatch.fnmatchcase(bucket, pattern) for pattern in self.never_for_sessions)


@cache
def load_layout(policies_dir: Path = POLICIES_DIR) -> Layout:
    raw = yaml.safe_load((policies_dir / "minio" / "buckets.yaml").read_text())
    return Layout(
        buckets={name: bool(spec.get("object_lock")) for name, spec in raw["buckets"].items()},
        dataset_prefixes=dict(raw["dataset_bucket_prefixes"]),
        never_for_sessions=tuple(raw["never_for_sessions"]),
    )
