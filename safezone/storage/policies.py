"""Render MinIO identity policies from the templates in ``policies/minio/``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from ..config import POLICIES_DIR
from ..errors import SafezoneError
from ..templating import fill
from .layout import load_layout


class PolicyViolation(SafezoneError):
    """A rendered policy would reach a bucket sessions must never reach."""

    status_code = 500


@dataclass(frozen=True)
class DatasetLocation:
    name: str
    bucket: str
    prefix: str


@cache
def _session_template(policies_dir: Path) -> dict[str, Any]:
    return yaml.safe_load((policies_dir / "minio" / "session.yaml").read_text())


def issuer_policy(policies_dir: Path = POLICIES_DIR) -> dict[str, Any]:
    """The parent identity's policy: the ceiling of every session policy."""
    return json.loads((policies_dir / "minio" / "issuer.json").read_text())


def session_ceiling(policies_dir: Path = POLICIES_DIR) -> dict[str, Any]:
    """The ceiling as the session policy of every temporary key: the issuer policy's
    data-plane statements (MinIO intersects it with the session parent's own policy)."""
    ceiling = issuer_policy(policies_dir)
    ceiling["Statement"] = [s for s in ceiling["Statement"]
                            if not any(a.startswith("admin:") for a in s["Action"])]
    return ceiling


def session_policy(project: str, user: str, datasets: list[DatasetLocation],
                   policies_dir: Path = POLICIES_DIR, *, networks: tuple[str, ...] = (),
                   excluded: tuple[str, ...] = ()) -> dict[str, Any]:
    """The policy of one session: its datasets read-only, its workspace and outbox; with
    ``networks``, every Allow holds only from there and never from ``excluded``."""
    template = _session_template(policies_dir)
    layout = load_layout(policies_dir)
    statements: list[dict[str, Any]] = []
    for index, dataset in enumerate(datasets):
        if not dataset.bucket.startswith(layout.dataset_prefixes["deidentified"]):
            raise PolicyViolation(
                f"dataset {dataset.name} lives in {dataset.bucket}, not a de-identified bucket"
            )
        values = {"project": project, "user": user, "bucket": dataset.bucket,
                  "prefix": dataset.prefix, "index": str(index)}
        rendered = fill(template["per_dataset"], values)
        if not dataset.prefix:  # a whole-bucket dataset: listing needs no prefix condition
            for statement in rendered:
                statement.pop("Condition", None)
        statements.extend(rendered)
    statements.extend(fill(template["fixed"], {"project": project, "user": user}))
    if networks:
        _add_condition(statements, _network_condition(template, networks, excluded))
    policy = {"Version": "2012-10-17", "Statement": statements}
    check_never_reaches_forbidden(policy, policies_dir)
    return policy


def _network_condition(template: dict[str, Any], networks: tuple[str, ...],
                       excluded: tuple[str, ...]) -> dict[str, Any]:
    """The template's ``network_condition`` filled in; an operator left with an empty list
    (no exclusions) is dropped."""
    filled = fill(template["network_condition"], {"networks": list(networks),
                                                  "excluded": list(excluded)})
    return {operator: keys for operator, keys in filled.items() if all(keys.values())}


def _add_condition(statements: list[dict[str, Any]], condition: dict[str, Any]) -> None:
    """Merge ``condition`` into every Allow statement (conditions AND); Deny stays as is."""
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        merged = statement.setdefault("Condition", {})
        for operator, keys in condition.items():
            held = merged.setdefault(operator, {})
            if set(keys) & set(held):
                raise PolicyViolation(f"statement {statement.get('Sid')} already has "
                                      f"{operator} on {sorted(set(keys) & set(held))}")
            held.update({key: list(value) for key, value in keys.items()})


def pipeline_policy(input_bucket: str, input_key: str, output_bucket: str,
                    policies_dir: Path = POLICIES_DIR) -> dict[str, Any]:
    """The policy of one de-identification run: read one raw object, write one dataset."""
    layout = load_layout(policies_dir)
    if not input_bucket.startswith(layout.dataset_prefixes["raw"]):
        raise PolicyViolation(f"pipeline input {input_bucket} is not a raw bucket")
    if not output_bucket.startswith(layout.dataset_prefixes["deidentified"]):
        raise PolicyViolation(f"pipeline output {output_bucket} is not a de-identified bucket")
    if any(c in input_key for c in "*?$"):
        raise PolicyViolation(f"input key {input_key!r} holds a policy wildcard")
    template = yaml.safe_load((policies_dir / "minio" / "deid-run.yaml").read_text())
    policy = {"Version": "2012-10-17", "Statement": fill(template["statements"], {
        "input_bucket": input_bucket, "input_key": input_key, "output_bucket": output_bucket})}
    if buckets_named(policy) != {input_bucket, output_bucket}:
        raise PolicyViolation("pipeline policy names buckets other than its input and output")
    return policy


def buckets_named(policy: dict[str, Any]) -> set[str]:
    """Every bucket a policy's resources name."""
    names = set()
    for statement in policy["Statement"]:
        resources = statement.get("Resource", [])
        for arn in [resources] if isinstance(resources, str) else resources:
            names.add(arn.removeprefix("arn:aws:s3:::").split("/", 1)[0])
    return names


def check_never_reaches_forbidden(policy: dict[str, Any], policies_dir: Path = POLICIES_DIR
                                  ) -> None:
    layout = load_layout(policies_dir)
    for statement in policy["Statement"]:
        if statement.get("Effect") != "Allow":
            continue
        for bucket in buckets_named({"Statement": [statement]}):
            if layout.is_forbidden_for_sessions(bucket) or "*" in bucket:
                raise PolicyViolation(f"session policy would reach bucket {bucket!r}")


def anchor_writer_policy(anchor_prefix: str, policies_dir: Path = POLICIES_DIR
                         ) -> dict[str, Any]:
    """The audit anchor writer's policy: ``s3:PutObject`` under the anchor prefix, only."""
    if not anchor_prefix or any(c in anchor_prefix for c in "*?$"):
        raise PolicyViolation(f"anchor prefix {anchor_prefix!r} is empty or holds a wildcard")
    return _single_purpose("anchor-writer.yaml", {"anchor_prefix": anchor_prefix}, "audit",
                           {"s3:PutObject"}, policies_dir)


def released_reader_policy(policies_dir: Path = POLICIES_DIR) -> dict[str, Any]:
    """The released reader's policy: ``s3:GetObject`` on the released bucket, only."""
    return _single_purpose("released-reader.yaml", {}, "released", {"s3:GetObject"},
                           policies_dir)


def _single_purpose(template: str, values: dict[str, str], bucket: str, actions: set[str],
                    policies_dir: Path) -> dict[str, Any]:
    """Render a one-bucket identity's policy; refuse it if it allows more than ``actions``
    on objects of ``bucket`` (a template edit cannot widen the identity unnoticed). Deny
    statements only narrow, so any are accepted."""
    raw = yaml.safe_load((policies_dir / "minio" / template).read_text())
    policy = {"Version": "2012-10-17", "Statement": fill(raw["statements"], values)}
    for statement in policy["Statement"]:
        if statement.get("Effect") == "Deny":
            continue
        granted = statement.get("Action", [])
        granted = {granted} if isinstance(granted, str) else set(granted)
        if (statement.get("Effect") != "Allow" or not granted or not granted <= actions
                or set(statement) - {"Sid", "Effect", "Action", "Resource"}):
            raise PolicyViolation(f"{template} may only allow {sorted(actions)}")
    if buckets_named({"Statement": [s for s in policy["Statement"]
                                    if s.get("Effect") != "Deny"]}) != {bucket}:
        raise PolicyViolation(f"{template} names buckets other than {bucket}")
    return policy
