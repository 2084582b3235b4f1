"""The access records' policy, ``policies/records.yaml``, read once."""

from __future__ import annotations

import fnmatch
import ipaddress
import os
from dataclasses import dataclass
from datetime import time
from functools import cache
from pathlib import Path

import yaml

from ..config import POLICIES_DIR

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Review:
    """What the monthly review flags as unusual."""

    start: time
    end: time
    working_days: frozenset[int]  # 0 = Monday
    outlier_factor: float
    outlier_min_reads: int
    baseline_days: int


@dataclass(frozen=True)
class RecordsPolicy:
    retention_days: int
    checkpoint_every_seconds: float
    buckets: tuple[str, ...]
    apis: frozenset[str]
    forwarding_headers: frozenset[str]  # lower case: headers MinIO takes a source from
    from_audit: tuple[str, ...]
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    review: Review

    def reads_bucket(self, bucket: str) -> bool:
        return any(fnmatch.fnmatchcase(bucket, pattern) for pattern in self.buckets)

    def carries(self, audit_action: str) -> bool:
        """Whether an audit event of this action is an access record too."""
        return any(audit_action.startswith(p) if p.endswith(".") else audit_action == p
                   for p in self.from_audit)


def _clock_time(text: str) -> time:
    return time.fromisoformat(str(text))


@cache
def load_policy(policies_dir: Path = POLICIES_DIR) -> RecordsPolicy:
    raw = yaml.safe_load((policies_dir / "records.yaml").read_text())
    review = raw["review"]
    days = [str(d).lower()[:3] for d in review["working_days"]]
    unknown = [d for d in days if d not in DAYS]
    if unknown:
        raise ValueError(f"policies/records.yaml: unknown working days {unknown}")
    extra = [p.strip() for p in os.environ.get("SAFEZONE_RECORDS_TRUSTED_PROXIES", "")
             .split(",") if p.strip()]
    retention = int(raw["retention_days"])
    if retention < 1:
        raise ValueError("policies/records.yaml: retention_days must be at least 1")
    return RecordsPolicy(
        retention_days=retention,
        checkpoint_every_seconds=float(raw.get("checkpoint_every_seconds", 300)),
        buckets=tuple(raw["minio"]["buckets"]),
        apis=frozenset(raw["minio"]["apis"]),
        forwarding_headers=frozenset(str(h).lower() for h in raw["minio"].get(
            "forwarding_headers", ["X-Forwarded-For", "X-Real-Ip", "Forwarded"])),
        from_audit=tuple(raw["from_audit"]),
        trusted_proxies=tuple(ipaddress.ip_network(n, strict=True)
                              for n in [*raw.get("trusted_proxies", []), *extra]),
        review=Review(
            start=_clock_time(review["working_hours"]["start"]),
            end=_clock_time(review["working_hours"]["end"]),
            working_days=frozenset(DAYS.index(d) for d in days),
            outlier_factor=float(review["outlier_factor"]),
            outlier_min_reads=int(review["outlier_min_reads"]),
            baseline_days=int(review["baseline_days"]),
        ),
    )
