"""Applying for access (이용 신청): a researcher applies for published datasets with a purpose,
a period, fellow analysts, an optional research plan and the security pledge; an
administrator approves — into an existing project or a new one made from the application —
with an expiry that cannot pass the period, or rejects with a reason.

    (none) ─submit→ submitted ─approve→ approved
                          ├─reject→ rejected
                          └─withdraw→ withdrawn

The research plan's bytes go to MinIO (``policies/applications.yaml``: bucket, prefix) and
only its key and SHA-256 to the database. Who may do what is the permission table's
(``application.*``); no one decides an application they are named on.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import memberships, projects
from .application_rules import (
    ApplicationInvalid,
    HubUnavailable,
    Problem,
    Rules,
    TooLarge,
    end_of,
    load_rules,
    parse_day,
    plan_kind_problem,
    safe_file_name,
    split_names,
)
from .audit import AuditUnanchored
from .catalogue.service import published
from .clock import as_utc
from .errors import InvalidTransition, NotFound, SafezoneError, StorageError
from .models import (
    Application,
    ApplicationStatus,
    Dataset,
    Project,
    ProjectDataset,
    ProjectStatus,
)
from .naming import PROJECT_NAME, USER_NAME
from .permissions import Identity, Subject, allowed, require
from .standing import standing
from .zone import Zone

A = ApplicationStatus
REASON_MAX = 2000
TITLE_MAX = 200


@dataclass(frozen=True)
class Plan:
    """A research plan as uploaded: its file name and bytes."""

    name: str
    data: bytes


# -- reading ----------------------------------------------------------------------------
def _view(a: Application) -> dict[str, Any]:
    plan = ({"name": a.plan_name, "size": a.plan_size, "sha256": a.plan_sha256,
             "key": a.plan_key} if a.plan_key else None)
    return {
        "id": a.id, "applicant": a.applicant, "status": a.status.value, "purpose": a.purpose,
        "datasets": list(a.datasets), "fellows": list(a.fellows), "until": a.period_end,
        "project": a.project, "plan": plan,
        "pledge": {"version": a.pledge_version, "sha256": a.pledge_sha256,
                   "language": a.pledge_language},
        "created_at": as_utc(a.created_at).isoformat(),
        "decided_at": as_utc(a.decided_at).isoformat() if a.decided_at else None,
        "decided_by": a.decided_by, "reason": a.reason,
        "expires_at": as_utc(a.expires_at).isoformat() if a.expires_at else None,
        "decided_project": a.decided_project, "progress": list(a.progress or []),
    }


def _find(db: Session, application_id: str) -> Application:
    found = db.get(Application, application_id) if len(application_id) <= 32 else None
    if found is None:
        raise NotFound(f"no application {application_id!r} (신청 없음)")
    return found


def _applicant(a: Application) -> Subject:
    return Subject(user=a.applicant)


def _deciding(db: Session, zone: Zone, actor: Identity, a: Application,
              project_name: str | None) -> Subject:
    """The application as a decider stands to it: ``self`` when it is theirs, ``involved``
    when they are a fellow analyst on it or involved in the project it would join."""
    involved = actor.name in a.fellows
    target = db.scalar(select(Project).where(Project.name == project_name)) \
        if project_name else None
    if target is not None:
        involved = involved or standing(db, zone.now(), target.id, actor).involved
    return Subject(user=a.applicant, involved=involved)


def terms(zone: Zone, actor: Identity) -> dict[str, Any]:
    """The pledge and the limits of an application (``application.terms``)."""
    require("application.terms", actor)
    rules = load_rules()
    return {**rules.public(), "latest_end": rules.latest_end(zone.now()).isoformat()}


def form_options(zone: Zone, actor: Identity, project: str | None = None) -> dict[str, Any]:
    """What the application form offers: the published datasets, the project to join (if
    any), the pledge and the latest end date (``application.submit``)."""
    require("application.submit", actor)
    if project:
        _active_project(zone, project)
    rules = load_rules()
    return {"datasets": published(zone), "project": project or None, "pledge": rules.pledge,
            "latest_end": rules.latest_end(zone.now()), "rules": rules}


def mine(zone: Zone, actor: Identity) -> list[dict[str, Any]]:
    """The caller's own applications, newest first (for the home page and their list)."""
    require("application.list", actor)
    with zone.sessions() as db:
        rows = db.scalars(select(Application).where(Application.applicant == actor.name)
                          .order_by(Application.created_at.desc()))
        return [_view(a) for a in rows]


def queue(zone: Zone, actor: Identity) -> list[dict[str, Any]]:
    """The applications waiting for a decision, oldest first (administrators)."""
    require("application.queue", actor)
    with zone.sessions() as db:
        rows = db.scalars(select(Application).where(Application.status == A.SUBMITTED)
                          .order_by(Application.created_at))
        return [{**_view(a), "may_decide": allowed("application.approve", actor,
                                                   _deciding(db, zone, actor, a, a.project))}
                for a in rows]


def listing(zone: Zone, actor: Identity) -> list[dict[str, Any]]:
    """Every application the caller may see (``application.view``): their own; all for
    administrators. Newest first."""
    require("application.list", actor)
    with zone.sessions() as db:
        rows = db.scalars(select(Application).order_by(Application.created_at.desc()))
        return [_view(a) for a in rows if allowed("application.view", actor, _applicant(a))]


def get(zone: Zone, actor: Identity, application_id: str) -> dict[str, Any]:
    """One application, with what the caller may do with it now."""
    with zone.sessions() as db:
        a = _find(db, application_id)
        require("application.view", actor, _applicant(a))
        pending = a.status is A.SUBMITTED
        subject = _deciding(db, zone, actor, a, a.project)
        return {**_view(a),
                "may_decide": pending and allowed("application.approve", actor, subject),
                "may_withdraw": pending and allowed("application.withdraw", actor,
                                                    _applicant(a)),
                "may_read_plan": bool(a.plan_key) and allowed("application.plan", actor,
                                                              _applicant(a)),
                "limit": end_of(parse_day(a.period_end)).isoformat()}


def plan_file(zone: Zone, actor: Identity, application_id: str) -> tuple[str, bytes]:
    """(download name, bytes) of the application's research plan, checked against the
    SHA-256 recorded at submission. Each read is audited."""
    with zone.sessions() as db:
        a = _find(db, application_id)
        require("application.plan", actor, _applicant(a))
        key, name, digest = a.plan_key, a.plan_name or "plan", a.plan_sha256
    if not key:
        raise NotFound(f"application {application_id} has no research plan (연구계획서 없음)")
    rules = load_rules()
    data = zone.broker.read_object(rules.plan_bucket, key, rules.plan_max_bytes)
    if hashlib.sha256(data).hexdigest() != digest:
        raise StorageError(f"the stored research plan of {application_id} does not match "
                           "its recorded SHA-256 (연구계획서 무결성 오류)")
    with zone.unit_of_work() as db:
        zone.record(db, actor, "application.plan_read", f"application:{application_id}",
                    key=key, sha256=digest)
    return name, data


# -- applying ----------------------------------------------------------------------------
def _active_project(zone: Zone, name: str) -> None:
    with zone.sessions() as db:
        found = db.scalar(select(Project).where(Project.name == name))
    if found is None or found.status is not ProjectStatus.ACTIVE:
        raise NotFound(f"no active project named {name!r} (프로젝트 없음)")


def known_user(zone: Zone, name: str) -> bool:
    """Whether the hub knows ``name``: the hub's user list is the source of truth (local
    mode: every user of the users file, created at start; OIDC: everyone who signed in).
    The control-plane service holds ``read:users:name`` for this."""
    try:
        response = httpx.get(f"{zone.hub.api_url}/users/{quote(name, safe='')}", timeout=10,
                             headers={"Authorization": f"token {zone.hub.service_token}"})
    except httpx.HTTPError as exc:
        raise HubUnavailable(f"cannot reach the hub to check user names: {exc} "
                             "(허브 연결 실패)") from exc
    if response.status_code == 404:
        return False
    if response.status_code != 200:
        raise HubUnavailable(f"the hub answered {response.status_code} when asked about a "
                             "user name (허브 응답 오류)")
    return True


def _check_purpose(purpose: str, rules: Rules, problems: list[Problem]) -> None:
    length = len(purpose.strip())
    if length < rules.purpose_min:
        problems.append(Problem("purpose", "purpose_short", {"min": rules.purpose_min}))
    elif len(purpose) > rules.purpose_max:
        problems.append(Problem("purpose", "purpose_long",
                                {"length": len(purpose), "max": rules.purpose_max}))


def _check_datasets(zone: Zone, names: list[str], joining: bool, rules: Rules,
                    problems: list[Problem]) -> None:
    if not names and not joining:
        problems.append(Problem("datasets", "datasets_none"))
    elif len(names) > rules.datasets_max:
        problems.append(Problem("datasets", "datasets_many", {"max": rules.datasets_max}))
    else:
        offered = {d.name for d in published(zone)}
        unknown = [n for n in names if n not in offered]
        if unknown:
            problems.append(Problem("datasets", "dataset_unknown",
                                    {"names": ", ".join(unknown[:5])}))


def _check_until(zone: Zone, until: Any, rules: Rules, problems: list[Problem]) -> None:
    if not str(until or "").strip():
        problems.append(Problem("until", "until_missing"))
        return
    day = parse_day(until)
    latest = rules.latest_end(zone.now())
    if day is None:
        problems.append(Problem("until", "until_format"))
    elif day <= zone.now().date():
        problems.append(Problem("until", "until_past"))
    elif day > latest:
        problems.append(Problem("until", "until_far", {"months": rules.max_months,
                                                       "latest": latest.isoformat()}))


def _check_fellows(zone: Zone, actor: Identity, fellows: list[str], rules: Rules,
                   problems: list[Problem]) -> None:
    if len(fellows) > rules.fellows_max:
        problems.append(Problem("fellows", "fellows_many", {"max": rules.fellows_max}))
        return
    if actor.name in fellows:
        problems.append(Problem("fellows", "fellow_self"))
    invalid = [f for f in fellows if not USER_NAME.match(f)]
    if invalid:
        problems.append(Problem("fellows", "fellow_invalid", {"names": ", ".join(invalid)}))
    unknown = [f for f in fellows if f not in invalid and f != actor.name
               and not known_user(zone, f)]
    if unknown:
        problems.append(Problem("fellows", "fellow_unknown", {"names": ", ".join(unknown)}))


def _check_plan(plan: Plan | None, rules: Rules, problems: list[Problem]) -> None:
    if plan is None:
        return
    if len(plan.data) > rules.plan_max_bytes:
        problems.append(Problem("plan", "plan_large", {"size": f"{len(plan.data):,}",
                                                       "max": f"{rules.plan_max_bytes:,}"}))
    elif not plan.data:
        problems.append(Problem("plan", "plan_empty"))
    else:
        wrong = plan_kind_problem(plan.name, plan.data, rules)
        if wrong:
            problems.append(wrong)


def submit(zone: Zone, actor: Identity, *, purpose: str, datasets: list[str], until: Any,
           fellows: Any = (), pledge_accepted: bool = False, pledge_version: str = "",
           project: str | None = None, plan: Plan | None = None, language: str = "ko"
           ) -> dict[str, Any]:
    """Apply for access. Every field is checked first and every refusal named (422); then
    the plan goes to MinIO and the application, with the plan's key and SHA-256 and the
    pledge's version and digest, to the database (audited ``application.submitted``). A
    failed write removes the stored plan."""
    require("application.submit", actor)
    rules = load_rules()
    project = (project or "").strip() or None
    if project:
        _active_project(zone, project)
    names = list(dict.fromkeys(str(d).strip() for d in datasets if str(d).strip()))
    fellow_names = list(dict.fromkeys(split_names(fellows)))
    problems: list[Problem] = []
    _check_purpose(purpose or "", rules, problems)
    _check_datasets(zone, names, bool(project), rules, problems)
    _check_until(zone, until, rules, problems)
    _check_fellows(zone, actor, fellow_names, rules, problems)
    _check_plan(plan, rules, problems)
    if not pledge_accepted:
        problems.append(Problem("pledge", "pledge_missing"))
    elif pledge_version != rules.pledge.version:
        problems.append(Problem("pledge", "pledge_changed"))
    if problems:
        raise ApplicationInvalid(problems)

    application_id = secrets.token_hex(8)
    key = digest = name = None
    if plan is not None:
        name = safe_file_name(plan.name)
        key = f"{rules.plan_prefix}{application_id}/plan.{name.rsplit('.', 1)[-1].lower()}"
        digest = zone.broker.write_object(rules.plan_bucket, key, plan.data)
    try:
        with zone.unit_of_work() as db:
            row = Application(
                id=application_id, applicant=actor.name, status=A.SUBMITTED,
                purpose=purpose, datasets=names, fellows=fellow_names,
                period_end=parse_day(until).isoformat(), project=project, plan_key=key,
                plan_name=name, plan_size=len(plan.data) if plan else None,
                plan_sha256=digest, pledge_version=rules.pledge.version,
                pledge_sha256=rules.pledge.sha256,
                pledge_language=language if language in ("ko", "en") else "ko",
                created_at=zone.now(), reason="", progress=[])
            db.add(row)
            db.flush()
            zone.record(db, actor, "application.submitted", f"application:{application_id}",
                        datasets=names, fellows=fellow_names, until=row.period_end,
                        project=project, plan={"key": key, "sha256": digest,
                                               "size": row.plan_size} if key else None,
                        pledge={"version": row.pledge_version, "sha256": row.pledge_sha256,
                                "language": row.pledge_language})
            return _view(row)
    except Exception as exc:
        saved = isinstance(exc, AuditUnanchored) and exc.committed
        if key and not saved:
            zone.broker.delete_object(rules.plan_bucket, key)
        raise


def withdraw(zone: Zone, actor: Identity, application_id: str) -> dict[str, Any]:
    """The applicant takes back an application no one has decided yet."""
    with zone.unit_of_work() as db:
        a = _find(db, application_id)
        require("application.withdraw", actor, _applicant(a))
        _pending(a, "withdraw")
        a.status, a.decided_at, a.decided_by = A.WITHDRAWN, zone.now(), actor.name
        zone.record(db, actor, "application.withdrawn", f"application:{a.id}")
        return _view(a)


def _pending(a: Application, doing: str) -> None:
    if a.status is not A.SUBMITTED:
        raise InvalidTransition(f"cannot {doing} application {a.id}: it is {a.status.value} "
                                "(이미 처리된 신청입니다)")


# -- deciding ----------------------------------------------------------------------------
def reject(zone: Zone, actor: Identity, application_id: str, reason: str) -> dict[str, Any]:
    """Refuse an application; the reason is required and shown to the applicant."""
    with zone.unit_of_work() as db:
        a = _find(db, application_id)
        require("application.reject", actor, _deciding(db, zone, actor, a, a.project))
        _pending(a, "reject")
        text = (reason or "").strip()
        if not text:
            raise ApplicationInvalid([Problem("reason", "reason_missing")])
        if len(text) > REASON_MAX:
            raise ApplicationInvalid([Problem("reason", "reason_long",
                                              {"length": len(text), "max": REASON_MAX})])
        a.status, a.reason = A.REJECTED, text
        a.decided_at, a.decided_by = zone.now(), actor.name
        zone.record(db, actor, "application.rejected", f"application:{a.id}", reason=text)
        return _view(a)


def _expiry(value: Any, a: Application, now: datetime) -> tuple[datetime | None, Problem | None]:
    """An approval's expiry: a date means the end of that day (UTC)."""
    limit = end_of(parse_day(a.period_end))
    if isinstance(value, datetime):
        moment = as_utc(value)
    else:
        text = str(value or "").strip()
        if not text:
            return None, Problem("expires_at", "expires_missing")
        day = parse_day(text) if len(text) == 10 else None
        try:
            moment = end_of(day) if day else as_utc(datetime.fromisoformat(text))
        except ValueError:
            return None, Problem("expires_at", "expires_missing")
    if moment <= now:
        return None, Problem("expires_at", "expires_past")
    if moment > limit:
        return None, Problem("expires_at", "expires_beyond", {"end": a.period_end})
    return moment, None


def _target(zone: Zone, a: Application, project: str, new_project: str, title: str
            ) -> tuple[str, bool, list[Problem]]:
    """(project name, whether to create it, problems) of an approval."""
    project, new_project = (project or "").strip(), (new_project or "").strip()
    if not project and not new_project:
        project = a.project or ""
    if project and new_project:
        return "", False, [Problem("project", "target_both")]
    if not project and not new_project:
        return "", False, [Problem("project", "target_missing")]
    with zone.sessions() as db:
        found = db.scalar(select(Project).where(Project.name == (project or new_project)))
    if project:
        if found is None or found.status is not ProjectStatus.ACTIVE:
            return "", False, [Problem("project", "project_unknown", {"name": project})]
        return project, False, []
    problems = []
    if not PROJECT_NAME.match(new_project) or "--" in new_project:
        problems.append(Problem("new_project", "project_name"))
    elif found is not None:
        problems.append(Problem("new_project", "project_exists", {"name": new_project}))
    if len(title or "") > TITLE_MAX:
        problems.append(Problem("title", "title_long"))
    return new_project, True, problems


def approve(zone: Zone, actor: Identity, application_id: str, expires_at: Any, *,
            project: str = "", new_project: str = "", title: str = "") -> dict[str, Any]:
    """Approve an application into an existing project (``project``; by default the one it
    asked to join) or a new one made from it (``new_project`` and ``title``): attach its
    datasets, approve the applicant and the fellow analysts until ``expires_at`` (never
    past the end of the period applied for).

    Everything is checked before anything changes. The steps then run through the
    project and membership services in order (create, attach, approve each person); if one
    fails, the application stays ``submitted`` with the steps done recorded
    (``application.approval_failed``), and approving again continues from there."""
    with zone.sessions() as db:
        a = _find(db, application_id)
    name, create, problems = _target(zone, a, project, new_project, title)
    with zone.sessions() as db:  # conflicts judged on the project it would really join
        subject = _deciding(db, zone, actor, a, name or None)
    require("application.approve", actor, subject)
    _pending(a, "approve")
    moment, problem = _expiry(expires_at, a, zone.now())
    problems = ([problem] if problem else []) + problems
    gone = _unpublished(zone, a.datasets)
    if gone:
        problems.append(Problem("datasets", "datasets_gone", {"names": ", ".join(gone)}))
    if problems:
        raise ApplicationInvalid(problems)
    done = list(a.progress or [])
    try:
        if create:
            projects.create_project(zone, actor, name, title,  # ends with the period
                                    ends_on=parse_day(a.period_end))
            done.append(f"project.created:{name}")
        attached = _attached(zone, name)
        for dataset in a.datasets:
            if dataset not in attached:
                projects.attach_dataset(zone, actor, name, dataset)
                done.append(f"dataset.attached:{dataset}")
        for person in [a.applicant, *a.fellows]:
            memberships.approve_membership(zone, actor, name, person, moment)
            done.append(f"membership.approved:{person}")
    except Exception as exc:
        _failed(zone, actor, a.id, done, getattr(exc, "message", str(exc)))
        raise
    with zone.unit_of_work() as db:
        a = _find(db, application_id)
        _pending(a, "approve")
        a.status, a.expires_at, a.decided_project = A.APPROVED, moment, name
        a.decided_at, a.decided_by, a.progress = zone.now(), actor.name, done
        zone.record(db, actor, "application.approved", f"application:{a.id}", project=name,
                    created=create, expires_at=moment.isoformat(), datasets=list(a.datasets),
                    members=[a.applicant, *a.fellows], steps=done)
        return _view(a)


def _failed(zone: Zone, actor: Identity, application_id: str, done: list[str],
            error: str) -> None:
    """Keep what a failed approval did, so the next attempt and the audit trail know."""
    try:
        with zone.unit_of_work() as db:
            a = _find(db, application_id)
            a.progress = done
            zone.record(db, actor, "application.approval_failed",
                        f"application:{application_id}", steps=done, error=error[:500])
    except SafezoneError:  # the original error matters more; the steps are audited anyway
        pass


def _unpublished(zone: Zone, names: list[str]) -> list[str]:
    offered = {d.name for d in published(zone)}
    return [n for n in names if n not in offered]


def _attached(zone: Zone, project_name: str) -> set[str]:
    with zone.sessions() as db:
        return set(db.scalars(select(Dataset.name).join(
            ProjectDataset, ProjectDataset.dataset_id == Dataset.id).join(
            Project, Project.id == ProjectDataset.project_id).where(
            Project.name == project_name)))


def too_large(content_length: str | None) -> None:
    """Refuse a body far over the plan's limit before it is read (413); a body within a
    little of the limit is read and refused with the field's message instead."""
    limit = load_rules().plan_max_bytes + (1 << 20)
    if content_length and content_length.isdigit() and int(content_length) > limit:
        raise TooLarge(f"the upload is over {limit:,} bytes; a research plan may be at most "
                       f"{load_rules().plan_max_bytes:,} bytes (파일이 너무 큽니다)")
