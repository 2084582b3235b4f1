"""Who may do what: the permission table ``policies/permissions.yaml``, applied.

Roles come from JupyterHub custom scopes carried by the caller's hub token
(``custom:safezone:admin|review|steward``; the hub's spawner holds
``custom:safezone:sessions``). How a caller stands to the subject of an action is derived in
:func:`relations`; whether that is enough is read from the table in :func:`decide`. Every
route and page names one action and the service behind it calls :func:`require`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from .config import POLICIES_DIR
from .errors import InvalidTransition, PermissionDenied

ADMIN_SCOPE = "custom:safezone:admin"
REVIEW_SCOPE = "custom:safezone:review"
STEWARD_SCOPE = "custom:safezone:steward"
SESSIONS_SCOPE = "custom:safezone:sessions"
ROLE_SCOPES = {"admin": ADMIN_SCOPE, "reviewer": REVIEW_SCOPE, "steward": STEWARD_SCOPE,
               "spawner": SESSIONS_SCOPE}
RELATIONS = frozenset({"user", "browser", "admin", "reviewer", "steward", "spawner",
                       "operator", "notebook", "self", "member", "involved", "requester"})


@dataclass(frozen=True)
class Identity:
    """The authenticated caller, as the hub describes its token."""

    name: str
    kind: str  # "user" or "service"
    scopes: frozenset[str]
    browser: bool = False   # a Safezone page session (hub OAuth), not an API token
    operator: bool = False  # a JupyterHub admin: break-glass, never a Safezone role
    notebook: bool = False  # a notebook server's token, or any call from inside the zone
    inside: bool = False    # the call's TCP peer is in the zone's notebook network

    @property
    def is_admin(self) -> bool:
        return ADMIN_SCOPE in self.scopes

    @property
    def is_reviewer(self) -> bool:
        return REVIEW_SCOPE in self.scopes

    @property
    def is_steward(self) -> bool:
        return STEWARD_SCOPE in self.scopes

    @property
    def label(self) -> str:
        return self.name if self.kind == "user" else f"service:{self.name}"


SYSTEM = Identity("safezone", "service", frozenset())


@dataclass(frozen=True)
class Subject:
    """What an action is about, and the facts about it the relations need."""

    user: str | None = None        # the person the action concerns (membership, listing)
    requester: str | None = None   # the export request's author
    state: str | None = None       # the export request's state
    member: bool = False           # the caller holds a usable membership of the project
    involved: bool = False         # the caller ever asked to join / joined the project


NOTHING = Subject()


@dataclass(frozen=True)
class Rule:
    doing: str
    public: bool
    allow: frozenset[str]
    deny: tuple[str, ...]
    require: tuple[str, ...]
    states: frozenset[str] | None


@dataclass(frozen=True)
class PermissionTable:
    rules: dict[str, Rule]
    messages: dict[str, dict[str, str]]
    who: dict[str, dict[str, str]]

    def rule(self, action: str) -> Rule:
        try:
            return self.rules[action]
        except KeyError:
            raise KeyError(f"action {action!r} is not in policies/permissions.yaml") from None


@cache
def load_table(policies_dir: Path = POLICIES_DIR) -> PermissionTable:
    raw = yaml.safe_load((policies_dir / "permissions.yaml").read_text())
    rules: dict[str, Rule] = {}
    for action, spec in raw["actions"].items():
        named = set(spec.get("allow", [])) | set(spec.get("deny", [])) | set(
            spec.get("require", []))
        unknown = named - RELATIONS
        if unknown:
            raise ValueError(f"{action}: unknown relations {sorted(unknown)}")
        unnamed = set(spec.get("allow", [])) - set(raw["who"])
        if unnamed:
            raise ValueError(f"{action}: no 'who' wording for {sorted(unnamed)}")
        states = spec.get("states")
        moves = _transition_sources(action)
        if moves is not None:
            if states:
                raise ValueError(f"{action}: its states come from the state machine")
            states = moves
        rules[action] = Rule(spec.get("doing", action), bool(spec.get("public")),
                             frozenset(spec.get("allow", [])), tuple(spec.get("deny", [])),
                             tuple(spec.get("require", [])),
                             frozenset(states) if states else None)
    return PermissionTable(rules, raw["messages"], raw["who"])


def _transition_sources(action: str) -> list[str] | None:
    """The states an ``export.<transition>`` may start from (exports/states.py)."""
    from .exports.states import TRANSITIONS

    kind, _, name = action.partition(".")
    transition = TRANSITIONS.get(name) if kind == "export" else None
    return sorted(s.value for s in transition.sources) if transition else None


def relations(actor: Identity, subject: Subject = NOTHING) -> frozenset[str]:
    """Every relation ``actor`` has to ``subject`` (see the table's header)."""
    found = {role for role, scope in ROLE_SCOPES.items() if scope in actor.scopes}
    person = actor.kind == "user"
    if person:
        found.add("user")
    else:
        found -= {"admin", "reviewer", "steward"}  # roles belong to people
    if actor.browser and person:
        found.add("browser")
    if actor.operator:
        found.add("operator")
    if actor.notebook and person:
        found.add("notebook")
    if person and subject.user is not None and subject.user == actor.name:
        found.add("self")
    if person and subject.member:
        found.add("member")
    if person and (subject.involved or subject.member):
        found.add("involved")
    if person and subject.requester is not None and subject.requester == actor.name:
        found.add("requester")
    return frozenset(found)


def decided_by(actor: Identity) -> tuple:
    """Everything about ``actor`` that the rules can tell apart (:func:`relations` and the
    names they compare): a key under which a caller's permitted view may be kept. Scopes
    other than the roles' change no decision."""
    return (actor.name, actor.kind, frozenset(ROLE_SCOPES.values()) & actor.scopes,
            actor.browser, actor.operator, actor.notebook, actor.inside)


@dataclass(frozen=True)
class Verdict:
    """allowed, or why not: ``reason`` names the message, ``status`` 403 or 409."""

    allowed: bool
    reason: str = ""
    status: int = 200


def decide(action: str, found: frozenset[str], state: str | None = None,
           table: PermissionTable | None = None) -> Verdict:
    """The table's verdict for a caller with relations ``found`` (pure: no I/O)."""
    rule = (table or load_table()).rule(action)
    if rule.public:
        return Verdict(True)
    for relation in rule.deny:
        if relation in found:
            return Verdict(False, relation, 403)
    if not rule.allow & found:
        return Verdict(False, "default", 403)
    for relation in rule.require:
        if relation not in found:
            return Verdict(False, relation, 403)
    if rule.states is not None and state is not None and state not in rule.states:
        return Verdict(False, "state", 409)
    return Verdict(True)


def allowed(action: str, actor: Identity, subject: Subject = NOTHING) -> bool:
    return decide(action, relations(actor, subject), subject.state).allowed


def require(action: str, actor: Identity, subject: Subject = NOTHING) -> None:
    """Raise PermissionDenied (403) or InvalidTransition (409) with the table's sentence."""
    table = load_table()
    verdict = decide(action, relations(actor, subject), subject.state, table)
    if verdict.allowed:
        return
    message = table.messages.get(verdict.reason, table.messages["default"])
    rule = table.rule(action)
    allowed_by = sorted(rule.allow)
    fields: dict[str, Any] = {
        "doing": rule.doing, "state": subject.state,
        "who": " or ".join(table.who[r]["en"] for r in allowed_by),
        "who_ko": "·".join(table.who[r]["ko"] for r in allowed_by)}
    text = f"{message['en'].format(**fields)} ({message['ko'].format(**fields)})"
    if verdict.status == 409:
        raise InvalidTransition(text)
    raise PermissionDenied(text)
