"""Release, revocation and download of approved files.

What is released is the form the reviewer saw (images re-encoded at check time), checked
against its recorded hash. Downloads stream through the control plane, read by an identity
whose only right is ``GetObject`` on ``released``: no MinIO URL reaches a browser.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from .. import failpoints
from ..checks.findings import load_rules
from ..checks.runner import IMAGE_KINDS, is_evidence, table_index
from ..clock import as_utc
from ..errors import Conflict, InvalidInput, NotFound, PermissionDenied
from ..models import DownloadLink, ExportRequest, ExportStatus, ReleasedIndex
from ..permissions import SYSTEM, Identity, allowed, require
from ..zone import Zone
from .review_policy import review_policy
from .service import QUARANTINE, RELEASED, S, authorize, describe, get, move, subject_of

log = logging.getLogger(__name__)

CHECK_RECORD = "safezone-check-record.json"


def release(zone: Zone, actor: Identity, request_id: str, *, as_system: bool = False
            ) -> dict[str, Any]:
    """Copy the approved release forms to ``released``; all files or none.

    ``as_system``: the tally approved the request and the control plane releases it;
    otherwise an administrator retries a release that failed.
    """
    limit = load_rules().files["max_file_bytes"]
    with zone.sessions() as db:
        request = get(db, request_id)
        if not as_system:
            authorize(db, zone, actor, request, "export.release")
        if request.status is not ExportStatus.APPROVED:
            raise Conflict(f"cannot release a request that is {request.status.value}")
        unfit = [f.path for f in request.files
                 if not f.release_form_key and not is_evidence(f.path)]
        if unfit:
            raise Conflict(f"{', '.join(unfit)} could not be made fit for release (e.g. an "
                           "image that cannot be re-encoded); nothing was released")
        files = [(f.id, f.path, f.kind, f.release_form_key, f.release_sha256)
                 for f in request.files
                 if f.release_form_key]
        record = request.check_record or {}
        project_id = request.project_id
    written: dict[int, str] = {}
    indexes: list[tuple[str, list[dict]]] = []
    try:
        for file_id, path, kind, source, digest in files:
            data = zone.broker.read_object(QUARANTINE, source, limit)
            if hashlib.sha256(data).hexdigest() != digest:
                raise Conflict(f"the reviewed form of {path} no longer matches its hash")
            key = f"{request_id}/{file_id}/{released_path(path, kind)}"  # never collides
            zone.broker.write_object(RELEASED, key, data)
            written[file_id] = key
            failpoints.reach("release.file_copied")  # between the copies of a release
            indexes.append((path, table_index(path, data)))
        zone.broker.write_object(RELEASED, f"{request_id}/{CHECK_RECORD}",
                                 json.dumps(record, ensure_ascii=False, indent=1).encode())
    except Exception:
        for key in written.values():
            zone.broker.delete_object(RELEASED, key)
        raise
    failpoints.reach("release.copied")
    try:
        return _mark_released(zone, actor, request_id, project_id, written, indexes,
                              as_system)
    except Exception:
        _unless_released(zone, request_id, written)
        raise


def _unless_released(zone: Zone, request_id: str, written: dict[int, str]) -> None:
    """The copies of a release whose transition failed go, unless the request is released
    after all (a concurrent release wrote the same keys and won): no released file of a
    request that is not released."""
    try:
        with zone.sessions() as db:
            if get(db, request_id).status is ExportStatus.RELEASED:
                return
        for key in written.values():
            zone.broker.delete_object(RELEASED, key)
        zone.broker.delete_object(RELEASED, f"{request_id}/{CHECK_RECORD}")
    except Exception:  # MinIO or the database away: the sweeper's release retry fixes it
        log.warning("could not remove the copies of unreleased request %s", request_id)


def _mark_released(zone: Zone, actor: Identity, request_id: str, project_id: int,
                   written: dict[int, str], indexes: list[tuple[str, list[dict]]],
                   as_system: bool) -> dict[str, Any]:
    with zone.unit_of_work() as db:
        request = get(db, request_id, lock=True)
        for f in request.files:
            f.released_key = written.get(f.id)
        now = zone.now()
        for path, tables in indexes:
            for table in tables:
                db.add(ReleasedIndex(project_id=project_id, request_id=request_id, path=path,
                                     index=table, released_at=now))
        move(zone, db, SYSTEM if as_system else actor, request, "release",
             why="approved by independent review", files=sorted(written.values()),
             sha256={f.path: f.release_sha256 for f in request.files if f.released_key})
        return describe(request, actor, subject_of(db, zone, actor, request))


MAX_REASON = 2000
# an approved request whose release did not finish is released again after this long
RELEASE_RETRY_AFTER = timedelta(seconds=15)
_last_retry: dict[str, float] = {}


def release_approved(zone: Zone, actor: Identity = SYSTEM) -> int:
    """Approved requests whose release did not finish (MinIO was away, or the process died
    between the copies and the transition) are released again by the system, each at most
    once every RELEASE_RETRY_AFTER. Read-only when none waits."""
    with zone.sessions() as db:
        due = list(db.scalars(select(ExportRequest.id).where(
            ExportRequest.status == S.APPROVED,
            ExportRequest.updated_at <= zone.now() - RELEASE_RETRY_AFTER)))
    retried = 0
    for request_id in due:
        if time.monotonic() - _last_retry.get(request_id, -1e9) < \
                RELEASE_RETRY_AFTER.total_seconds():
            continue
        _last_retry[request_id] = time.monotonic()
        retried += 1
        try:
            release(zone, actor, request_id, as_system=True)
            _last_retry.pop(request_id, None)
        except Exception as exc:  # an administrator sees it approved, unreleased
            log.warning("release of %s failed again: %s", request_id, exc)
    return retried


def revoke(zone: Zone, actor: Identity, request_id: str, reason: str) -> dict[str, Any]:
    """Withdraw a release: links stop working and the released copies are removed."""
    if not reason.strip():
        raise InvalidInput("say why the release is revoked")
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"the reason is longer than {MAX_REASON} characters")
    with zone.unit_of_work() as db:
        request = get(db, request_id, lock=True)
        seen = authorize(db, zone, actor, request, "export.revoke")
        move(zone, db, actor, request, "revoke", reason=reason)
        for link in db.scalars(select(DownloadLink).where(DownloadLink.request_id == request_id)):
            link.revoked = True
        keys = [f.released_key for f in request.files if f.released_key]
        view = describe(request, actor, seen)
    for key in keys:
        zone.broker.delete_object(RELEASED, key)
    return view


def revocable(zone: Zone, actor: Identity, limit: int = 100) -> list[dict[str, Any]]:
    """The most recent releases (at most ``limit``) this caller may revoke."""
    require("export.queue", actor)
    with zone.sessions() as db:
        rows = db.scalars(select(ExportRequest).where(ExportRequest.status == S.RELEASED)
                          .order_by(ExportRequest.updated_at.desc()).limit(limit))
        out = []
        for request in rows:
            seen = subject_of(db, zone, actor, request)
            if allowed("export.revoke", actor, seen):
                out.append(describe(request, actor, seen))
        return out


def create_link(zone: Zone, actor: Identity, request_id: str, file_id: int) -> dict[str, Any]:
    """A counted, expiring, revocable link for the requester's browser session."""
    with zone.unit_of_work() as db:
        request = get(db, request_id, lock=True)
        authorize(db, zone, actor, request, "export.link")
        target = next((f for f in request.files if f.id == file_id and f.released_key), None)
        if target is None:
            raise NotFound(f"file {file_id} was not released in {request_id}")
        policy = review_policy(request.project.name)
        token = secrets.token_urlsafe(32)
        expires = zone.now() + timedelta(hours=policy.download_expiry_hours)
        db.add(DownloadLink(token_hash=_digest(token), request_id=request_id, file_id=file_id,
                            expires_at=expires, max_downloads=policy.max_downloads))
        zone.record(db, actor, "export.link_created", f"export:{request_id}",
                    file=target.path, expires_at=expires.isoformat())
        return {"token": token, "expires_at": expires.isoformat(),
                "max_downloads": policy.max_downloads, "file": target.path}


BOM = b"\xef\xbb\xbf"  # UTF-8 byte order mark: tells Excel a CSV is UTF-8


@dataclass(frozen=True)
class Download:
    """One download: the released bytes (``chunks``, ``size`` of them), served after
    ``prefix`` (a BOM, when asked for one) as ``media_type``."""

    name: str
    size: int
    chunks: Iterator[bytes]
    media_type: str = "application/octet-stream"
    prefix: bytes = b""


def redeem_link(zone: Zone, actor: Identity, token: str, bom: bool = False) -> Download:
    """Count and audit one download; the bytes stream from ``released``.

    ``bom``: serve a CSV after a UTF-8 byte order mark (for Excel), unless it already
    starts with one. The stored object is never changed: the audit event keeps the SHA-256
    of the released bytes and says ``bom: true`` when three bytes (EF BB BF) were put in
    front of them, so the bytes served are the BOM followed by exactly the released bytes.
    """
    if not token or len(token) > 100:
        raise InvalidInput("send the download token from the request page")
    chunks: Iterator[bytes] | None = None
    try:
        with zone.unit_of_work() as db:
            link = db.scalar(select(DownloadLink)
                             .where(DownloadLink.token_hash == _digest(token))
                             .with_for_update())
            if link is None:
                raise NotFound("unknown download link")
            request = get(db, link.request_id)
            require("export.download", actor, subject_of(db, zone, actor, request))
            if link.revoked:
                raise PermissionDenied("this download link was revoked (링크 회수됨)")
            if as_utc(link.expires_at) <= zone.now():
                raise PermissionDenied("this download link has expired (링크 만료)")
            if link.downloads >= link.max_downloads:
                raise PermissionDenied("this link reached its download limit "
                                       "(다운로드 횟수 초과)")
            link.downloads += 1
            target = next(f for f in request.files if f.id == link.file_id)
            key = target.released_key
            name = key.rsplit("/", 1)[-1]
            csv = target.kind == "csv" and name.lower().endswith(".csv")
            size, chunks = zone.broker.stream_released(key)
            first = next(chunks, b"")
            prefix = BOM if bom and csv and not first.startswith(BOM) else b""
            zone.record(db, actor, "export.downloaded", f"export:{request.id}",
                        file=target.path, count=link.downloads, sha256=target.release_sha256,
                        bom=bool(prefix), why="download")
    except BaseException:
        if chunks is not None:
            chunks.close()  # gives MinIO's connection back
        raise
    return Download(name, size, _chain(first, chunks),
                    "text/csv; charset=utf-8" if csv else "application/octet-stream", prefix)


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    try:
        if first:
            yield first
        yield from rest
    finally:
        rest.close()  # type: ignore[attr-defined]


def released_path(path: str, kind: str | None) -> str:
    """The name a release form goes out under: images are released as their PNG
    re-encoding, so a JPEG's form is named ``.png`` (the name says what the bytes are)."""
    if kind in IMAGE_KINDS and not path.lower().endswith(".png"):
        stem = path.rsplit(".", 1)[0] if "." in path.rsplit("/", 1)[-1] else path
        return f"{stem}.png"
    return path


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
