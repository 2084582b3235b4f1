"""The control plane's context: database, storage broker, clock, hub client, audit."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from . import audit
from .clock import Clock
from .config import Settings
from .db import make_engine, migrate, session_factory
from .hub import HubClient
from .permissions import Identity
from .storage.broker import StorageBroker

log = logging.getLogger(__name__)


@dataclass
class Zone:
    """Everything a control-plane operation needs; one per process."""

    settings: Settings
    sessions: sessionmaker[Session]
    broker: StorageBroker
    hub: HubClient
    clock: Clock = field(default_factory=Clock)
    namespaces: Any = None  # kube.provision.ProjectNamespaces in Kubernetes mode

    @classmethod
    def from_settings(cls, settings: Settings, *, run_migrations: bool = True) -> Zone:
        if run_migrations:
            migrate(settings.database_url)
        engine = make_engine(settings.database_url)
        namespaces = None
        if settings.kubernetes:
            from .kube.provision import ProjectNamespaces

            namespaces = ProjectNamespaces.from_environment()
        return cls(
            settings=settings,
            sessions=session_factory(engine),
            broker=StorageBroker(settings.storage),
            hub=HubClient(settings.hub_api_url, settings.service_token),
            namespaces=namespaces,
        )

    def now(self) -> datetime:
        return self.clock.now()

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """A transaction; after it commits, the audit head is anchored in MinIO."""
        with self.sessions() as db:
            with db.begin():
                yield db
            head = audit.head(db)
        if head and head.seq:
            self.anchor(head)

    def anchor(self, head: audit.Anchor) -> None:
        try:
            self.broker.write_anchor(head.seq, head.hash)
        except Exception as exc:  # the chain stays valid; the next commit anchors again
            log.warning("could not anchor audit head %s: %s", head.seq, exc)

    def record(self, db: Session, actor: Identity, action: str, subject: str,
               **data: Any) -> None:
        """Append an audit event inside the current transaction."""
        audit.append(db, now=self.now(), actor=actor.label, action=action, subject=subject,
                     data=data)
