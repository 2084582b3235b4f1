"""Object reads from MinIO's own audit log, sent to the control plane's webhook.

MinIO posts one JSON object per S3 call (its ``audit_webhook`` target) with the token it
was configured with in ``Authorization``. The webhook refuses anything without that token
(``SAFEZONE_RECORDS_TOKEN``, compared in constant time), keeps only the data reads the
policy names (``minio`` in policies/records.yaml) and maps the access key to the session
grant (user, project) and the bucket and key to the dataset. No S3 call passes through the
control plane.
"""

from __future__ import annotations

import hmac
import json
import os
import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from ..errors import InvalidInput, NotAuthenticated
from ..models import Dataset, SessionGrant
from ..zone import Zone
from . import chain
from .policy import RecordsPolicy, load_policy

TOKEN_VARIABLE = "SAFEZONE_RECORDS_TOKEN"
FRACTION = re.compile(r"(\.\d{1,6})\d*")


def expected_token() -> str:
    """The token MinIO sends (MINIO_AUDIT_WEBHOOK_AUTH_TOKEN_<id>); empty: refuse all."""
    return os.environ.get(TOKEN_VARIABLE, "")


def authorised(header: str) -> bool:
    """``Authorization`` is the token itself (MinIO sends it as configured) or
    ``Bearer <token>``; compared in constant time, never logged."""
    expected = expected_token().encode()
    sent = header.strip()
    scheme, _, rest = sent.partition(" ")
    candidate = rest.strip() if scheme.lower() == "bearer" else sent
    return bool(expected) and hmac.compare_digest(candidate.encode(), expected)


def parse_entries(body: bytes) -> list[dict[str, Any]]:
    """One entry, a list of entries, or one entry a line (batches)."""
    try:
        text = body.decode()
        try:
            whole = json.loads(text)
            items = whole if isinstance(whole, list) else [whole]
        except json.JSONDecodeError:
            items = [json.loads(line) for line in text.splitlines() if line.strip()]
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidInput("the body is not MinIO audit JSON") from None
    if not all(isinstance(item, dict) for item in items):
        raise InvalidInput("the body is not MinIO audit JSON")
    return items


def _time(text: Any) -> datetime:
    try:
        moment = datetime.fromisoformat(FRACTION.sub(r"\1", str(text)).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput("a MinIO audit entry has no valid time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _reads(items: list[dict[str, Any]], policy: RecordsPolicy) -> list[dict[str, Any]]:
    return [item for item in items
            if isinstance(item.get("api"), dict)
            and item["api"].get("name") in policy.apis
            and policy.reads_bucket(str(item["api"].get("bucket") or ""))]


def _outcome(status: int) -> str:
    if 200 <= status < 300:
        return "ok"
    return "denied" if status in (401, 403) else "failed"


def entries_from(zone: Zone, items: list[dict[str, Any]]) -> list[chain.Entry]:
    """The records of the data reads among MinIO's entries."""
    reads = _reads(items, load_policy())
    if not reads:
        return []
    keys = {str(i.get("accessKey") or "") for i in reads}
    buckets = {str(i["api"].get("bucket")) for i in reads}
    with zone.sessions() as db:
        grants = {g.access_key: (g.id, g.user_name, g.project.name) for g in db.scalars(
            select(SessionGrant).where(SessionGrant.access_key.in_(keys)))}
        datasets = [(d.bucket, d.prefix, d.name) for d in db.scalars(
            select(Dataset).where(Dataset.bucket.in_(buckets)))]
    found = []
    for item in reads:
        api, key = item["api"], str(item.get("accessKey") or "")
        bucket, target = str(api.get("bucket")), str(api.get("object") or "")
        named = [d for d in datasets if d[0] == bucket and target.startswith(d[1])]
        dataset = max(named, key=lambda d: len(d[1]))[2] if named else bucket
        grant = grants.get(key)
        status = int(api.get("statusCode") or 0)
        detail = {"api": api.get("name"), "status": status, "bytes": int(api.get("tx") or 0),
                  "request_id": str(item.get("requestID") or "")[:64], "access_key": key,
                  "grant": grant[0] if grant else "",
                  "user_agent": str(item.get("userAgent") or "")[:120]}
        found.append(chain.Entry(
            account=grant[1] if grant else f"minio:{key or 'anonymous'}",
            action="object.read", at=_time(item.get("time")),
            source=str(item.get("remotehost") or "")[:64],
            project=grant[2] if grant else "", dataset=dataset, target=target,
            outcome=_outcome(status), detail=detail))
    return found


def require_token(authorization: str) -> None:
    """401 (nothing read, nothing written) without the webhook's token."""
    if not authorised(authorization):
        raise NotAuthenticated("the records webhook needs its token (토큰 필요)")


def ingest(zone: Zone, body: bytes) -> dict[str, int]:
    """Record the data reads of a body whose token was checked (``require_token``); the
    answer says how many, nothing else."""
    entries = entries_from(zone, parse_entries(body))
    return {"recorded": chain.add(zone, entries)}
