"""SQLAlchemy models: projects, datasets, memberships, session grants, audit events."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, Enum, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    type_annotation_map: ClassVar = {datetime: DateTime(timezone=True), dict[str, Any]: JSON}


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e])


class ProjectStatus(enum.StrEnum):
    ACTIVE = "active"
    ARCHIVED = "archived"


class Classification(enum.StrEnum):
    RAW = "raw"
    DEIDENTIFIED = "deidentified"


class DatasetStatus(enum.StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    WITHDRAWN = "withdrawn"


class MembershipStatus(enum.StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    REVOKED = "revoked"
    EXPIRED = "expired"


class GrantStatus(enum.StrEnum):
    PENDING = "pending"  # recorded before its MinIO identity exists (grants.issue_grant)
    ACTIVE = "active"
    ENDED = "ended"
    REVOKED = "revoked"


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[ProjectStatus] = mapped_column(_enum(ProjectStatus))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))
    # Jupyter terminals in the project's notebook servers (read when a grant is issued)
    terminals: Mapped[bool] = mapped_column(default=False)
    # an administrator's overrides of the policy's quotas (safezone/quotas.py), or none
    quota: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    # the project's end (safezone/destruction): sessions stop, memberships expire, and its
    # data is destroyed after the retention period of policies/retention.yaml
    ends_at: Mapped[datetime | None] = mapped_column(default=None)
    destroyed_at: Mapped[datetime | None] = mapped_column(default=None)  # all of it, certified

    datasets: Mapped[list[Dataset]] = relationship(secondary="project_datasets", lazy="selectin")


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    bucket: Mapped[str] = mapped_column(String(63))
    prefix: Mapped[str] = mapped_column(String(200), default="")
    classification: Mapped[Classification] = mapped_column(_enum(Classification))
    status: Mapped[DatasetStatus] = mapped_column(_enum(DatasetStatus))
    description: Mapped[str] = mapped_column(Text, default="")
    attestation: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    # the catalogue entry (catalogue/metadata.py); publishing needs it complete
    catalogue: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[datetime | None] = mapped_column(default=None)
    published_by: Mapped[str | None] = mapped_column(String(64), default=None)
    # raw datasets: destroyed (every version, certified) once this date has passed
    retain_until: Mapped[datetime | None] = mapped_column(default=None)
    destroyed_at: Mapped[datetime | None] = mapped_column(default=None)


class ProjectDataset(Base):
    __tablename__ = "project_datasets"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), primary_key=True)
    attached_at: Mapped[datetime]
    attached_by: Mapped[str] = mapped_column(String(64))


class Membership(Base):
    """One row per (project, user); its history lives in the audit trail."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("project_id", "user_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    user_name: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[MembershipStatus] = mapped_column(_enum(MembershipStatus))
    justification: Mapped[str] = mapped_column(Text, default="")
    requested_at: Mapped[datetime]
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    decided_by: Mapped[str | None] = mapped_column(String(64), default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    reason: Mapped[str] = mapped_column(Text, default="")
    # once approved, always involved: a later rejection does not erase a conflict of interest
    ever_approved: Mapped[bool] = mapped_column(default=False)

    project: Mapped[Project] = relationship(lazy="joined")


class SessionGrant(Base):
    __tablename__ = "session_grants"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    user_name: Mapped[str] = mapped_column(String(64), index=True)
    server_name: Mapped[str] = mapped_column(String(64), default="")
    access_key: Mapped[str] = mapped_column(String(40), unique=True)
    # the MinIO user whose temporary keys the grant holds; None: an issuer service
    # account (grants issued before temporary keys)
    parent: Mapped[str | None] = mapped_column(String(64), default=None)
    status: Mapped[GrantStatus] = mapped_column(_enum(GrantStatus))
    datasets: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None] = mapped_column(default=None)

    project: Mapped[Project] = relationship(lazy="joined")


class AuditEvent(Base):
    """One link of the hash chain. ``id`` is storage order; ``seq`` and the rest are hashed."""

    __tablename__ = "audit_events"
    __table_args__ = (UniqueConstraint("seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(Integer)
    ts: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(200))
    data: Mapped[dict[str, Any]] = mapped_column()
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """Single row locked while appending, so concurrent writers serialise on PostgreSQL."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    hash: Mapped[str] = mapped_column(String(64))


class ExportStatus(enum.StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    CHECKING = "checking"
    IN_REVIEW = "in_review"
    RETURNED = "returned"
    APPROVED = "approved"
    REJECTED = "rejected"
    RELEASED = "released"
    WITHDRAWN = "withdrawn"
    REVOKED = "revoked"


class VoteDecision(enum.StrEnum):
    APPROVE = "approve"
    REQUEST_CHANGES = "request_changes"
    REJECT = "reject"


class ExportRequest(Base):
    """A researcher's request to take files out of the zone."""

    __tablename__ = "export_requests"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    requester: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[ExportStatus] = mapped_column(_enum(ExportStatus))
    title: Mapped[str] = mapped_column(String(200), default="")
    round: Mapped[int] = mapped_column(Integer, default=0)
    required_approvals: Mapped[int] = mapped_column(Integer, default=1)
    check_record: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # the check worker that took this round (None: waiting); a stale claim is taken again
    checks_claimed_at: Mapped[datetime | None] = mapped_column(default=None)
    # a notebook server's token wrote its title or a file's group or justification: text
    # from inside the zone, shown outside only to its reviewers until released
    text_from_zone: Mapped[bool] = mapped_column(default=False)

    project: Mapped[Project] = relationship(lazy="joined")
    files: Mapped[list[ExportFile]] = relationship(
        lazy="selectin", order_by="ExportFile.id", cascade="all, delete-orphan")
    votes: Mapped[list[ReviewVote]] = relationship(lazy="selectin", order_by="ReviewVote.id")


class ExportFile(Base):
    """One file of a request: its outbox path, group justification and frozen copy."""

    __tablename__ = "export_files"
    __table_args__ = (UniqueConstraint("request_id", "path"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("export_requests.id"), index=True)
    path: Mapped[str] = mapped_column(String(512))
    group: Mapped[str] = mapped_column(String(100), default="")
    justification: Mapped[str] = mapped_column(Text, default="")
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    size: Mapped[int | None] = mapped_column(Integer, default=None)
    quarantine_key: Mapped[str | None] = mapped_column(String(700), default=None)
    frozen_version: Mapped[str | None] = mapped_column(String(100), default=None)
    kind: Mapped[str | None] = mapped_column(String(20), default=None)
    # what a release copies: the sanitised form the reviewer saw (images re-encoded)
    release_form_key: Mapped[str | None] = mapped_column(String(700), default=None)
    release_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    preview_key: Mapped[str | None] = mapped_column(String(700), default=None)
    released_key: Mapped[str | None] = mapped_column(String(700), default=None)


class ReleasedIndex(Base):
    """The compact summary of a released table that the differencing rule compares with,
    so checks never re-read earlier releases."""

    __tablename__ = "released_indexes"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("export_requests.id"), index=True)
    path: Mapped[str] = mapped_column(String(512))
    index: Mapped[dict[str, Any]] = mapped_column()
    released_at: Mapped[datetime]


class ReviewVote(Base):
    __tablename__ = "review_votes"
    __table_args__ = (UniqueConstraint("request_id", "file_id", "reviewer", "round"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("export_requests.id"), index=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("export_files.id"))
    reviewer: Mapped[str] = mapped_column(String(64))
    round: Mapped[int] = mapped_column(Integer)
    decision: Mapped[VoteDecision] = mapped_column(_enum(VoteDecision))
    comment: Mapped[str] = mapped_column(Text, default="")
    override_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]


class PageLogout(Base):
    """A page session ended by its holder: its token is refused until it would expire."""

    __tablename__ = "page_logouts"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    until: Mapped[datetime]


class DownloadLink(Base):
    """A revocable, counted link to one released file; only its hash is stored."""

    __tablename__ = "download_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("export_requests.id"), index=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("export_files.id"))
    expires_at: Mapped[datetime]
    max_downloads: Mapped[int] = mapped_column(Integer)
    downloads: Mapped[int] = mapped_column(Integer, default=0)
    revoked: Mapped[bool] = mapped_column(default=False)


class AuditVerification(Base):
    """One run of ``audit.verify`` against every stored anchor, and who ran it."""

    __tablename__ = "audit_verifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    ran_at: Mapped[datetime] = mapped_column(index=True)
    intact: Mapped[bool] = mapped_column()
    events: Mapped[int] = mapped_column(Integer)
    anchors_checked: Mapped[int] = mapped_column(Integer)
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    ran_by: Mapped[str] = mapped_column(String(64))


class ApplicationStatus(enum.StrEnum):
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class Application(Base):
    """An application for access (이용 신청): purpose, datasets, period, fellow analysts, the
    research plan's object in MinIO (key and SHA-256, never the bytes) and the pledge."""

    __tablename__ = "applications"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    applicant: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[ApplicationStatus] = mapped_column(_enum(ApplicationStatus), index=True)
    purpose: Mapped[str] = mapped_column(Text)
    datasets: Mapped[list[str]] = mapped_column(JSON)
    fellows: Mapped[list[str]] = mapped_column(JSON)
    period_end: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD, access ends that day
    project: Mapped[str | None] = mapped_column(String(40), default=None)  # joining one
    plan_key: Mapped[str | None] = mapped_column(String(300), default=None)
    plan_name: Mapped[str | None] = mapped_column(String(200), default=None)
    plan_size: Mapped[int | None] = mapped_column(Integer, default=None)
    plan_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    pledge_version: Mapped[str] = mapped_column(String(40))
    pledge_sha256: Mapped[str] = mapped_column(String(64))
    pledge_language: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime]
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    decided_by: Mapped[str | None] = mapped_column(String(64), default=None)
    reason: Mapped[str] = mapped_column(Text, default="")
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    decided_project: Mapped[str | None] = mapped_column(String(40), default=None)
    # the steps of an approval done so far (a failed approval keeps them for the retry)
    progress: Mapped[list[str]] = mapped_column(JSON, default=list)


class Destruction(Base):
    """One part of the destruction (파기) of a project's data or a raw dataset, and its
    certificate. Part 1 destroys everything not under an object lock; a later part
    destroys what was locked once the lock has ended. ``inventory`` is every version found
    (kept before anything is deleted, so a resumed run still certifies what a killed one
    deleted); ``state``: running -> certified -> stored (the JSON is in the audit bucket)."""

    __tablename__ = "destructions"
    __table_args__ = (UniqueConstraint("kind", "subject", "part"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # project | dataset
    subject: Mapped[str] = mapped_column(String(63), index=True)
    part: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(20))
    policy: Mapped[dict[str, Any]] = mapped_column()
    started_at: Mapped[datetime]
    started_by: Mapped[str] = mapped_column(String(64))
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    retry_at: Mapped[datetime | None] = mapped_column(default=None)
    pending_from: Mapped[datetime | None] = mapped_column(default=None)
    inventory: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    certificate: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    certificate_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    certificate_key: Mapped[str | None] = mapped_column(String(300), default=None)


class AccessRecord(Base):
    """One access record (접속기록): who, when, from where, what data, which action. A link
    of its own hash chain (safezone/records/chain.py); ``id`` is storage order."""

    __tablename__ = "access_records"
    __table_args__ = (UniqueConstraint("seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(Integer)
    ts: Mapped[str] = mapped_column(String(32), index=True)  # UTC, fixed width, sortable
    account: Mapped[str] = mapped_column(String(200), index=True)
    source: Mapped[str] = mapped_column(String(64), default="")
    action: Mapped[str] = mapped_column(String(64), index=True)
    project: Mapped[str] = mapped_column(String(64), default="")
    dataset: Mapped[str] = mapped_column(String(400), default="")
    target: Mapped[str] = mapped_column(String(1024), default="")
    outcome: Mapped[str] = mapped_column(String(16), default="ok")
    detail: Mapped[dict[str, Any]] = mapped_column()
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class RecordsHead(Base):
    """The records chain's head (locked while appending) and its base: the last record
    deleted by retention (seq 0 and the genesis hash while none was)."""

    __tablename__ = "access_records_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    hash: Mapped[str] = mapped_column(String(64))
    base_seq: Mapped[int] = mapped_column(Integer, default=0)
    base_hash: Mapped[str] = mapped_column(String(64))
