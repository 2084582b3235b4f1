"""What administrators read: the parts of destructions and their certificates."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import select

from ..errors import NotFound, StorageError
from ..models import Destruction
from ..permissions import Identity, require
from ..zone import Zone
from . import certificate
from .service import summary


def list_destructions(zone: Zone, actor: Identity, kind: str = "", subject: str = ""
                      ) -> list[dict[str, Any]]:
    """Every part, newest first (``destruction.read``), optionally of one subject."""
    require("destruction.read", actor)
    query = select(Destruction)
    if kind:
        query = query.where(Destruction.kind == kind)
    if subject:
        query = query.where(Destruction.subject == subject)
    with zone.sessions() as db:
        rows = db.scalars(query.order_by(Destruction.started_at.desc(), Destruction.part.desc()))
        return [summary(r) for r in rows]


def read_certificate(zone: Zone, actor: Identity, destruction_id: str) -> dict[str, Any]:
    """One part with its certificate as recorded in the database."""
    require("destruction.read", actor)
    with zone.sessions() as db:
        row = db.get(Destruction, destruction_id)
        if row is None:
            raise NotFound(f"no destruction {destruction_id!r} (파기 기록 없음)")
        return {**summary(row), "certificate": row.certificate}


def stored_certificate(zone: Zone, actor: Identity, destruction_id: str) -> tuple[str, bytes]:
    """(file name, bytes) of the locked copy in the audit bucket, checked against the
    SHA-256 the database and the audit trail hold."""
    found = read_certificate(zone, actor, destruction_id)
    if not found["key"] or found["state"] != "stored":
        raise NotFound(f"destruction {destruction_id} has no stored certificate yet "
                       "(확인서 미발급)")
    body = certificate.read_stored(zone.broker.s3, found["key"])
    if hashlib.sha256(body).hexdigest() != found["sha256"]:
        raise StorageError(f"the stored certificate {found['key']} does not match its "
                           "recorded SHA-256 (확인서 불일치)")
    return found["key"].rsplit("/", 1)[-1], body
