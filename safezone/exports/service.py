"""Export requests: drafting, freezing on submit, withdrawing, reading.

State changes go through ``states.next_state``; who may act through the permission table
(``permissions.require`` with the subject from :func:`subject_of`); every change is
audited. Checks run in the background (``checking``), the review and the release live in
``review`` and ``release``.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..checks.findings import load_rules
from ..checks.runner import admissible, is_evidence
from ..errors import Conflict, InvalidInput, NotFound
from ..models import ExportFile, ExportRequest, ExportStatus
from ..permissions import Identity, Subject, allowed, relations, require
from ..projects import get_project
from ..standing import standing
from ..storage.broker import ObjectMissing, ObjectTooLarge
from ..zone import Zone
from .paths import check_outbox_path
from .states import REVIEW_OPEN, TERMINAL, next_state

log = logging.getLogger(__name__)
S = ExportStatus
OUTBOX, QUARANTINE, RELEASED = "outbox", "egress-quarantine", "released"
SNIFF_BYTES = 64 * 1024
MAX_TITLE, MAX_JUSTIFICATION, MAX_GROUP = 200, 4000, 100
ZONE_TEXT = ("내부에서 작성됨 — 노트북과 심사자에게만 보입니다 / written inside the zone — "
             "shown in the notebook and to reviewers")


# -- helpers -------------------------------------------------------------------------------
def get(db: Session, request_id: str, *, lock: bool = False) -> ExportRequest:
    """The request; ``lock`` holds its row until the transaction ends (PostgreSQL), so
    concurrent votes, withdrawals and releases of one request take turns."""
    if len(request_id) > 32:
        request = None
    else:
        if lock:  # the row alone: FOR UPDATE may not reach the joined project
            db.execute(select(ExportRequest.id).where(ExportRequest.id == request_id)
                       .with_for_update())
        request = db.get(ExportRequest, request_id)
    if request is None:
        raise NotFound(f"no export request {request_id!r} (반출 요청 없음)")
    return request


def subject_of(db: Session, zone: Zone, actor: Identity, request: ExportRequest) -> Subject:
    """The request as the permission table sees it, from ``actor``'s side."""
    return standing(db, zone.now(), request.project_id, actor, requester=request.requester,
                    state=request.status.value)


def authorize(db: Session, zone: Zone, actor: Identity, request: ExportRequest,
              action: str) -> Subject:
    """Refuse ``action`` unless the table allows it; the subject, for :func:`describe`."""
    seen = subject_of(db, zone, actor, request)
    require(action, actor, seen)
    return seen


def move(zone: Zone, db: Session, actor: Identity, request: ExportRequest, action: str,
         **details: Any) -> None:
    """Take one transition of the state machine and audit it."""
    before = request.status
    request.status = next_state(action, request.status)
    request.updated_at = zone.now()
    zone.record(db, actor, f"export.{action}", f"export:{request.id}",
                project=request.project.name, before=before.value,
                after=request.status.value, **details)


def outbox_key(project: str, requester: str, path: str) -> str:
    return f"{project}/{requester}/{path}"


def _text(value: Any, limit: int, what: str) -> str:
    text = str(value or "")
    if len(text) > limit:
        raise InvalidInput(f"{what} is longer than {limit} characters ({what} 길이 초과)")
    return text


def _clean_files(files: list[dict[str, str]], limit: int) -> list[dict[str, str]]:
    if not files:
        raise InvalidInput("choose at least one file from your outbox")
    if len(files) > limit:
        raise InvalidInput(f"at most {limit} files per request")
    seen, clean = set(), []
    for item in files:
        path = check_outbox_path(item.get("path", ""))
        if path in seen:
            raise InvalidInput(f"file {path!r} is listed twice")
        seen.add(path)
        clean.append({"path": path, "group": _text(item.get("group"), MAX_GROUP, "group"),
                      "justification": _text(item.get("justification"), MAX_JUSTIFICATION,
                                             "justification")})
    return clean


# -- researcher ----------------------------------------------------------------------------
def outbox_listing(zone: Zone, actor: Identity, project_name: str) -> list[dict[str, Any]]:
    """The files the caller may choose from: ``outbox/<project>/<user>/``."""
    with zone.sessions() as db:
        project = get_project(db, project_name)
        require("export.outbox", actor, standing(db, zone.now(), project.id, actor))
    prefix = f"{project_name}/{actor.name}/"
    return [{"path": key.removeprefix(prefix), "size": size}
            for key, size in zone.broker.list_keys(OUTBOX, prefix)]


def create_request(zone: Zone, actor: Identity, project_name: str, title: str,
                   files: list[dict[str, str]]) -> dict[str, Any]:
    """A draft request over files of the caller's own outbox; its text counts as written
    inside the zone when a notebook server's token sends it."""
    clean = _clean_files(files, load_rules().files["max_files"])
    title = _text(title, MAX_TITLE, "title")
    with zone.unit_of_work() as db:
        project = get_project(db, project_name)
        require("export.create", actor, standing(db, zone.now(), project.id, actor))
        now = zone.now()
        request = ExportRequest(id=secrets.token_hex(8), project_id=project.id,
                                requester=actor.name, status=S.DRAFT, title=title,
                                text_from_zone=actor.notebook, created_at=now, updated_at=now)
        request.project = project
        request.files = [ExportFile(**item) for item in clean]
        db.add(request)
        db.flush()
        zone.record(db, actor, "export.created", f"export:{request.id}", project=project_name,
                    files=[f["path"] for f in clean])
        return describe(request, actor, subject_of(db, zone, actor, request))


def update_files(zone: Zone, actor: Identity, request_id: str,
                 files: list[dict[str, str]]) -> dict[str, Any]:
    """Change the file list of a draft or returned request (texts from a notebook server's
    token mark the request's text as written inside the zone, for good)."""
    clean = _clean_files(files, load_rules().files["max_files"])
    with zone.unit_of_work() as db:
        request = get(db, request_id, lock=True)
        seen = authorize(db, zone, actor, request, "export.edit")
        _replace_files(request, clean)
        request.text_from_zone = request.text_from_zone or actor.notebook
        request.updated_at = zone.now()
        zone.record(db, actor, "export.files_changed", f"export:{request.id}",
                    files=[f["path"] for f in clean])
        db.flush()
        return describe(request, actor, seen)


def _replace_files(request: ExportRequest, clean: list[dict[str, str]]) -> None:
    """Keep the rows of paths that stay (their ids carry earlier votes), update their
    texts, add the new ones; a file reviewed in an earlier round cannot be dropped."""
    wanted = {item["path"]: item for item in clean}
    voted = {v.file_id for v in request.votes}
    dropped = [f for f in request.files if f.path not in wanted]
    if any(f.id in voted for f in dropped):
        raise Conflict("a file reviewers already voted on stays in the request; withdraw it "
                       "and make a new request instead (검토된 파일은 제외 불가)")
    kept = [f for f in request.files if f.path in wanted]
    for f in kept:
        f.group, f.justification = wanted[f.path]["group"], wanted[f.path]["justification"]
    known = {f.path for f in kept}
    request.files = kept + [ExportFile(**item) for item in clean if item["path"] not in known]


def submit(zone: Zone, actor: Identity, request_id: str) -> dict[str, Any]:
    """Freeze the exact bytes into quarantine and hand the request to the check worker.

    The freeze is a server-side copy into the object-locked bucket, pinned by version id:
    the call's time does not grow with file size; hashing and checks run in the background.
    Kinds that may not leave at all are refused here, before anything is copied.
    """
    rules = load_rules()
    limit = rules.files["max_file_bytes"]
    with zone.sessions() as db:
        request = get(db, request_id)
        authorize(db, zone, actor, request, "export.submit")
        expected, round_no = request.status, request.round + 1
        files = [(f.id, f.path) for f in request.files]
        project_name = request.project.name
    sources = {fid: outbox_key(project_name, actor.name, path) for fid, path in files}
    total = 0
    for file_id, path in files:
        try:
            size, head = zone.broker.read_head(OUTBOX, sources[file_id], SNIFF_BYTES)
        except ObjectMissing:
            raise InvalidInput(f"{path} is not in your outbox (outbox/{project_name}/"
                               f"{actor.name}/) (반출함에 파일 없음)") from None
        if size > limit:
            raise InvalidInput(f"{path} is {size} bytes, over the limit of {limit} "
                               "(파일 크기 초과)")
        total += size
        refusal = None if is_evidence(path) else admissible(path, head, rules)
        if refusal:
            raise InvalidInput(refusal)
    if total > rules.files["max_request_bytes"]:
        raise InvalidInput(f"the files add up to {total} bytes, over the request limit of "
                           f"{rules.files['max_request_bytes']} (요청 크기 초과)")
    frozen: dict[int, tuple[str, str]] = {}
    for file_id, path in files:
        key = f"{request_id}/r{round_no}/{path}"
        try:
            version, _ = zone.broker.freeze_copy(OUTBOX, sources[file_id], QUARANTINE, key,
                                                 limit)
        except ObjectMissing:
            raise InvalidInput(f"{path} left your outbox during the submit") from None
        except ObjectTooLarge as exc:
            raise InvalidInput(f"{path} is too large: {exc.message}") from None
        # sniff what was frozen, not what was looked at before: the outbox may have changed
        _, head = zone.broker.read_head(QUARANTINE, key, SNIFF_BYTES, version)
        refusal = None if is_evidence(path) else admissible(path, head, rules)
        if refusal:
            raise InvalidInput(refusal)
        frozen[file_id] = (key, version)
    with zone.unit_of_work() as db:
        request = get(db, request_id, lock=True)
        if request.status is not expected:
            raise InvalidInput("the request changed while it was being submitted; try again")
        for f in request.files:
            f.quarantine_key, f.frozen_version = frozen[f.id]
            f.sha256 = f.size = f.kind = None
            f.release_form_key = f.release_sha256 = f.preview_key = None
        request.round, request.check_record, request.checks_claimed_at = round_no, None, None
        move(zone, db, actor, request, "submit", round=round_no,
             frozen={f.path: f.frozen_version for f in request.files})
        move(zone, db, actor, request, "start_checks")
        return describe(request, actor, subject_of(db, zone, actor, request))


def withdraw(zone: Zone, actor: Identity, request_id: str) -> dict[str, Any]:
    with zone.unit_of_work() as db:
        request = get(db, request_id, lock=True)
        seen = authorize(db, zone, actor, request, "export.withdraw")
        move(zone, db, actor, request, "withdraw")
        return describe(request, actor, seen)


# -- reading ---------------------------------------------------------------------------------
def describe(request: ExportRequest, viewer: Identity, seen: Subject) -> dict[str, Any]:
    """The request as ``viewer`` (standing to it as ``seen``) may see it: votes stay blind
    until the review ends, so meanwhile each reviewer sees only their own votes and the
    requester none; text written inside the zone as :func:`zone_text_shown` says."""
    review_over = request.status not in REVIEW_OPEN
    shown = zone_text_shown(request, viewer, seen)

    def text(value: str) -> str:
        return value if shown else ZONE_TEXT

    files = [{"id": f.id, "path": f.path, "group": text(f.group),
              "justification": text(f.justification),
              "sha256": f.sha256, "size": f.size, "kind": f.kind,
              "release_sha256": f.release_sha256, "released": bool(f.released_key),
              "evidence": is_evidence(f.path)} for f in request.files]
    votes = [{"file_id": v.file_id, "reviewer": v.reviewer, "decision": v.decision.value,
              "comment": v.comment, "override_reason": v.override_reason, "round": v.round,
              "at": v.created_at.isoformat()}
             for v in request.votes if review_over or v.reviewer == viewer.name]
    return {"id": request.id, "project": request.project.name, "requester": request.requester,
            "title": text(request.title), "status": request.status.value,
            "round": request.round, "required_approvals": request.required_approvals,
            "files": files,
            "check_record": (request.check_record if viewer.name != request.requester
                             else requester_record(request.check_record)), "votes": votes,
            "created_at": request.created_at.isoformat(),
            "updated_at": request.updated_at.isoformat()}


def zone_text_shown(request: ExportRequest, viewer: Identity, seen: Subject) -> bool:
    """Whether ``viewer`` reads the request's title, file groups and justifications.

    Text written from inside the zone (``text_from_zone``: a notebook's token, or any call
    from the notebook network) is content from inside. The requester reads it there, by
    network origin; outside the zone only the reviewers and administrators who may act on
    the request do (the permission table's ``export.vote``
    and ``export.release``, in any state), until it is released. Everyone else, the
    requester included, reads :data:`ZONE_TEXT` instead: also once the request is
    rejected, withdrawn or its release revoked, since no review let the text out.
    """
    if not request.text_from_zone or request.status is S.RELEASED:
        return True
    if viewer.inside and "requester" in relations(viewer, seen):
        return True  # read inside the zone (by network origin, not by the token's shape)
    unbound = replace(seen, state=None)  # the power to review, whatever the state now
    return allowed("export.vote", viewer, unbound) or allowed("export.release", viewer,
                                                              unbound)


def requester_record(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """The check record as the requester, outside the zone, sees it: which rule fired
    where, never text taken from the files (column or sheet names, excerpts, parse
    errors), which would otherwise carry data out unreviewed."""
    if record is None:
        return None
    messages = load_rules().messages

    def plain(finding: dict[str, Any]) -> dict[str, Any]:
        spec = messages.get(finding["rule"], {})
        kept = {k: finding[k] for k in ("rule", "severity", "row") if k in finding}
        return {**kept, "message_en": _unfilled(spec.get("en", "")),
                "message_ko": _unfilled(spec.get("ko", ""))}

    files = [{**{k: f.get(k) for k in ("path", "sha256", "size", "kind", "evidence",
                                       "release_sha256", "worst")},
              "findings": [plain(x) for x in f.get("findings", [])]}
             for f in record.get("files", [])]
    return {**{k: record.get(k) for k in ("schema", "request", "summary", "flagged")},
            "files": files,
            "request_findings": [plain(x) for x in record.get("request_findings", [])]}


def _unfilled(template: str) -> str:
    return re.sub(r"\{[^}]*\}", "…", template)


def get_request(zone: Zone, actor: Identity, request_id: str) -> dict[str, Any]:
    with zone.sessions() as db:
        request = get(db, request_id)
        seen = authorize(db, zone, actor, request, "export.view")
        return describe(request, actor, seen)


def my_requests(zone: Zone, actor: Identity) -> list[dict[str, Any]]:
    require("export.list_mine", actor)
    with zone.sessions() as db:
        rows = db.scalars(select(ExportRequest).where(ExportRequest.requester == actor.name)
                          .order_by(ExportRequest.created_at.desc()))
        return [describe(r, actor, subject_of(db, zone, actor, r)) for r in rows]


def review_queue(zone: Zone, actor: Identity) -> list[dict[str, Any]]:
    """Open requests this caller may act on: vote (reviewers) or release (administrators)."""
    require("export.queue", actor)
    with zone.sessions() as db:
        rows = db.scalars(select(ExportRequest).where(
            ExportRequest.status.not_in([S.DRAFT, *TERMINAL]))
            .order_by(ExportRequest.updated_at))
        out = []
        for request in rows:
            seen = subject_of(db, zone, actor, request)
            if allowed("export.vote", actor, seen) or allowed("export.release", actor, seen):
                out.append(describe(request, actor, seen))
        return out
