"""The export state machine: one table of what each state allows.

    draft ─submit→ submitted ─start_checks→ checking ─finish_checks→ in_review
    in_review ─(votes)→ approved | returned | rejected;  returned ─submit→ submitted
    approved ─release→ released ─revoke→ revoked
    draft / submitted / checking / in_review / returned ─withdraw→ withdrawn

Who may take a transition is the permission table's business (``policies/permissions.yaml``,
action ``export.<name>``); transitions marked ``system`` are taken by the control plane
itself (checks finished, votes tallied), never on a caller's word.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidTransition
from ..models import ExportStatus as S


@dataclass(frozen=True)
class Transition:
    sources: frozenset[S]
    target: S
    system: bool = False  # taken by the control plane, not through a route


def _t(sources: set[S], target: S, system: bool = False) -> Transition:
    return Transition(frozenset(sources), target, system)


TRANSITIONS: dict[str, Transition] = {
    "submit": _t({S.DRAFT, S.RETURNED}, S.SUBMITTED),
    "start_checks": _t({S.SUBMITTED}, S.CHECKING, system=True),
    "finish_checks": _t({S.CHECKING}, S.IN_REVIEW, system=True),
    "approve": _t({S.IN_REVIEW}, S.APPROVED, system=True),
    "return": _t({S.IN_REVIEW}, S.RETURNED, system=True),
    "reject": _t({S.IN_REVIEW}, S.REJECTED, system=True),
    "release": _t({S.APPROVED}, S.RELEASED),
    "withdraw": _t({S.DRAFT, S.SUBMITTED, S.CHECKING, S.IN_REVIEW, S.RETURNED}, S.WITHDRAWN),
    "revoke": _t({S.RELEASED}, S.REVOKED),
}
TERMINAL = frozenset({S.REJECTED, S.WITHDRAWN, S.REVOKED})
REVIEW_OPEN = frozenset({S.SUBMITTED, S.CHECKING, S.IN_REVIEW})


def next_state(action: str, current: S) -> S:
    """The state after ``action``, or a sentence saying why the current state refuses it."""
    transition = TRANSITIONS.get(action)
    if transition is None:
        raise InvalidTransition(f"unknown action {action!r}")
    if current not in transition.sources:
        raise InvalidTransition(f"cannot {action} an export request that is {current.value} "
                                f"(현재 상태에서 불가: {current.value})")
    return transition.target
