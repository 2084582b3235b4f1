"""The control plane's context: database, storage broker, clock, hub client, audit."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from . import audit
from .changes import announce_everything, follow
from .clock import Clock
from .coalesce import Coalescer
from .config import Settings
from .db import make_engine, migrate, session_factory, take_write_turn
from .hub import HubClient
from .permissions import Identity
from .read_cache import ReadCache
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
    reads: ReadCache = field(init=False, repr=False)  # lists kept until their tables change
    # what else an audit event makes in its transaction (records.sources.install)
    carriers: list[Callable[[Session, audit.AuditEvent], None]] = field(
        default_factory=list, init=False, repr=False)
    # concurrent identical calls (MinIO listings, a parent's policy) share one run
    coalesced: Coalescer = field(default_factory=Coalescer, init=False, repr=False)
    # recent measurements a hot path may reuse: key -> (time.monotonic(), value)
    measured: dict[Any, tuple[float, Any]] = field(default_factory=dict, init=False,
                                                   repr=False)
    # audit anchoring state of this process (see unit_of_work)
    _anchored: audit.Anchor | None = field(default=None, init=False, repr=False)
    _unanchored_seq: int = field(default=0, init=False, repr=False)
    _anchor_turn: threading.Condition = field(default_factory=threading.Condition,
                                              init=False, repr=False)
    _anchor_writing: bool = field(default=False, init=False, repr=False)
    _committed: audit.Anchor | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        engine = self.sessions.kw["bind"]
        self.reads = ReadCache(follow(engine, self.sessions), self.now)

    @classmethod
    def from_settings(cls, settings: Settings, *, run_migrations: bool = True) -> Zone:
        if run_migrations:
            migrate(settings.database_url)
        engine = make_engine(settings.database_url)
        if run_migrations:  # other processes' read models may hold what it changed
            announce_everything(engine)
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
        """A transaction; after it commits, the audit head is anchored in MinIO.

        No action proceeds unanchored. If the anchor write after a commit fails, the
        change has committed (it is not undone) but the caller gets ``AuditUnanchored``
        (a ``StorageError``, HTTP 503, ``committed=True``) and the zone is *unanchored*.
        While it is, every unit of work first re-tries anchoring the current head and,
        if that fails too, raises ``AuditUnanchored(committed=False)`` before opening a
        transaction: no row, no audit event. The first success anchors the head, which
        covers the change whose anchor failed, and work resumes. The state is per process.
        Callers that undo side effects on error must not undo them when ``committed``.
        """
        self.require_anchored()
        with self.sessions() as db:
            with db.begin():
                take_write_turn(db)  # writers take turns from the first statement
                self._notice(audit.lock_head(db))
                yield db
            head = audit.locked_head(db, release=True)  # as committed, with its events
        if head and head.seq:
            self.anchor(head)

    @contextmanager
    def bookkeeping(self) -> Iterator[Session]:
        """A transaction that records no audit event (a grant's intent row): the writers'
        turn on SQLite, but not the audit head's lock, so it waits for no audited work."""
        with self.sessions() as db, db.begin():
            take_write_turn(db)
            yield db

    @property
    def unanchored(self) -> bool:
        """True while a head whose anchor write failed has not been anchored since."""
        return self._unanchored_seq > (self._anchored.seq if self._anchored else 0)

    def require_anchored(self) -> None:
        """Refuse to start work while unanchored, after one more try at the current head."""
        if not self.unanchored:
            return
        with self.sessions() as db:
            head = audit.head(db)
        if head and head.seq:
            self.anchor(head, committed=False)
        else:
            with self._anchor_turn:
                self._unanchored_seq = 0

    def anchor(self, head: audit.Anchor, *, committed: bool = True) -> None:
        """Return once an anchor at or after ``head`` is stored (group commit).

        An anchor vouches for its event and every event before it (the links carry the
        hashes), so one write covers every unit of work that committed before it: while
        one thread writes, the others wait, and the next write anchors the newest head
        for all of them. Nobody returns before an anchor covering their change exists;
        a failed write fails the writer and every waiter it covered. The newest head is
        the newest any unit of work of this process committed (no query: each process
        anchors its own).
        """
        with self._anchor_turn:
            if self._committed is None or head.seq >= self._committed.seq:
                self._committed = head
            while not self._covered(head):
                if not self._anchor_writing:
                    self._anchor_writing = True
                    # a later head this process committed covers this one too
                    newest = self._committed if self._committed.seq > head.seq else head
                    break
                self._anchor_turn.wait()
            else:
                return
        try:
            self.broker.write_anchor(newest.seq, newest.hash)
        except Exception as exc:
            with self._anchor_turn:
                self._unanchored_seq = max(self._unanchored_seq, newest.seq)
                self._anchor_writing = False
                self._anchor_turn.notify_all()
            log.error("could not anchor audit head %s: %s", newest.seq, exc)
            raise audit.AuditUnanchored(committed=committed) from exc
        with self._anchor_turn:
            if self._anchored is None or newest.seq >= self._anchored.seq:
                self._anchored = newest
            self._anchor_writing = False
            self._anchor_turn.notify_all()

    def _notice(self, head: audit.Anchor) -> None:
        """The head as the database has it now: when it is behind what this process
        committed (a restore, a failover to a replica that lagged), forget the newer one,
        so no anchor is ever written for a head the database no longer holds."""
        with self._anchor_turn:
            if self._committed is not None and head.seq < self._committed.seq:
                log.warning("the audit head went back from %s to %s: anchoring follows the "
                            "database", self._committed.seq, head.seq)
                self._committed = None

    def _covered(self, head: audit.Anchor) -> bool:
        return head == self._anchored or (self._anchored is not None
                                          and self._anchored.seq > head.seq)

    def record(self, db: Session, actor: Identity, action: str, subject: str,
               **data: Any) -> None:
        """Append an audit event inside the current transaction, and whatever the
        ``carriers`` make of it (access records) in the same transaction."""
        event = audit.append(db, now=self.now(), actor=actor.label, action=action,
                             subject=subject, data=data)
        for carry in self.carriers:
            carry(db, event)
