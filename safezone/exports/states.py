"""The export state machine: one table, with the party allowed to take each transition.

    draft ─submit→ submitted ─start_checks→ checking ─finish_checks→ in_review
    in_review ─(votes)→ approved | returned | rejected;  returned ─submit→ submitted
    approved ─release→ released ─revoke→ revoked
    draft / submitted / in_review / returned ─withdraw→ withdrawn
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..errors import InvalidTransition, PermissionDenied
from ..models import ExportStatus as S


class Party(enum.StrEnum):
    REQUESTER = "requester"
    REVIEWER = "reviewer"
    ADMIN = "admin"
    SYSTEM = "system"  # the control plane itself (checks finished, votes tallied)


@dataclass(frozen=True)
class Transition:
    sources: frozenset[S]
    target: S
    parties: frozenset[Party]


def _t(sources: set[S], target: S, *parties: Party) -> Transition:
    return Transition(frozenset(sources), target, frozenset(parties))


TRANSITIONS: dict[str, Transition] = {
    "submit": _t({S.DRAFT, S.RETURNED}, S.SUBMITTED, Party.REQUESTER),
    "start_checks": _t({S.SUBMITTED}, S.CHECKING, Party.SYSTEM),
    "finish_checks": _t({S.CHECKING}, S.IN_REVIEW, Party.SYSTEM),
    "approve": _t({S.IN_REVIEW}, S.APPROVED, Party.SYSTEM),
    "return": _t({S.IN_REVIEW}, S.RETURNED, Party.SYSTEM),
    "reject": _t({S.IN_REVIEW}, S.REJECTED, Party.SYSTEM),
    "release": _t({S.APPROVED}, S.RELEASED, Party.SYSTEM, Party.ADMIN),
    "withdraw": _t({S.DRAFT, S.SUBMITTED, S.IN_REVIEW, S.RETURNED}, S.WITHDRAWN,
                   Party.REQUESTER),
    "revoke": _t({S.RELEASED}, S.REVOKED, Party.ADMIN, Party.REVIEWER),
}
# Who acts while a request sits in each state (the table above, read the other way).
TERMINAL = frozenset({S.REJECTED, S.WITHDRAWN, S.REVOKED})


def next_state(action: str, current: S, parties: set[Party]) -> S:
    """The state after ``action``, or a sentence saying why it is not allowed."""
    transition = TRANSITIONS.get(action)
    if transition is None:
        raise InvalidTransition(f"unknown action {action!r}")
    if not parties & transition.parties:
        allowed = " or ".join(sorted(p.value for p in transition.parties))
        raise PermissionDenied(f"only the {allowed} may {action} an export request "
                               f"(반출 요청 권한 없음)")
    if current not in transition.sources:
        raise InvalidTransition(f"cannot {action} an export request that is {current.value} "
                                f"(현재 상태에서 불가: {current.value})")
    return transition.target
