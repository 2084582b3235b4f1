"""Each Safezone user name belongs to one person of the identity provider: its ``sub``.

A Safezone name comes from a username claim (``preferred_username``, an e-mail address),
which an institution may later give to someone else; the ``sub`` (subject) of an issuer
never changes hands. The first login with a name binds the name to the issuer and subject
of that login; a later login that maps to the same name with another subject (or from
another issuer) is refused, so the newcomer gets nothing of the first person's account.

The bindings live in the hub's own database (table ``safezone_idp_subjects``), next to
the hub's users, and are as durable as they are. A name the hub knew before bindings
existed is bound at its next login. An operator releases a name (the same person under a
new ``sub``, after checking) by deleting its row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, DateTime, MetaData, String, Table, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

SUBJECTS = Table(
    "safezone_idp_subjects", MetaData(),
    Column("name", String(255), primary_key=True),
    Column("issuer", String(2048), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("bound_at", DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class Binding:
    """Who a Safezone name belongs to."""

    name: str
    issuer: str
    subject: str
    bound_at: datetime

    def belongs_to(self, issuer: str, subject: str) -> bool:
        return (self.issuer, self.subject) == (issuer, subject)


def ensure_table(db: Session) -> None:
    """Create the bindings' table in the hub's database if it is not there yet."""
    SUBJECTS.create(db.connection(), checkfirst=True)
    db.commit()


def binding_of(db: Session, name: str) -> Binding | None:
    row = db.execute(select(SUBJECTS).where(SUBJECTS.c.name == name)).first()
    return Binding(row.name, row.issuer, row.subject, row.bound_at) if row else None


def bind(db: Session, name: str, issuer: str, subject: str, now: datetime) -> Binding:
    """The binding of ``name``: the one it has, or, at its first login, one to this
    issuer and subject (committed before the login goes on)."""
    if not subject:
        raise ValueError("a login without a subject (sub) cannot be bound")
    found = binding_of(db, name)
    if found is not None:
        return found
    try:
        db.execute(insert(SUBJECTS).values(name=name, issuer=issuer, subject=subject,
                                           bound_at=now))
        db.commit()
    except IntegrityError:  # bound meanwhile by another login: that one holds
        db.rollback()
    found = binding_of(db, name)
    if found is None:
        raise RuntimeError(f"the binding of {name} was neither found nor made")
    return found
