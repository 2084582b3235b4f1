"""The review: stored previews for reviewers, votes, the tally that moves a request on."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import failpoints
from ..errors import Conflict, InvalidInput, NotFound
from ..models import ExportRequest, ExportStatus, ReviewVote, VoteDecision
from ..permissions import SYSTEM, Identity, allowed
from ..zone import Zone
from .review_policy import review_policy
from .service import (
    QUARANTINE,
    authorize,
    describe,
    get,
    move,
    review_queue,
    subject_of,
)

log = logging.getLogger(__name__)
PREVIEW_BYTES = 16 << 20  # a stored preview is bounded when made; this only guards reads


def previews(zone: Zone, actor: Identity, request_id: str) -> dict[int, dict[str, Any]]:
    """The previews made at check time (the only way frozen bytes are ever shown), for a
    reviewer who may vote on the request now. Each read is an audit event."""
    with zone.unit_of_work() as db:
        request = get(db, request_id)
        authorize(db, zone, actor, request, "export.preview")
        keys = {f.id: (f.path, f.preview_key) for f in request.files if f.preview_key}
        zone.record(db, actor, "export.previewed", f"export:{request.id}",
                    project=request.project.name, round=request.round,
                    files=sorted(path for path, _ in keys.values()),
                    why="review")
    return {file_id: json.loads(zone.broker.read_object(QUARANTINE, key, PREVIEW_BYTES))
            for file_id, (_, key) in keys.items()}


def vote(zone: Zone, actor: Identity, request_id: str, file_id: int, decision: str,
         comment: str = "", override_reason: str = "") -> dict[str, Any]:
    """One reviewer's decision on one file; when enough are in, the request moves on."""
    from .release import release

    try:
        choice = VoteDecision(decision)
    except ValueError:
        raise InvalidInput("decision must be approve, request_changes or reject") from None
    if choice is not VoteDecision.APPROVE and not comment.strip():
        raise InvalidInput("a comment is required unless you approve (의견을 입력하세요)")
    if len(comment) > 4000 or len(override_reason) > 2000:
        raise InvalidInput("comment (4000) or override reason (2000) is too long")
    with zone.unit_of_work() as db:
        request = get(db, request_id, lock=True)
        authorize(db, zone, actor, request, "export.vote")
        target = next((f for f in request.files if f.id == file_id), None)
        if target is None:
            raise NotFound(f"file {file_id} is not part of request {request_id}")
        if choice is VoteDecision.APPROVE and worst(request, target.path) == "fail" \
                and not override_reason.strip():
            raise InvalidInput(f"{target.path} failed an automated check: approving it needs "
                               "an override reason (자동 점검 실패: 승인 사유 필요)")
        if any(v.reviewer == actor.name and v.file_id == file_id and v.round == request.round
               for v in request.votes):
            raise Conflict("you have already voted on this file in this round")
        request.votes.append(ReviewVote(request_id=request.id, file_id=file_id,
                                        reviewer=actor.name, round=request.round,
                                        decision=choice, comment=comment,
                                        override_reason=override_reason,
                                        created_at=zone.now()))
        zone.record(db, actor, "export.voted", f"export:{request.id}", file=target.path,
                    decision=choice.value, round=request.round,
                    override=bool(override_reason.strip()))
        db.flush()
        outcome = _tally(zone, db, actor, request)
        if outcome:
            move(zone, db, SYSTEM, request, outcome)
        approved = request.status is ExportStatus.APPROVED
    if approved:
        failpoints.reach("vote.approved")
        try:
            return release(zone, actor, request_id, as_system=True)
        except Exception as exc:  # stays approved; an administrator can retry the release
            log.warning("release of %s failed, will need a retry: %s", request_id, exc)
    with zone.sessions() as db:
        request = get(db, request_id)
        return describe(request, actor, subject_of(db, zone, actor, request))


def worst(request: ExportRequest, path: str) -> str:
    for entry in (request.check_record or {}).get("files", []):
        if entry["path"] == path:
            return entry["worst"]
    return "fail"  # no check record for the file: treat as failed, never as clean


def _complete(votes: Iterable[tuple[str, int, Any]], file_ids: set[int]
              ) -> list[dict[int, Any]]:
    """The ballots of the reviewers who have voted on every file (of one round): what the
    tally counts toward the approvals needed."""
    by_reviewer: dict[str, dict[int, Any]] = {}
    for reviewer, file_id, decision in votes:
        by_reviewer.setdefault(reviewer, {})[file_id] = decision
    return [d for d in by_reviewer.values() if set(d) == file_ids]


def progress(request: ExportRequest) -> dict[str, int]:
    """Votes so far without what they were: how many reviewers have voted on every file
    of this round ("1 of 2 approvals"), and the approvals needed."""
    done = _complete([(v.reviewer, v.file_id, None) for v in request.votes
                      if v.round == request.round], {f.id for f in request.files})
    return {"done": len(done), "needed": request.required_approvals}


def _tally(zone: Zone, db: Session, actor: Identity, request: ExportRequest) -> str | None:
    """approve / return / reject once enough reviewers voted on every file, else None."""
    file_ids = {f.id for f in request.files}
    complete = _complete([(v.reviewer, v.file_id, v.decision) for v in request.votes
                          if v.round == request.round], file_ids)
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


# -- reading, for the review pages ----------------------------------------------------------
def review_view(zone: Zone, actor: Identity, request_id: str) -> dict[str, Any]:
    """The live review as a reviewer who may vote now sees it: the stored previews (read
    through :func:`previews`: ``export.preview``, audited), the request with their own
    votes only, and the votes so far as a count."""
    shown = previews(zone, actor, request_id)
    with zone.sessions() as db:
        request = get(db, request_id)
        seen = authorize(db, zone, actor, request, "export.view")
        return {**describe(request, actor, seen), "previews": shown,
                "progress": progress(request),
                "may_vote": allowed("export.vote", actor, seen)}


def outcome(zone: Zone, actor: Identity, request_id: str) -> dict[str, Any]:
    """The request for anyone who may view it, in any state: the votes so far as a count,
    the votes themselves once the review ended (``describe`` keeps them blind before),
    and whether this caller may open the live review or revoke the release."""
    with zone.sessions() as db:
        request = get(db, request_id)
        seen = authorize(db, zone, actor, request, "export.view")
        return {**describe(request, actor, seen), "progress": progress(request),
                "may_review": allowed("export.preview", actor, seen),
                "may_revoke": allowed("export.revoke", actor, seen)}


def queue(zone: Zone, actor: Identity) -> list[dict[str, Any]]:
    """The review queue (``service.review_queue``), each with its votes so far as a count."""
    waiting = review_queue(zone, actor)
    if not waiting:
        return waiting
    with zone.sessions() as db:
        rows = db.execute(select(ReviewVote.request_id, ReviewVote.reviewer,
                                 ReviewVote.file_id, ReviewVote.round)
                          .where(ReviewVote.request_id.in_([r["id"] for r in waiting])))
        votes: dict[str, list[tuple[str, int, int]]] = {}
        for request_id, reviewer, file_id, round_no in rows:
            votes.setdefault(request_id, []).append((reviewer, file_id, round_no))
    for item in waiting:
        ballots = [(who, fid, None) for who, fid, round_no in votes.get(item["id"], [])
                   if round_no == item["round"]]
        done = _complete(ballots, {f["id"] for f in item["files"]})
        item["progress"] = {"done": len(done), "needed": item["required_approvals"]}
    return waiting
