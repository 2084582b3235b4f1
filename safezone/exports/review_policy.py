"""The review policy (``policies/review.yaml``), with per-project overrides."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from ..config import POLICIES_DIR


@dataclass(frozen=True)
class ReviewPolicy:
    approvals_clean: int
    approvals_flagged: int
    max_reviewers: int
    download_expiry_hours: float
    max_downloads: int

    def approvals_needed(self, flagged: bool) -> int:
        return self.approvals_flagged if flagged else self.approvals_clean


@cache
def _raw(policies_dir: Path) -> dict[str, Any]:
    return yaml.safe_load((policies_dir / "review.yaml").read_text())


def review_policy(project: str, policies_dir: Path = POLICIES_DIR) -> ReviewPolicy:
    raw = dict(_raw(policies_dir))
    raw.update((raw.get("projects") or {}).get(project, {}))
    download = raw["download"]
    policy = ReviewPolicy(int(raw["approvals_clean"]), int(raw["approvals_flagged"]),
                          int(raw["max_reviewers"]), float(download["expiry_hours"]),
                          int(download["max_downloads"]))
    if not 1 <= policy.approvals_clean <= policy.approvals_flagged <= policy.max_reviewers:
        raise ValueError("review policy needs 1 <= approvals_clean <= approvals_flagged "
                         "<= max_reviewers")
    return policy
