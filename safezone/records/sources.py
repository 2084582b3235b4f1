"""Where records come from inside the control plane: audit events that are accesses
(carried into the records in the same transaction), hub logins, and the source address of
the call being served."""

from __future__ import annotations

import ipaddress
import re
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from ..clock import as_utc
from ..errors import InvalidInput
from ..models import AuditEvent, ExportRequest
from ..naming import check_user_name
from ..permissions import Identity, require
from ..zone import Zone
from . import chain
from .policy import load_policy

_SOURCE: ContextVar[str] = ContextVar("safezone_record_source", default="")
SUBJECT_USER = re.compile(r"/user:([^/]+)$")
# what of an audit event's data a record keeps (never free text or keys' secrets)
# why the hub refused a login it reports: the name is bound to another IdP subject
LOGIN_REFUSALS = ("idp_subject",)
KEPT = ("grant", "server", "reason", "count", "sha256", "before", "after", "decision",
        "round", "bom", "why", "access_key", "output", "through")


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        found = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped:
        return found.ipv4_mapped
    return found


def source_of(peer: str, forwarded_for: str) -> str:
    """The caller's address: the TCP peer, or the last X-Forwarded-For hop when the peer
    is a trusted proxy (the hub's configurable-http-proxy appends what it saw)."""
    seen = _address(peer)
    if seen is None:
        return ""
    if forwarded_for and any(seen in net for net in load_policy().trusted_proxies):
        hop = _address(forwarded_for.split(",")[-1])
        if hop is not None:
            return str(hop)
    return str(seen)


class SourceAddress:
    """ASGI middleware: remembers each HTTP call's source address for the records made
    while serving it (a context variable, which request threads inherit)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client") or ("", 0)
        forwarded = b",".join(v for k, v in scope.get("headers", [])
                              if k == b"x-forwarded-for").decode("latin-1")
        token = _SOURCE.set(source_of(client[0] or "", forwarded))
        try:
            await self.app(scope, receive, send)
        finally:
            _SOURCE.reset(token)


def current_source() -> str:
    return _SOURCE.get()


def install(zone: Zone) -> None:
    """Carry the zone's access-like audit events into the records (once per zone)."""
    if _carry_audit_event not in zone.carriers:
        zone.carriers.append(_carry_audit_event)


def _carry_audit_event(db: Session, audited: AuditEvent) -> None:
    if load_policy().carries(audited.action):
        chain.append(db, [from_audit(db, audited)])


def from_audit(db: Session, audited: AuditEvent) -> chain.Entry:
    """The record of an audit event: the person concerned (the user a session is about,
    else whoever acted), the project and data, the address of the call."""
    data = audited.data or {}
    subject = audited.subject
    user = SUBJECT_USER.search(subject)
    project = str(data.get("project") or "")
    if subject.startswith("project:"):
        project = subject.removeprefix("project:").split("/", 1)[0]
    elif subject.startswith("export:") and not project:
        request = db.get(ExportRequest, subject.removeprefix("export:"))
        project = request.project.name if request else ""
    dataset = ",".join(data.get("datasets") or [])
    if subject.startswith("dataset:"):
        dataset = subject.removeprefix("dataset:")
    target = str(data.get("file") or data.get("key") or "")
    if subject.startswith(("export:", "application:")):
        target = f"{subject}/{target}" if target else subject
    elif subject.startswith("records:"):  # a review of the records of a month
        target = subject
    detail = {"audit_seq": audited.seq, "actor": audited.actor,
              **{k: data[k] for k in KEPT if k in data}}
    return chain.Entry(account=user.group(1) if user else audited.actor,
                       action=audited.action, at=as_utc(datetime.fromisoformat(audited.ts)),
                       source=current_source(), project=project, dataset=dataset,
                       target=target, detail=detail)


def record_login(zone: Zone, actor: Identity, user: str, source: str,
                 authenticator: str = "", refused: str = "", subject: str = ""
                 ) -> dict[str, Any]:
    """A hub login, told by the hub's post_auth_hook with the spawner's token; or a login
    the hub refused (``refused``: why, one of ``LOGIN_REFUSALS``; ``subject``: the
    identity provider's ``sub`` of whoever tried), recorded as denied."""
    require("records.login", actor)
    check_user_name(user)
    address = _address(source)
    if address is None:
        raise InvalidInput("source must be an IP address (접속 주소 오류)")
    if refused and refused not in LOGIN_REFUSALS:
        raise InvalidInput(f"refused must be one of {list(LOGIN_REFUSALS)}")
    detail = {"via": "hub", "hub": current_source(), "authenticator": authenticator[:80]}
    if refused:
        detail |= {"refused": refused, "idp_subject": subject[:255]}
    chain.add(zone, [chain.Entry(account=user, action="login", at=zone.now(),
                                 source=str(address), outcome="denied" if refused else "ok",
                                 detail=detail)])
    return {"recorded": 1}
