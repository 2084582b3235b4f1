"""Session grants: the short-lived MinIO identity behind one notebook server.

A grant is issued only to the hub's spawner, for a user with an approved, unexpired
membership of an active project. Its policy is generated from the project's published,
de-identified datasets and held by a *session parent* (``storage.broker``); the grant gets
temporary keys of that parent. Ending a grant revokes its keys, which MinIO refuses at once.
Running grants follow later changes of the catalogue through ``safezone.access``.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from . import failpoints, quotas
from .audit import AuditUnanchored
from .clock import as_utc
from .deid import integrity
from .errors import Conflict, InvalidInput, NotFound, PermissionDenied, StorageError
from .models import (
    Classification,
    Dataset,
    DatasetStatus,
    GrantStatus,
    Membership,
    Project,
    ProjectDataset,
    ProjectStatus,
    SessionGrant,
)
from .naming import check_user_name
from .permissions import Identity, require
from .standing import refuse_unless_usable, status_at
from .storage.broker import session_parent
from .storage.policies import DatasetLocation, session_policy
from .zone import Zone

log = logging.getLogger(__name__)
# a grant still pending this long was left by a process that died while issuing it
PENDING_GRACE = timedelta(seconds=15)
ABANDONED = ("the session grant was abandoned while it was being issued; start the server "
             "again (세션 발급 중단)")


class SessionsNotRefreshed(StorageError):
    """A change of access is recorded, but some running sessions still hold the old access
    (MinIO failed); the control plane's sweeper retries until they follow."""

    status_code = 503


@dataclass(frozen=True)
class IssuedGrant:
    """What the spawner receives; the secret key and session token are shown once and
    never stored."""

    grant_id: str
    project: str
    user: str
    server_name: str
    access_key: str
    secret_key: str
    session_token: str
    expires_at: datetime
    endpoint_url: str
    region: str
    datasets: list[dict[str, str]] = field(default_factory=list)
    terminals: bool = False  # the project's setting when the grant was issued

    def environment(self) -> dict[str, str]:
        """Environment variables of the notebook server (boto3, s3fs and the helper)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_SESSION_TOKEN": self.session_token,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "SAFEZONE_GRANT_ID": self.grant_id,
            "SAFEZONE_PROJECT": self.project,
            "SAFEZONE_USER": self.user,
            "SAFEZONE_GRANT_EXPIRES": self.expires_at.isoformat(),
            "SAFEZONE_DATASETS": json.dumps(self.datasets),
            "SAFEZONE_WORK_URI": f"s3://work/{self.project}/",
            "SAFEZONE_OUTBOX_URI": f"s3://outbox/{self.project}/{self.user}/",
            "SAFEZONE_TERMINALS": "1" if self.terminals else "0",
        }


# What a project's sessions may read: its attached datasets of this classification and
# status (whether their objects are still the attested ones is checked per grant).
READABLE = (Classification.DEIDENTIFIED, DatasetStatus.PUBLISHED)


def readable_datasets(project: Project) -> list[Dataset]:
    """The project's datasets its sessions may read (``READABLE``)."""
    return [d for d in project.datasets if (d.classification, d.status) == READABLE]


def readable_now(project_id: Any, *columns: Any) -> Select:
    """``readable_datasets`` as a query of ``columns`` (by default those a grant needs; no
    ORM rows: a grant reads them on every spawn)."""
    columns = columns or (Dataset.name, Dataset.bucket, Dataset.prefix, Dataset.attestation)
    return (select(*columns)
            .join(ProjectDataset, ProjectDataset.dataset_id == Dataset.id)
            .where(ProjectDataset.project_id == project_id,
                   Dataset.classification == READABLE[0], Dataset.status == READABLE[1])
            .order_by(Dataset.name))


def _still_attested(zone: Zone, actor: Identity, datasets: list) -> list:
    """The datasets whose stored objects are still exactly the attested ones; any other is
    taken out of sessions on the spot (withdrawn, audited) and left out of this grant.
    Each is listed after the grant was asked for; concurrent grants share that listing."""
    from .datasets import take_out_of_sessions

    kept = []
    for dataset in datasets:
        listed = zone.coalesced.run(
            ("objects", dataset.bucket, dataset.prefix),
            lambda d=dataset: zone.broker.current_objects(d.bucket, d.prefix))
        problems = integrity.stored_problems(zone.broker, dataset.bucket, dataset.prefix,
                                             dataset.attestation, listed)
        if problems:
            log.warning("dataset %s left out of a session: %s", dataset.name, problems)
            take_out_of_sessions(zone, actor, dataset.name, problems)
        else:
            kept.append(dataset)
    return kept


@dataclass(frozen=True)
class _Asked:
    """What the database says of one grant request, read in one query."""

    project_id: int
    quota: quotas.Quota
    member_until: datetime  # the membership's expiry
    running: int  # the project's live grants, less the one replaced
    replacing: int  # live grants of this user's server of that name (in any project)
    datasets: list[Any]


def _facts_query() -> Select:
    """Project, membership, quota use and the server's live grants, in one query
    (parameters: project, user, server)."""
    user, server = bindparam("user"), bindparam("server")
    replaced = (SessionGrant.user_name == user) & (SessionGrant.server_name == server)
    same_server = (select(func.count()).select_from(SessionGrant)
                   .where(SessionGrant.status == GrantStatus.ACTIVE, replaced))
    pending = select(SessionGrant.status).where(SessionGrant.id == bindparam("grant"))
    return (select(Project.id, Project.status, Project.quota, Project.terminals,
                   Membership.status.label("member"), Membership.expires_at,
                   quotas.running_servers(Project.id, (user, server))
                   .scalar_subquery().label("running"),
                   same_server.scalar_subquery().label("same_server"),
                   pending.scalar_subquery().label("pending"))
            .outerjoin(Membership, (Membership.project_id == Project.id)
                       & (Membership.user_name == user))
            .where(Project.name == bindparam("project")))


# built once: a grant runs these on every spawn, and building a statement costs more CPU
# than running it
_FACTS = _facts_query()
_READABLE = readable_now(bindparam("project_id"))
_GRANTS = SessionGrant.__table__
_INTENT = insert(_GRANTS)
_ACTIVATE = (update(_GRANTS)
             .where(_GRANTS.c.id == bindparam("grant"), _GRANTS.c.status == GrantStatus.PENDING)
             .values(status=GrantStatus.ACTIVE, access_key=bindparam("key")))


def _facts(db: Session, project_name: str, user: str, server_name: str,
           grant_id: str = "") -> Any:
    return db.connection().execute(_FACTS, {"project": project_name, "user": user,
                                            "server": server_name, "grant": grant_id}
                                   ).first()


def _ask(zone: Zone, project_name: str, user: str, server_name: str) -> _Asked:
    """Refuse what the database already refuses: archived project, no usable membership,
    a full quota. Reads everything a grant needs in two queries."""
    with zone.sessions() as db:
        row = _facts(db, project_name, user, server_name)
        if row is None:
            raise NotFound(f"no project named {project_name!r} (프로젝트 없음)")
        datasets = list(db.connection().execute(_READABLE, {"project_id": row.id}))
    if row.status is not ProjectStatus.ACTIVE:
        raise PermissionDenied(f"project {project_name} is archived")
    member = status_at(row.member, row.expires_at, zone.now()) if row.member else None
    refuse_unless_usable(member, project_name, user)
    quota = quotas.quota_with(row.quota)
    quotas.refuse_unless_room(project_name, quota, row.running)
    return _Asked(row.id, quota, row.expires_at, row.running, row.same_server, datasets)


def issue_grant(zone: Zone, actor: Identity, user: str, project_name: str,
                server_name: str = "") -> IssuedGrant:
    """Check the membership, create the session identity, record the grant."""
    require("grant.issue", actor)
    check_user_name(user)
    if len(server_name) > 64:
        raise InvalidInput("server name is longer than 64 characters")
    now = zone.now()
    asked = _ask(zone, project_name, user, server_name)
    ends = min(as_utc(asked.member_until),
               now + timedelta(hours=zone.settings.session_ttl_hours))
    datasets = _still_attested(zone, actor, asked.datasets)
    policy = parent_policy(zone, project_name, user, datasets, asked.quota)
    if asked.replacing:  # the hub spawns one server of a name at a time
        end_grants_where(zone, actor, user=user, server_name=server_name, reason="replaced",
                         stop_servers=False)
    grant_id = secrets.token_hex(8)
    parent = session_parent(project_name, user, [d.name for d in datasets])
    listed = [{"name": d.name, "uri": f"s3://{d.bucket}/{d.prefix}"} for d in datasets]
    with zone.bookkeeping() as db:  # the intent first: a crash past it leaves no orphan
        db.connection().execute(_INTENT, {
            "id": grant_id, "project_id": asked.project_id, "user_name": user,
            "server_name": server_name, "access_key": f"pending-{grant_id}",
            "parent": parent, "status": GrantStatus.PENDING,
            "datasets": {"datasets": listed}, "created_at": now, "expires_at": ends,
            "ended_at": None})
    try:
        _prepare_parent(zone, project_name, user, parent, policy, datasets)
        keys = zone.broker.issue_session_keys(parent, grant_id, ends)
        failpoints.reach("grant.identity_created")
        terminals = _activate(zone, actor, grant_id, project_name, user, server_name,
                              listed, ends, keys.access_key)
    except Exception as exc:
        # The keys never reach the spawner, so they go, also when the grant row was saved
        # but could not be anchored (its keys are then simply revoked).
        zone.broker.revoke_session_keys(parent, grant_id)
        if not (isinstance(exc, AuditUnanchored) and exc.committed):
            _forget_pending(zone, grant_id)
        raise
    return IssuedGrant(grant_id, project_name, user, server_name, keys.access_key,
                       keys.secret_key, keys.session_token, ends,
                       zone.settings.storage.public_endpoint, zone.settings.storage.region,
                       listed, terminals)


def parent_policy(zone: Zone, project_name: str, user: str, datasets: list,
                  quota: quotas.Quota | None = None) -> dict:
    """What a session of ``user`` in the project holding ``datasets`` may do (``quota``:
    the project's, when the caller has just read it)."""
    storage = zone.settings.storage
    policy = session_policy(project_name, user,
                            [DatasetLocation(d.name, d.bucket, d.prefix) for d in datasets],
                            networks=storage.notebook_networks,
                            excluded=storage.notebook_excluded)
    return quotas.within_storage_quota(zone, project_name, policy, quota)


def _prepare_parent(zone: Zone, project_name: str, user: str, parent: str, policy: dict,
                    datasets: list) -> None:
    """The parent exists and holds ``policy``, written after this grant was asked for
    (concurrent grants of one parent and policy share the write); then the datasets are
    read again (``_recheck_datasets``)."""
    written = json.dumps(policy, sort_keys=True)
    zone.coalesced.run(("parent policy", parent, written),
                       lambda: zone.broker.prepare_session_parent(parent, policy))
    _recheck_datasets(zone, project_name, user, parent, datasets)


def _recheck_datasets(zone: Zone, project_name: str, user: str, parent: str,
                      datasets: list) -> None:
    """Writing the parent's policy may have undone a narrowing of the same parent that
    landed after the datasets were read (a withdrawal meanwhile), for its running
    sessions too. So read them again: if one went, put the narrowing back and refuse.
    A withdrawal after this read narrows the parent itself (its refresh comes later)."""
    def read() -> frozenset[str]:
        with zone.sessions() as db:
            project_id = select(Project.id).where(Project.name == project_name)
            return frozenset(db.scalars(readable_now(project_id.scalar_subquery(),
                                                     Dataset.name)))

    readable = zone.coalesced.run(("readable", project_name), read)
    kept = [d for d in datasets if d.name in readable]
    if len(kept) < len(datasets):
        zone.broker.narrow_session_parent(parent, parent_policy(zone, project_name, user,
                                                                 kept))
        raise Conflict("the project's datasets changed while the session was being issued; "
                       "start the server again (데이터셋이 바뀜, 다시 시작하세요)")


def _activate(zone: Zone, actor: Identity, grant_id: str, project_name: str, user: str,
              server_name: str, listed: list[dict[str, str]], ends: datetime,
              access_key: str) -> bool:
    """The pending grant becomes active (audited); returns the project's terminals switch.
    With the audit head locked, one query reads again what may have changed meanwhile: a
    revoke, an archive, another replica's grant of the same server, the quota's use."""
    with zone.unit_of_work() as db:
        row = _facts(db, project_name, user, server_name, grant_id)
        if row is None or row.status is not ProjectStatus.ACTIVE:
            raise PermissionDenied(f"project {project_name} is archived")
        member = status_at(row.member, row.expires_at, zone.now()) if row.member else None
        refuse_unless_usable(member, project_name, user)  # a revoke may have landed
        if row.same_server:  # another replica's, just now
            raise Conflict(f"{user}'s server {server_name or '(default)'} was granted "
                           "a session a moment ago; start it once (이미 세션이 발급됨)")
        if row.pending is not GrantStatus.PENDING:  # reconciled meanwhile
            raise StorageError(ABANDONED)
        # again with the audit head locked: concurrent spawns cannot both pass
        quotas.refuse_unless_room(project_name, quotas.quota_with(row.quota), row.running)
        if db.connection().execute(_ACTIVATE, {"grant": grant_id, "key": access_key}
                                   ).rowcount != 1:  # cannot happen in turn; never silently
            raise StorageError(ABANDONED)
        zone.record(db, actor, "session.granted", f"project:{project_name}/user:{user}",
                    grant=grant_id, access_key=access_key, server=server_name,
                    datasets=[d["name"] for d in listed], expires_at=ends.isoformat())
        return row.terminals


def _forget_pending(zone: Zone, grant_id: str) -> None:
    with zone.bookkeeping() as db:
        grant = db.get(SessionGrant, grant_id)
        if grant is not None and grant.status is GrantStatus.PENDING:
            db.delete(grant)


def reconcile_pending(zone: Zone, actor: Identity) -> int:
    """Grants left pending by a process that died while issuing them (past
    PENDING_GRACE) are revoked, each audited, and then their keys (which may or may not
    exist) are revoked in MinIO by the grant's id. In that order: an issue that was only
    slow finds its grant no longer pending and revokes its own keys (``_activate``), so no
    active grant ever loses its keys here. Keys whose revocation fails still expire with
    the grant's end. Read-only when nothing is due."""
    with zone.sessions() as db:
        due = [g.id for g in db.scalars(select(SessionGrant).where(
            SessionGrant.status == GrantStatus.PENDING,
            SessionGrant.created_at <= zone.now() - PENDING_GRACE))]
    abandoned = 0
    for grant_id in due:
        with zone.unit_of_work() as db:
            grant = db.get(SessionGrant, grant_id)
            if grant is None or grant.status is not GrantStatus.PENDING:
                continue
            zone.record(db, actor, "session.abandoned",
                        f"project:{grant.project.name}/user:{grant.user_name}",
                        grant=grant_id, access_key=grant.access_key,
                        reason="the control plane stopped while issuing it; keys revoked")
            grant.status, grant.ended_at = GrantStatus.REVOKED, zone.now()
            parent, access_key = grant.parent, grant.access_key
        end_keys(zone, grant_id, parent, access_key)
        abandoned += 1
    return abandoned


def end_grant(zone: Zone, actor: Identity, grant_id: str, reason: str = "stopped") -> None:
    """End one grant (idempotent): revoke its keys, then mark it ended."""
    with zone.sessions() as db:
        grant = db.get(SessionGrant, grant_id)
        if grant is None:
            raise NotFound(f"no session grant {grant_id!r}")
        require("grant.end", actor)
        if grant.status is not GrantStatus.ACTIVE:
            return
    _end(zone, actor, grant, GrantStatus.ENDED, reason)


def end_keys(zone: Zone, grant_id: str, parent: str | None, access_key: str) -> None:
    """MinIO refuses a grant's keys from now on (already refused is fine)."""
    if parent is None:  # issued before temporary keys: a service account of the issuer
        zone.broker.delete_legacy_identity(access_key)
    else:
        zone.broker.revoke_session_keys(parent, grant_id)


def _end(zone: Zone, actor: Identity, grant: SessionGrant, status: GrantStatus,
         reason: str) -> None:
    end_keys(zone, grant.id, grant.parent, grant.access_key)
    with zone.unit_of_work() as db:
        row = db.get(SessionGrant, grant.id)
        if row is None or row.status is not GrantStatus.ACTIVE:
            return
        row.status, row.ended_at = status, zone.now()
        zone.record(db, actor, f"session.{status.value}",
                    f"project:{row.project.name}/user:{row.user_name}", grant=row.id,
                    reason=reason)


def end_grants_where(zone: Zone, actor: Identity, *, project_name: str | None = None,
                     user: str | None = None, server_name: str | None = None,
                     reason: str, stop_servers: bool = True) -> list[SessionGrant]:
    """Revoke every active grant matching the filters and stop their servers."""
    query = select(SessionGrant).where(SessionGrant.status == GrantStatus.ACTIVE)
    if project_name is not None:
        query = query.join(Project).where(Project.name == project_name)
    if user is not None:
        query = query.where(SessionGrant.user_name == user)
    if server_name is not None:
        query = query.where(SessionGrant.server_name == server_name)
    with zone.sessions() as db:
        matching = list(db.scalars(query))
    for index, grant in enumerate(matching):
        if not stop_servers:  # a grant being replaced: failing fails the new one
            _end(zone, actor, grant, GrantStatus.REVOKED, reason)
            continue
        try:
            revoke_grant(zone, actor, grant, reason)
        except StorageError as exc:
            raise SessionsNotRefreshed(
                f"{reason}: recorded, but {len(matching) - index} running session(s) could "
                f"not be ended yet ({exc.message}); the control plane keeps retrying"
            ) from exc
    return matching


def revoke_grant(zone: Zone, actor: Identity, grant: SessionGrant, reason: str) -> None:
    """End a grant whose access was taken away (keys revoked first) and stop its
    server."""
    _end(zone, actor, grant, GrantStatus.REVOKED, reason)
    zone.hub.stop_server(grant.user_name, grant.server_name)


def end_expired_grants(zone: Zone, actor: Identity) -> int:
    """Grants past their end (MinIO's own expiry may lag by up to 16 minutes)."""
    with zone.sessions() as db:  # read-only unless something is due: cheap every round
        due = list(db.scalars(select(SessionGrant).where(
            SessionGrant.status == GrantStatus.ACTIVE, SessionGrant.expires_at <= zone.now())))
    for grant in due:
        _end(zone, actor, grant, GrantStatus.ENDED, "expired")
        zone.hub.stop_server(grant.user_name, grant.server_name)
    return len(due)


def active_grants(zone: Zone) -> list[SessionGrant]:
    with zone.sessions() as db:
        return list(db.scalars(select(SessionGrant).where(
            SessionGrant.status == GrantStatus.ACTIVE)))
