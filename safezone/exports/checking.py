"""The check worker: takes requests in ``checking``, hashes the frozen copies, runs the
disclosure checks, stores the previews and the release forms, opens the review.

Work per request is bounded by the file limits of ``policies/disclosure/rules.yaml``;
earlier releases are compared through their stored indexes, never re-read. A claim that
a crashed worker left behind is taken again after ``STALE_CLAIM``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from datetime import timedelta

from sqlalchemy import or_, select

from ..api.metrics import timed_check
from ..checks.findings import load_rules
from ..checks.runner import CheckContext, DatasetShape, FileInput, check_request, is_evidence
from ..db import take_write_turn
from ..models import Dataset, ExportRequest, ExportStatus, ProjectDataset, ReleasedIndex
from ..permissions import SYSTEM
from ..zone import Zone
from .review_policy import review_policy
from .service import QUARANTINE, get, move

log = logging.getLogger(__name__)
STALE_CLAIM = timedelta(minutes=10)
RETRY_AFTER = timedelta(seconds=15)
POLL_SECONDS = 0.3
MAX_INDEXES = 5000  # the newest released tables compared by the differencing rule


def claim_next(zone: Zone) -> str | None:
    """Take one waiting request (or one whose claim went stale); None when none waits."""
    now = zone.now()
    with zone.sessions() as db, db.begin():
        take_write_turn(db)
        candidate = db.scalar(
            select(ExportRequest.id).where(
                ExportRequest.status == ExportStatus.CHECKING,
                or_(ExportRequest.checks_claimed_at.is_(None),
                    ExportRequest.checks_claimed_at < now - STALE_CLAIM))
            .order_by(ExportRequest.updated_at).limit(1).with_for_update(skip_locked=True))
        if candidate is None:
            return None
        db.get(ExportRequest, candidate).checks_claimed_at = now
        return candidate


def _context(zone: Zone, project_id: int) -> CheckContext:
    with zone.sessions() as db:
        rows = db.scalars(select(Dataset).join(ProjectDataset).where(
            ProjectDataset.project_id == project_id))
        shapes = tuple(DatasetShape(d.name, int((d.attestation or {}).get("rows_out", 0)),
                                    tuple((d.attestation or {}).get("columns_out", [])))
                       for d in rows)
        indexes = db.scalars(select(ReleasedIndex.index).where(
            ReleasedIndex.project_id == project_id)
            .order_by(ReleasedIndex.id.desc()).limit(MAX_INDEXES))
        return CheckContext(datasets=shapes, released=tuple(indexes))


@timed_check  # safezone_disclosure_check_duration_seconds
def run_checks(zone: Zone, request_id: str) -> None:
    """Check one claimed request and open its review (all results stored, or none)."""
    rules = load_rules()
    limit = rules.files["max_file_bytes"]
    with zone.sessions() as db:
        request = get(db, request_id)
        round_no, project_id = request.round, request.project_id
        frozen = [(f.id, f.path, f.quarantine_key, f.frozen_version) for f in request.files]
        project_name = request.project.name
    inputs, by_path = [], {}
    for file_id, path, key, version in frozen:
        data = zone.broker.read_version(QUARANTINE, key, version, limit)
        inputs.append(FileInput(path, data, hashlib.sha256(data).hexdigest()))
        by_path[path] = file_id
    outcome = check_request(request_id, inputs, _context(zone, project_id), rules)
    base = f"{request_id}/r{round_no}"
    stored: dict[int, dict] = {}
    for item in inputs:
        file_id = by_path[item.path]
        preview = json.dumps(outcome.previews.get(item.path, {}), ensure_ascii=False).encode()
        preview_key = f"{base}/_preview/{file_id}.json"
        zone.broker.write_object(QUARANTINE, preview_key, preview)
        entry = {"sha256": item.sha256, "size": len(item.data), "preview_key": preview_key,
                 "release_form_key": None, "release_sha256": None}
        form = outcome.release_bytes.get(item.path)
        if form is not None and not is_evidence(item.path):  # None: nothing fit to release
            form_key = f"{base}/_release/{item.path}"
            entry["release_sha256"] = zone.broker.write_object(QUARANTINE, form_key, form)
            entry["release_form_key"] = form_key
        stored[file_id] = entry
    kinds = {e["path"]: e.get("kind") for e in outcome.record["files"]}
    with zone.unit_of_work() as db:
        request = get(db, request_id, lock=True)
        if request.status is not ExportStatus.CHECKING or request.round != round_no:
            log.info("request %s moved on while it was checked; results dropped", request_id)
            return
        for f in request.files:
            entry = stored[f.id]
            f.sha256, f.size, f.kind = entry["sha256"], entry["size"], kinds.get(f.path)
            f.preview_key = entry["preview_key"]
            f.release_form_key, f.release_sha256 = (entry["release_form_key"],
                                                    entry["release_sha256"])
        request.check_record = outcome.record
        request.required_approvals = review_policy(project_name).approvals_needed(
            outcome.record["flagged"])
        move(zone, db, SYSTEM, request, "finish_checks", summary=outcome.record["summary"],
             sha256={f.path: f.sha256 for f in request.files},
             required_approvals=request.required_approvals)


def check_pending(zone: Zone) -> int:
    """Check every waiting request now; returns how many (tests and the CLI use this)."""
    done = 0
    while (request_id := claim_next(zone)) is not None:
        run_checks(zone, request_id)
        done += 1
    return done


class CheckWorker:
    """A background thread of the control plane that drains the ``checking`` queue."""

    def __init__(self, zone: Zone, poll_seconds: float = POLL_SECONDS) -> None:
        self.zone, self.poll_seconds = zone, poll_seconds
        self._stop = threading.Event()
        # failed claims whose rescheduling failed too (the database was away): rescheduled
        # as soon as it answers, not left claimed until STALE_CLAIM
        self._unscheduled: set[str] = set()
        self._thread = threading.Thread(target=self._loop, name="safezone-checks",
                                        daemon=True)

    def start(self) -> CheckWorker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._reschedule()
            request_id = None
            try:
                request_id = claim_next(self.zone)
                if request_id is not None:
                    run_checks(self.zone, request_id)
                    continue
            except Exception:  # MinIO or the database away: retried after RETRY_AFTER
                log.exception("export checks of %s failed; will retry", request_id)
                if request_id is not None:
                    self._unscheduled.add(request_id)
                    self._reschedule()
            self._stop.wait(self.poll_seconds)

    def _reschedule(self) -> None:
        for request_id in sorted(self._unscheduled):
            if _retry_later(self.zone, request_id):
                self._unscheduled.discard(request_id)


def _retry_later(zone: Zone, request_id: str) -> bool:
    """Let a failed claim be taken again after RETRY_AFTER instead of STALE_CLAIM; False
    when the database did not answer (the worker asks again next round)."""
    try:
        with zone.sessions() as db, db.begin():
            take_write_turn(db)
            request = db.get(ExportRequest, request_id)
            if request is not None and request.checks_claimed_at is not None:
                request.checks_claimed_at = zone.now() - STALE_CLAIM + RETRY_AFTER
    except Exception:  # the database is away too: tried again next round
        log.warning("could not reschedule the checks of %s", request_id)
        return False
    return True
