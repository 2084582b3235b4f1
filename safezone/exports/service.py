"""Export requests: the business logic. State changes go through ``states.next_state``,
permissions through ``permissions.export_parties``; every change is audited.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..checks.findings import load_rules
from ..checks.runner import FileInput, check_request, is_evidence, released_tables
from ..clock import as_utc
from ..errors import Conflict, InvalidInput, NotFound, PermissionDenied
from ..memberships import effective_status, require_usable
from ..models import (
    DownloadLink,
    ExportFile,
    ExportRequest,
    ExportStatus,
    Membership,
    MembershipStatus,
    Project,
    ReviewVote,
    VoteDecision,
)
from ..permissions import Identity, check_browser_download, export_parties
from ..projects import get_project
from ..storage.broker import ObjectMissing, ObjectTooLarge
from ..zone import Zone
from .paths import check_outbox_path
from .review_policy import review_policy
from .states import TERMINAL, Party, next_state

log = logging.getLogger(__name__)
S = ExportStatus
OUTBOX, QUARANTINE, RELEASED = "outbox", "egress-quarantine", "released"
CHECK_RECORD = "safezone-check-record.json"
SYSTEM_PARTY = {Party.SYSTEM}


# -- helpers -------------------------------------------------------------------------------
def _get(db: Session, request_id: str) -> ExportRequest:
    request = db.get(ExportRequest, request_id)
    if request is None:
        raise NotFound(f"no export request {request_id!r} (반출 요청 없음)")
    return request


def _is_member(db: Session, zone: Zone, project: Project, user: str) -> bool:
    membership = db.scalar(select(Membership).where(Membership.project_id == project.id,
                                                    Membership.user_name == user))
    return bool(membership) and effective_status(membership, zone.now()) in {
        MembershipStatus.APPROVED, MembershipStatus.REQUESTED}


def _parties(db: Session, zone: Zone, actor: Identity, request: ExportRequest) -> set[Party]:
    policy = review_policy(request.project.name)
    member = _is_member(db, zone, request.project, actor.name)
    return export_parties(actor, request.requester, member, policy.exclude_project_members)


def _move(zone: Zone, db: Session, actor: Identity, request: ExportRequest, action: str,
          parties: set[Party], **details: Any) -> None:
    before = request.status
    request.status = next_state(action, request.status, parties)
    request.updated_at = zone.now()
    zone.record(db, actor, f"export.{action}", f"export:{request.id}",
                project=request.project.name, before=before.value,
                after=request.status.value, **details)


def _outbox_key(request: ExportRequest, path: str) -> str:
    return f"{request.project.name}/{request.requester}/{path}"


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
        clean.append({"path": path, "group": str(item.get("group", ""))[:100],
                      "justification": str(item.get("justification", ""))[:4000]})
    return clean


# -- researcher ----------------------------------------------------------------------------
def outbox_listing(zone: Zone, actor: Identity, project_name: str) -> list[dict[str, Any]]:
    """The files the requester may choose from: ``outbox/<project>/<user>/``."""
    with zone.sessions() as db:
        require_usable(db, zone, get_project(db, project_name), actor.name)
    prefix = f"{project_name}/{actor.name}/"
    return [{"path": key.removeprefix(prefix), "size": size}
            for key, size in zone.broker.list_keys(OUTBOX, prefix)]


def create_request(zone: Zone, actor: Identity, project_name: str, title: str,
                   files: list[dict[str, str]]) -> dict[str, Any]:
    """A draft request over files of the caller's own outbox."""
    if actor.kind != "user":
        raise PermissionDenied("export requests are made by researchers")
    clean = _clean_files(files, load_rules().files["max_files"])
    with zone.unit_of_work() as db:
        project = get_project(db, project_name)
        require_usable(db, zone, project, actor.name)
        now = zone.now()
        request = ExportRequest(id=secrets.token_hex(8), project_id=project.id,
                                requester=actor.name, status=S.DRAFT, title=title[:200],
                                created_at=now, updated_at=now)
        request.project = project
        request.files = [ExportFile(**item) for item in clean]
        db.add(request)
        db.flush()
        zone.record(db, actor, "export.created", f"export:{request.id}", project=project_name,
                    files=[f["path"] for f in clean])
        return describe(request, actor.name)


def update_files(zone: Zone, actor: Identity, request_id: str,
                 files: list[dict[str, str]]) -> dict[str, Any]:
    """Change the file list of a draft or returned request."""
    clean = _clean_files(files, load_rules().files["max_files"])
    with zone.unit_of_work() as db:
        request = _get(db, request_id)
        if Party.REQUESTER not in _parties(db, zone, actor, request):
            raise PermissionDenied("only the requester may change the files of a request")
        if request.status not in {S.DRAFT, S.RETURNED}:
            raise Conflict(f"files can change only in draft or returned, not "
                           f"{request.status.value}")
        request.files = [ExportFile(**item) for item in clean]
        request.updated_at = zone.now()
        zone.record(db, actor, "export.files_changed", f"export:{request.id}",
                    files=[f["path"] for f in clean])
        db.flush()
        return describe(request, actor.name)


def submit(zone: Zone, actor: Identity, request_id: str) -> dict[str, Any]:
    """Freeze the exact bytes into quarantine, run the checks, open the review."""
    rules = load_rules()
    with zone.sessions() as db:
        request = _get(db, request_id)
        parties = _parties(db, zone, actor, request)
        expected = request.status
        next_state("submit", expected, parties)  # refuse early, before copying anything
        require_usable(db, zone, request.project, request.requester)
        files = [(f.id, f.path) for f in request.files]
        round_no = request.round + 1
        project_name = request.project.name
    frozen: dict[int, FileInput] = {}
    keys: dict[int, str] = {}
    for file_id, path in files:
        source = f"{project_name}/{request.requester}/{path}"
        try:
            data = zone.broker.read_object(OUTBOX, source, rules.files["max_file_bytes"])
        except ObjectMissing:
            raise InvalidInput(f"{path} is not in your outbox (outbox/{project_name}/"
                               f"{request.requester}/) (반출함에 파일 없음)") from None
        except ObjectTooLarge as exc:
            raise InvalidInput(f"{path} is too large: {exc.message}") from None
        keys[file_id] = f"{request_id}/r{round_no}/{path}"
        frozen[file_id] = FileInput(path, data, zone.broker.write_object(QUARANTINE,
                                                                          keys[file_id], data))
    with zone.unit_of_work() as db:
        request = _get(db, request_id)
        if request.status is not expected:
            raise Conflict("the request changed while it was being submitted; try again")
        for f in request.files:
            f.sha256, f.size, f.quarantine_key = (frozen[f.id].sha256, len(frozen[f.id].data),
                                                  keys[f.id])
        request.round = round_no
        _move(zone, db, actor, request, "submit", parties, round=round_no,
              sha256={f.path: f.sha256 for f in request.files})
        _move(zone, db, actor, request, "start_checks", SYSTEM_PARTY)
    earlier = released_tables(_released_files(zone, project_name), rules)
    record = check_request(request_id, list(frozen.values()), earlier, rules)
    with zone.unit_of_work() as db:
        request = _get(db, request_id)
        request.check_record = record
        policy = review_policy(project_name)
        request.required_approvals = policy.approvals_needed(record["flagged"])
        _move(zone, db, actor, request, "finish_checks", SYSTEM_PARTY,
              summary=record["summary"], required_approvals=request.required_approvals)
        return describe(request, actor.name)


def _released_files(zone: Zone, project_name: str) -> list[tuple[str, bytes]]:
    with zone.sessions() as db:
        rows = db.scalars(select(ExportFile).join(ExportRequest).join(Project).where(
            Project.name == project_name, ExportRequest.status == S.RELEASED,
            ExportFile.released_key.is_not(None)))
        keys = [(f.path, f.released_key) for f in rows]
    limit = load_rules().files["max_file_bytes"]
    return [(path, zone.broker.read_object(RELEASED, key, limit)) for path, key in keys]


def withdraw(zone: Zone, actor: Identity, request_id: str) -> dict[str, Any]:
    with zone.unit_of_work() as db:
        request = _get(db, request_id)
        parties = _parties(db, zone, actor, request)
        _move(zone, db, actor, request, "withdraw", parties)
        return describe(request, actor.name)


# -- review --------------------------------------------------------------------------------
def vote(zone: Zone, actor: Identity, request_id: str, file_id: int, decision: str,
         comment: str = "", override_reason: str = "") -> dict[str, Any]:
    """One reviewer's decision on one file; when enough are in, the request moves on."""
    try:
        choice = VoteDecision(decision)
    except ValueError:
        raise InvalidInput("decision must be approve, request_changes or reject") from None
    if choice is not VoteDecision.APPROVE and not comment.strip():
        raise InvalidInput("a comment is required unless you approve (의견을 입력하세요)")
    with zone.unit_of_work() as db:
        request = _get(db, request_id)
        parties = _parties(db, zone, actor, request)
        if Party.REQUESTER in parties:
            raise PermissionDenied("you cannot review your own export request "
                                   "(본인 요청은 검토할 수 없습니다)")
        if Party.REVIEWER not in parties:
            raise PermissionDenied("only an independent output checker may vote on this "
                                   "request (검토 권한 없음)")
        if request.status is not S.IN_REVIEW:
            raise Conflict(f"votes are taken only in review, not {request.status.value}")
        target = next((f for f in request.files if f.id == file_id), None)
        if target is None:
            raise NotFound(f"file {file_id} is not part of request {request_id}")
        if choice is VoteDecision.APPROVE and _worst(request, target.path) == "fail" \
                and not override_reason.strip():
            raise InvalidInput(f"{target.path} failed an automated check: approving it needs "
                               "an override reason (자동 점검 실패: 승인 사유 필요)")
        if any(v.reviewer == actor.name and v.file_id == file_id and v.round == request.round
               for v in request.votes):
            raise Conflict("you have already voted on this file in this round")
        request.votes.append(ReviewVote(request_id=request.id, file_id=file_id,
                                        reviewer=actor.name, round=request.round,
                                        decision=choice, comment=comment[:4000],
                                        override_reason=override_reason[:2000],
                                        created_at=zone.now()))
        zone.record(db, actor, "export.voted", f"export:{request.id}", file=target.path,
                    decision=choice.value, round=request.round,
                    override=bool(override_reason.strip()))
        db.flush()
        outcome = _tally(zone, db, actor, request)
        if outcome:
            _move(zone, db, actor, request, outcome, SYSTEM_PARTY)
        approved = request.status is S.APPROVED
    if approved:
        try:
            return release(zone, actor, request_id, as_system=True)
        except Exception as exc:  # stays approved; an administrator can retry the release
            log.warning("release of %s failed, will need a retry: %s", request_id, exc)
    with zone.sessions() as db:
        request = _get(db, request_id)
        return describe(request, actor.name)


def _worst(request: ExportRequest, path: str) -> str:
    for entry in (request.check_record or {}).get("files", []):
        if entry["path"] == path:
            return entry["worst"]
    return "pass"


def _tally(zone: Zone, db: Session, actor: Identity, request: ExportRequest) -> str | None:
    """approve / return / reject once enough reviewers voted on every file, else None."""
    file_ids = {f.id for f in request.files}
    by_reviewer: dict[str, dict[int, VoteDecision]] = {}
    for v in request.votes:
        if v.round == request.round:
            by_reviewer.setdefault(v.reviewer, {})[v.file_id] = v.decision
    complete = [d for d in by_reviewer.values() if set(d) == file_ids]
    if len(complete) < request.required_approvals:
        return None
    per_file = [{d[file_id] for d in complete} for file_id in file_ids]
    if any(len(decisions) > 1 for decisions in per_file):
        policy = review_policy(request.project.name)
        if request.required_approvals < policy.max_reviewers:
            request.required_approvals += 1
            zone.record(db, actor, "export.escalated", f"export:{request.id}",
                        required_approvals=request.required_approvals)
            return None
    decisions = set().union(*per_file)
    if VoteDecision.REJECT in decisions and all(len(d) == 1 for d in per_file):
        return "reject"
    if decisions == {VoteDecision.APPROVE}:
        return "approve"
    return "return"


# -- release and download ----------------------------------------------------------------
def release(zone: Zone, actor: Identity, request_id: str, *, as_system: bool = False
            ) -> dict[str, Any]:
    """Copy the approved, frozen bytes to ``released``; all files or none."""
    limit = load_rules().files["max_file_bytes"]
    with zone.sessions() as db:
        request = _get(db, request_id)
        parties = SYSTEM_PARTY if as_system else _parties(db, zone, actor, request)
        next_state("release", request.status, parties)
        files = [(f.id, f.path, f.quarantine_key, f.sha256) for f in request.files
                 if not is_evidence(f.path)]
    written: dict[int, str] = {}
    try:
        for file_id, path, source, digest in files:
            data = zone.broker.read_object(QUARANTINE, source, limit)
            if hashlib.sha256(data).hexdigest() != digest:
                raise Conflict(f"the frozen copy of {path} no longer matches its hash")
            key = f"{request_id}/{path}"
            zone.broker.write_object(RELEASED, key, data)
            written[file_id] = key
        with zone.sessions() as db:  # the check record travels with the released files
            record = _get(db, request_id).check_record or {}
        zone.broker.write_object(RELEASED, f"{request_id}/{CHECK_RECORD}",
                                 json.dumps(record, ensure_ascii=False, indent=1).encode())
    except Exception:
        for key in written.values():
            zone.broker.delete_object(RELEASED, key)
        raise
    with zone.unit_of_work() as db:
        request = _get(db, request_id)
        for f in request.files:
            f.released_key = written.get(f.id)
        _move(zone, db, actor, request, "release", parties, files=sorted(written.values()))
        return describe(request, actor.name)


def revoke(zone: Zone, actor: Identity, request_id: str, reason: str) -> dict[str, Any]:
    """Withdraw a release: links stop working and the released copies are removed."""
    if not reason.strip():
        raise InvalidInput("say why the release is revoked")
    with zone.unit_of_work() as db:
        request = _get(db, request_id)
        parties = _parties(db, zone, actor, request)
        _move(zone, db, actor, request, "revoke", parties, reason=reason[:2000])
        for link in db.scalars(select(DownloadLink).where(DownloadLink.request_id == request_id)):
            link.revoked = True
        keys = [f.released_key for f in request.files if f.released_key]
        view = describe(request, actor.name)
    for key in keys:
        zone.broker.delete_object(RELEASED, key)
    return view


def create_link(zone: Zone, actor: Identity, request_id: str, file_id: int) -> dict[str, Any]:
    """A download link for the requester (browser session only)."""
    check_browser_download(actor)
    with zone.unit_of_work() as db:
        request = _get(db, request_id)
        if Party.REQUESTER not in _parties(db, zone, actor, request):
            raise PermissionDenied("only the requester downloads released files")
        if request.status is not S.RELEASED:
            raise Conflict(f"request is {request.status.value}, not released")
        target = next((f for f in request.files if f.id == file_id and f.released_key), None)
        if target is None:
            raise NotFound(f"file {file_id} was not released in {request_id}")
        policy = review_policy(request.project.name)
        token = secrets.token_urlsafe(32)
        expires = zone.now() + timedelta(hours=policy.download_expiry_hours)
        db.add(DownloadLink(token_hash=hashlib.sha256(token.encode()).hexdigest(),
                            request_id=request_id, file_id=file_id, expires_at=expires,
                            max_downloads=policy.max_downloads))
        zone.record(db, actor, "export.link_created", f"export:{request_id}",
                    file=target.path, expires_at=expires.isoformat())
        return {"token": token, "expires_at": expires.isoformat(),
                "max_downloads": policy.max_downloads, "file": target.path}


def redeem_link(zone: Zone, actor: Identity, token: str) -> str:
    """Count and audit one download; return the short-lived MinIO URL to redirect to."""
    check_browser_download(actor)
    digest = hashlib.sha256(token.encode()).hexdigest()
    with zone.unit_of_work() as db:
        link = db.scalar(select(DownloadLink).where(DownloadLink.token_hash == digest))
        if link is None:
            raise NotFound("unknown download link")
        request = _get(db, link.request_id)
        if actor.name != request.requester:
            raise PermissionDenied("this link belongs to another researcher")
        if link.revoked or request.status is not S.RELEASED:
            raise PermissionDenied("this download link was revoked (링크 회수됨)")
        if as_utc(link.expires_at) <= zone.now():
            raise PermissionDenied("this download link has expired (링크 만료)")
        if link.downloads >= link.max_downloads:
            raise PermissionDenied("this link reached its download limit (다운로드 횟수 초과)")
        link.downloads += 1
        target = next(f for f in request.files if f.id == link.file_id)
        zone.record(db, actor, "export.downloaded", f"export:{request.id}", file=target.path,
                    count=link.downloads)
        key, name = target.released_key, target.path.rsplit("/", 1)[-1]
        seconds = review_policy(request.project.name).presign_seconds
    return zone.broker.presigned_download(RELEASED, key, seconds, name)


# -- reading ---------------------------------------------------------------------------------
def describe(request: ExportRequest, viewer: str) -> dict[str, Any]:
    """The request as ``viewer`` may see it: votes stay blind until the review ends, so
    meanwhile each reviewer sees only their own votes and the requester none."""
    review_over = request.status not in {S.SUBMITTED, S.CHECKING, S.IN_REVIEW}
    files = [{"id": f.id, "path": f.path, "group": f.group, "justification": f.justification,
              "sha256": f.sha256, "size": f.size, "released": bool(f.released_key),
              "evidence": is_evidence(f.path)} for f in request.files]
    votes = [{"file_id": v.file_id, "reviewer": v.reviewer, "decision": v.decision.value,
              "comment": v.comment, "override_reason": v.override_reason, "round": v.round}
             for v in request.votes if review_over or v.reviewer == viewer]
    return {"id": request.id, "project": request.project.name, "requester": request.requester,
            "title": request.title, "status": request.status.value, "round": request.round,
            "required_approvals": request.required_approvals, "files": files,
            "check_record": request.check_record, "votes": votes,
            "created_at": request.created_at.isoformat(),
            "updated_at": request.updated_at.isoformat()}


def get_request(zone: Zone, actor: Identity, request_id: str) -> dict[str, Any]:
    with zone.sessions() as db:
        request = _get(db, request_id)
        parties = _parties(db, zone, actor, request)
        if not parties:
            raise PermissionDenied("you may not see this export request")
        return describe(request, actor.name)


def my_requests(zone: Zone, actor: Identity) -> list[dict[str, Any]]:
    with zone.sessions() as db:
        rows = db.scalars(select(ExportRequest).where(ExportRequest.requester == actor.name)
                          .order_by(ExportRequest.created_at.desc()))
        return [describe(r, actor.name) for r in rows]


def review_queue(zone: Zone, actor: Identity) -> list[dict[str, Any]]:
    """Requests this reviewer may vote on (or, for admins, every open request)."""
    if not (actor.is_reviewer or actor.is_admin):
        raise PermissionDenied("the review queue is for output checkers "
                               "(검토자만 접근 가능)")
    with zone.sessions() as db:
        rows = db.scalars(select(ExportRequest).where(
            ExportRequest.status.not_in([S.DRAFT, *TERMINAL]))
            .order_by(ExportRequest.updated_at))
        out = []
        for request in rows:
            parties = _parties(db, zone, actor, request)
            if parties & {Party.REVIEWER, Party.ADMIN}:
                out.append(describe(request, actor.name))
        return out


def frozen_file(zone: Zone, actor: Identity, request_id: str, file_id: int
                ) -> tuple[str, bytes]:
    """The frozen bytes of one file, for the reviewers' preview and the requester."""
    with zone.sessions() as db:
        request = _get(db, request_id)
        if not _parties(db, zone, actor, request):
            raise PermissionDenied("you may not see this export request")
        target = next((f for f in request.files if f.id == file_id), None)
        if target is None or not target.quarantine_key:
            raise NotFound(f"file {file_id} has no frozen copy in {request_id}")
        key, path = target.quarantine_key, target.path
    return path, zone.broker.read_object(QUARANTINE, key, load_rules().files["max_file_bytes"])
