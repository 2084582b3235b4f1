"""Object reads from MinIO's own audit log, sent to the control plane's webhook.

MinIO posts its entries, one JSON object per S3 call, in batches of one object a line
(its ``audit_webhook`` target; internal/logger/target/http encodes each entry with a JSON
encoder, which ends each with a newline, and replays the same bytes from its queue folder)
with the token it was configured with in ``Authorization``. The webhook refuses anything
without that token (``SAFEZONE_RECORDS_TOKEN``, compared in constant time), keeps only
the data reads the policy names (``minio`` in policies/records.yaml) and maps the access
key to the session grant (user, project), or to the data steward whose de-identification
run it belongs to (the run's ``deid.run_started`` record), and the bucket and key to the
dataset. No S3 call passes through the control plane.

A batch MinIO resends (its queue keeps a batch until an answer of 2xx reached it) is
recorded once: a read already recorded with the same request id, time, key and object is
skipped. A read whose source address MinIO may have taken from a forwarding header the
client sent (policy ``minio.forwarding_headers``) is recorded as ``unverified:<claimed>``.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db import take_write_turn
from ..errors import InvalidInput, NotAuthenticated
from ..models import AccessRecord, Dataset, SessionGrant
from ..zone import Zone
from . import chain
from .policy import RecordsPolicy, load_policy

TOKEN_VARIABLE = "SAFEZONE_RECORDS_TOKEN"
# the audit event (and record) of a de-identification run's start, with its access key
RUN_STARTED = "deid.run_started"
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
    """One entry, one entry a line (MinIO's batches, also from its queue), or a list."""
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


def _source(item: dict[str, Any], policy: RecordsPolicy) -> tuple[str, dict[str, Any]]:
    """The read's source address and what the detail says about it. MinIO's
    ``remotehost`` is the connection's address unless it came from a forwarding header;
    when the client sent one, the address is believed only if it appears in none of them
    (MinIO then ignored the headers: the connection's address, the header-free truth)."""
    remote = str(item.get("remotehost") or "").strip()
    headers = item.get("requestHeader")
    sent = {str(k): str(v)[:200] for k, v in (headers or {}).items()
            if str(k).lower() in policy.forwarding_headers} if isinstance(headers, dict) else {}
    if not sent:
        return remote[:64], {}
    bare = remote.strip("[]")
    if bare and _is_address(bare) and not any(bare in value for value in sent.values()):
        return remote[:64], {"forwarding_headers": sorted(sent)}
    return f"unverified:{remote}"[:64], {"source_unverified": True, "forwarded": sent}


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _outcome(status: int) -> str:
    if 200 <= status < 300:
        return "ok"
    return "denied" if status in (401, 403) else "failed"


def _pipeline_runs(db: Session, keys: set[str]) -> dict[str, tuple[str, str]]:
    """Access key -> (steward, output dataset) of the de-identification runs that used
    these keys: each run's identity is recorded with its steward before it reads."""
    if not keys:
        return {}
    key_of = AccessRecord.detail["access_key"].as_string()
    rows = db.scalars(select(AccessRecord).where(AccessRecord.action == RUN_STARTED,
                                                 key_of.in_(sorted(keys))))
    return {str(r.detail["access_key"]): (r.account, str(r.detail.get("output") or ""))
            for r in rows}


def _owner(key: str, grants: dict[str, tuple[str, str, str]],
           runs: dict[str, tuple[str, str]]) -> tuple[str, str, dict[str, str]]:
    """Whose read it is: (account, project, what the detail says about it)."""
    if key in grants:
        return grants[key][1], grants[key][2], {}
    if key in runs:
        return runs[key][0], "", {"deid_output": runs[key][1]}
    return f"minio:{key or 'anonymous'}", "", {}


def entries_from(zone: Zone, items: list[dict[str, Any]]) -> list[chain.Entry]:
    """The records of the data reads among MinIO's entries."""
    policy = load_policy()
    reads = _reads(items, policy)
    if not reads:
        return []
    keys = {str(i.get("accessKey") or "") for i in reads}
    buckets = {str(i["api"].get("bucket")) for i in reads}
    with zone.sessions() as db:
        grants = {g.access_key: (g.id, g.user_name, g.project.name) for g in db.scalars(
            select(SessionGrant).where(SessionGrant.access_key.in_(keys)))}
        runs = _pipeline_runs(db, keys - set(grants))
        datasets = [(d.bucket, d.prefix, d.name) for d in db.scalars(
            select(Dataset).where(Dataset.bucket.in_(buckets)))]
    found = []
    for item in reads:
        api, key = item["api"], str(item.get("accessKey") or "")
        bucket, target = str(api.get("bucket")), str(api.get("object") or "")
        named = [d for d in datasets if d[0] == bucket and target.startswith(d[1])]
        dataset = max(named, key=lambda d: len(d[1]))[2] if named else bucket
        grant = grants.get(key)
        account, project, about_owner = _owner(key, grants, runs)
        status = int(api.get("statusCode") or 0)
        detail = {"api": api.get("name"), "status": status, "bytes": int(api.get("tx") or 0),
                  "request_id": str(item.get("requestID") or "")[:64], "access_key": key,
                  "grant": grant[0] if grant else "",
                  "user_agent": str(item.get("userAgent") or "")[:120]}
        source, about_source = _source(item, policy)
        found.append(chain.Entry(
            account=account, action="object.read", at=_time(item.get("time")),
            source=source, project=project, dataset=dataset, target=target,
            outcome=_outcome(status), detail={**detail, **about_owner, **about_source}))
    return found


def require_token(authorization: str) -> None:
    """401 (nothing read, nothing written) without the webhook's token."""
    if not authorised(authorization):
        raise NotAuthenticated("the records webhook needs its token (토큰 필요)")


def _identity(entry: chain.Entry) -> tuple[str, str, str, str]:
    detail = entry.detail
    return (chain.stamp(entry.at), str(detail.get("request_id") or ""),
            str(detail.get("access_key") or ""), entry.target)


def add_once(zone: Zone, entries: list[chain.Entry]) -> int:
    """Append the reads not recorded yet (MinIO resends a batch whose answer it did not
    get), in one transaction holding the write turn, so two posts cannot both add one."""
    if not entries:
        return 0
    with zone.sessions() as db, db.begin():
        take_write_turn(db)
        stamps = {chain.stamp(e.at) for e in entries}
        known = {(row.ts, str((row.detail or {}).get("request_id") or ""),
                  str((row.detail or {}).get("access_key") or ""), row.target)
                 for row in db.scalars(select(AccessRecord).where(
                     AccessRecord.action == "object.read", AccessRecord.ts.in_(stamps)))}
        fresh = []
        for entry in entries:
            identity = _identity(entry)
            if identity not in known:  # once per request, also within the batch
                known.add(identity)
                fresh.append(entry)
        chain.append(db, fresh)
    return len(fresh)


def ingest(zone: Zone, body: bytes) -> dict[str, int]:
    """Record the data reads of a body whose token was checked (``require_token``); the
    answer says how many were new, nothing else."""
    return {"recorded": add_once(zone, entries_from(zone, parse_entries(body)))}
