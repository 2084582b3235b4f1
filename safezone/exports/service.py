"""Export requests: drafting, freezing on submit, withdrawing, reading.

State changes go through ``states.next_state``; who may act through the permission table
(``permissions.require`` with the subject from :func:`subject_of`); every change is
audited. Checks run in the background (``checking``), the review and the release live in
``review`` and ``release``.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import threading
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from .. import failpoints
from ..checks.filetypes import sniff
from ..checks.findings import load_rules
from ..checks.runner import FileInput, admissible, check_request, is_evidence
from ..checks.sidecars import attach_evidence, sidecar_of
from ..clock import as_utc
from ..errors import Conflict, InvalidInput, NotFound, SafezoneError
from ..models import (
    AuditEvent,
    ExportFile,
    ExportRequest,
    ExportStatus,
    Membership,
    VoteDecision,
)
from ..permissions import Identity, Subject, allowed, decided_by, relations, require
from ..projects import get_project
from ..read_cache import ReadModel
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
OUTBOX_LIMIT = 1000  # files listed from one outbox
DRY_RUNS = threading.BoundedSemaphore(2)  # dry runs checked at once (each up to a request)
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
    """The files the caller may choose from: ``outbox/<project>/<user>/``, each with its
    size, last change, folder and name, whether it is an evidence sidecar and whether it
    has one (at most :data:`OUTBOX_LIMIT` files)."""
    with zone.sessions() as db:
        project = get_project(db, project_name)
        require("export.outbox", actor, standing(db, zone.now(), project.id, actor))
    prefix = f"{project_name}/{actor.name}/"
    found = [(key.removeprefix(prefix), size, modified)
             for key, size, modified in zone.broker.list_entries(OUTBOX, prefix, OUTBOX_LIMIT)]
    names = {path for path, _, _ in found}
    out = []
    for path, size, modified in found:
        folder, _, name = path.rpartition("/")
        out.append({"path": path, "size": size,
                    "modified": modified.isoformat() if modified else None,
                    "folder": folder, "name": name, "evidence": is_evidence(path),
                    "has_evidence": sidecar_of(path) in names})
    return out


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
    failpoints.reach("submit.frozen")
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


def may_withdraw(zone: Zone, actor: Identity, request_id: str) -> None:
    """Refuse exactly as :func:`withdraw` would, changing nothing (a confirmation step
    asks only those who may withdraw, in a state that allows it)."""
    with zone.sessions() as db:
        request = get(db, request_id)
        authorize(db, zone, actor, request, "export.withdraw")
        next_state("withdraw", request.status)


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
        kept = {k: finding[k] for k in ("rule", "severity", "row", "more", "unexamined")
                if k in finding}  # where, and how many (tallies): no text from the files
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


def _load_my_requests(zone: Zone, actor: Identity
                      ) -> tuple[list[dict[str, Any]], datetime | None]:
    """The caller's requests as :func:`describe` shows them, and the moment one of the
    caller's memberships expires (the standing each was described under changes then)."""
    now = zone.now()
    with zone.sessions() as db:
        rows = db.scalars(select(ExportRequest).where(ExportRequest.requester == actor.name)
                          .options(selectinload(ExportRequest.files),
                                   selectinload(ExportRequest.votes),
                                   selectinload(ExportRequest.project))
                          .order_by(ExportRequest.created_at.desc()))
        stood: dict[int, Subject] = {}  # one membership look-up per project, not per request
        found = []
        for r in rows:
            if r.project_id not in stood:
                stood[r.project_id] = subject_of(db, zone, actor, r)
            seen = replace(stood[r.project_id], requester=r.requester, state=r.status.value)
            found.append(describe(r, actor, seen))
        expiries = [as_utc(e) for e in db.scalars(select(Membership.expires_at).where(
            Membership.user_name == actor.name, Membership.expires_at.is_not(None)))]
    return found, min((e for e in expiries if e > now), default=None)


# a caller's own requests as the rules let them see them (kept under what the rules can
# tell apart about the caller: where it calls from changes what it reads), until one of
# these tables changes or a membership of theirs expires
MY_REQUESTS = ReadModel("my_requests", ("export_requests", "export_files", "review_votes",
                                        "projects", "memberships"), _load_my_requests)


def my_requests(zone: Zone, actor: Identity) -> list[dict[str, Any]]:
    require("export.list_mine", actor)
    return zone.reads.read(MY_REQUESTS, zone, actor, key=decided_by(actor))


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


# -- the request form: its rules, the dry run, the steps of a request -----------------------
class TooBusy(SafezoneError):
    """Enough dry runs are being checked right now; try again in a moment."""

    status_code = 429


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request form: where (``title``, ``files``, ``file:<path>``,
    ``why:<path>``) and what (``code``), with the limit and the size found."""

    field: str
    code: str
    limit: int | None = None
    found: int | None = None


@dataclass
class DraftCheck:
    """The form's problems, the caller's outbox and the entries to create (evidence
    sidecars attached)."""

    problems: list[Problem]
    listing: list[dict[str, Any]]
    entries: list[dict[str, str]] = field(default_factory=list)


def _length(problems: list[Problem], where: str, text: str, limit: int) -> None:
    if not text.strip():
        problems.append(Problem(where, "blank"))
    elif len(text) > limit:
        problems.append(Problem(where, "too_long", limit, len(text)))


def check_draft(zone: Zone, actor: Identity, project_name: str, title: str,
                files: list[dict[str, str]], *, dry_run: bool = False) -> DraftCheck:
    """Every rule of the request form before anything is created: a title, at least one
    file of the caller's outbox (never an evidence sidecar: those are attached), a
    justification per file, the text and size limits, and kinds that may leave (read
    from each file's head). ``dry_run``: only what the dry run needs (files, sizes)."""
    rules = load_rules()
    listing = outbox_listing(zone, actor, project_name)  # the permission table decides
    sizes = {f["path"]: f["size"] for f in listing}
    problems: list[Problem] = []
    if not dry_run:
        _length(problems, "title", title, MAX_TITLE)
    if not files:
        problems.append(Problem("files", "none"))
    chosen: list[dict[str, str]] = []
    for item in files:
        path = item.get("path", "")
        try:
            check_outbox_path(path)
        except InvalidInput:
            problems.append(Problem(f"file:{path}", "bad_path"))
            continue
        if is_evidence(path):
            problems.append(Problem(f"file:{path}", "evidence"))
        elif path not in sizes:
            problems.append(Problem(f"file:{path}", "missing"))
        elif any(c["path"] == path for c in chosen):
            problems.append(Problem(f"file:{path}", "duplicate"))
        else:
            chosen.append(item)
            if sizes[path] > rules.files["max_file_bytes"]:
                problems.append(Problem(f"file:{path}", "too_large",
                                        rules.files["max_file_bytes"], sizes[path]))
            if not dry_run:
                _length(problems, f"why:{path}", item.get("justification", ""),
                        MAX_JUSTIFICATION)
    entries = attach_evidence(chosen, set(sizes))
    if len(entries) > rules.files["max_files"]:
        problems.append(Problem("files", "too_many", rules.files["max_files"], len(entries)))
    total = sum(sizes[e["path"]] for e in entries)
    if total > rules.files["max_request_bytes"]:
        problems.append(Problem("files", "request_too_large", rules.files["max_request_bytes"],
                                total))
    if not dry_run and not problems:
        prefix = f"{project_name}/{actor.name}/"
        for item in chosen:
            try:
                _, head = zone.broker.read_head(OUTBOX, prefix + item["path"], SNIFF_BYTES)
            except ObjectMissing:
                problems.append(Problem(f"file:{item['path']}", "missing"))
                continue
            if admissible(item["path"], head, rules):
                problems.append(Problem(f"file:{item['path']}",
                                        f"refused:{sniff(item['path'], head, complete=False)}"))
    return DraftCheck(problems, listing, entries)


def dry_run(zone: Zone, actor: Identity, project_name: str, paths: list[str]
            ) -> dict[str, Any]:
    """The checks a submit would run, on files of the caller's own outbox, now, without
    creating a request: nothing is frozen, stored or reviewed. Evidence sidecars are
    attached as on submit; the same file and request limits bound the work. The findings
    come as the requester sees them after a submit (no text taken from the files; inside
    the zone also the column of each finding)."""
    from .checking import _context  # the check worker's context: datasets, releases
    from .review_policy import review_policy

    rules = load_rules()
    with zone.sessions() as db:
        project = get_project(db, project_name)
        require("export.dry_run", actor, standing(db, zone.now(), project.id, actor))
        project_id = project.id
    if not paths:
        raise InvalidInput("choose at least one file from your outbox")
    clean = list(dict.fromkeys(check_outbox_path(p) for p in paths))
    prefix = f"{project_name}/{actor.name}/"
    names = {key.removeprefix(prefix)
             for key, _, _ in zone.broker.list_entries(OUTBOX, prefix, OUTBOX_LIMIT)}
    chosen = [e["path"] for e in attach_evidence([{"path": p} for p in clean], names)]
    if len(chosen) > rules.files["max_files"]:
        raise InvalidInput(f"at most {rules.files['max_files']} files per request")
    if not DRY_RUNS.acquire(blocking=False):
        raise TooBusy("other dry runs are being checked right now; try again in a minute")
    try:
        inputs = _read_outbox(zone, prefix, chosen, rules.files)
        outcome = check_request("dry-run", inputs, _context(zone, project_id), rules)
    finally:
        DRY_RUNS.release()
    record = _dry_record(outcome.record, actor.inside)
    with zone.unit_of_work() as db:
        zone.record(db, actor, "export.dry_run", f"project:{project_name}", files=chosen,
                    summary=record["summary"])
    return {"project": project_name, "files": chosen, "record": record,
            "approvals_needed": review_policy(project_name).approvals_needed(
                bool(record["flagged"]))}


def _read_outbox(zone: Zone, prefix: str, paths: list[str], limits: dict[str, Any]
                 ) -> list[FileInput]:
    """The files' bytes, each and all together within the submit limits."""
    inputs, total = [], 0
    for path in paths:
        try:
            data = zone.broker.read_object(OUTBOX, prefix + path, limits["max_file_bytes"])
        except ObjectMissing:
            raise InvalidInput(f"{path} is not in your outbox") from None
        except ObjectTooLarge:
            raise InvalidInput(f"{path} is over the limit of {limits['max_file_bytes']} "
                               "bytes") from None
        total += len(data)
        if total > limits["max_request_bytes"]:
            raise InvalidInput(f"the files add up to more than the request limit of "
                               f"{limits['max_request_bytes']} bytes")
        inputs.append(FileInput(path, data, hashlib.sha256(data).hexdigest()))
    return inputs


def _dry_record(record: dict[str, Any], inside: bool) -> dict[str, Any]:
    """The record as the requester reads it; inside the zone with each finding's column
    (a name from the caller's own file, read where the file is)."""
    plain = requester_record(record) or {}
    if inside:
        for full, shown in zip(record["files"], plain["files"], strict=True):
            for original, kept in zip(full["findings"], shown["findings"], strict=True):
                if original.get("column"):
                    kept["column"] = original["column"]
    return plain


STEPS = {"export.created": "created", "export.submit": "submitted",
         "export.finish_checks": "checked", "export.approve": "decided",
         "export.return": "decided", "export.reject": "decided",
         "export.release": "released", "export.withdraw": "withdrawn",
         "export.revoke": "revoked"}
STEP_ORDER = ("created", "submitted", "checked", "decided", "released", "withdrawn",
              "revoked")


def progress(zone: Zone, actor: Identity, request_id: str) -> dict[str, Any]:
    """Where a request stands: the date of each step (from the audit trail; the latest
    round's), the approvals it needs and has (a count, never whose or on what)."""
    with zone.sessions() as db:
        request = get(db, request_id)
        authorize(db, zone, actor, request, "export.view")
        events = db.execute(select(AuditEvent.action, AuditEvent.ts).where(
            AuditEvent.subject == f"export:{request.id}",
            AuditEvent.action.in_(list(STEPS))).order_by(AuditEvent.seq)).all()
        dates: dict[str, str] = {"created": request.created_at.isoformat()}
        for event_action, ts in events:
            step = STEPS[event_action]
            if step == "submitted":  # a new round: the later steps start again
                for later in ("checked", "decided", "released"):
                    dates.pop(later, None)
            dates[step] = ts
        steps = [{"step": step, "at": dates.get(step)} for step in STEP_ORDER
                 if step in dates or step not in {"withdrawn", "revoked"}]
        return {"steps": steps, "round": request.round,
                # how many approved is a tally of blind votes: shown once the review ended
                "approvals": {"given": None if request.status is S.IN_REVIEW
                              else _approvals(request), "needed": request.required_approvals}}


def _approvals(request: ExportRequest) -> int:
    """Reviewers who approved every file of the current round."""
    wanted = {f.id for f in request.files}
    approved: dict[str, set[int]] = {}
    for v in request.votes:
        if v.round == request.round and v.decision is VoteDecision.APPROVE:
            approved.setdefault(v.reviewer, set()).add(v.file_id)
    return sum(1 for files in approved.values() if files >= wanted)
