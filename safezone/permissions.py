"""Who may do what: every permission rule of the control plane lives here.

Roles come from JupyterHub custom scopes carried by the caller's hub token:
``custom:safezone:admin``, ``custom:safezone:review`` and, for the hub's spawner,
``custom:safezone:sessions``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import PermissionDenied

ADMIN_SCOPE = "custom:safezone:admin"
REVIEW_SCOPE = "custom:safezone:review"
SESSIONS_SCOPE = "custom:safezone:sessions"


@dataclass(frozen=True)
class Identity:
    """The authenticated caller, as the hub describes its token."""

    name: str
    kind: str  # "user" or "service"
    scopes: frozenset[str]
    browser: bool = False  # the token came from a hub OAuth login (a page), not an API token

    @property
    def is_admin(self) -> bool:
        return ADMIN_SCOPE in self.scopes

    @property
    def is_reviewer(self) -> bool:
        return REVIEW_SCOPE in self.scopes

    @property
    def is_session_issuer(self) -> bool:
        return SESSIONS_SCOPE in self.scopes

    @property
    def label(self) -> str:
        return self.name if self.kind == "user" else f"service:{self.name}"


SYSTEM = Identity("safezone", "service", frozenset())


def check_admin(actor: Identity, doing: str) -> None:
    if not actor.is_admin:
        raise PermissionDenied(f"{doing} needs the Safezone administrator role (관리자 권한 필요)")


def check_session_issuer(actor: Identity) -> None:
    if not actor.is_session_issuer:
        raise PermissionDenied("only the hub's spawner may issue or end session grants")


def check_is_user(actor: Identity, user_name: str, doing: str) -> None:
    """The caller acts for themself (a membership request is personal)."""
    if actor.kind != "user" or actor.name != user_name:
        raise PermissionDenied(f"{doing} can only be done by {user_name} themself")


def check_self_admin_or_issuer(actor: Identity, user_name: str) -> None:
    if actor.is_admin or actor.is_session_issuer:
        return
    if actor.kind == "user" and actor.name == user_name:
        return
    raise PermissionDenied(f"you may not look at {user_name}'s projects")


def check_can_end_grant(actor: Identity, grant_user: str) -> None:
    if actor.is_admin or actor.is_session_issuer:
        return
    raise PermissionDenied(f"only the hub or an administrator may end {grant_user}'s session")


def export_parties(actor: Identity, requester: str, actor_is_project_member: bool,
                   exclude_members: bool) -> set:
    """The parties ``actor`` acts as on one export request (see exports.states.Party).

    The requester is only ever the requester: never a reviewer or administrator of their
    own request. Reviewers who are members of the project are excluded when the review
    policy says so.
    """
    from .exports.states import Party

    if actor.kind == "user" and actor.name == requester:
        return {Party.REQUESTER}
    parties = set()
    if actor.is_reviewer and not (exclude_members and actor_is_project_member):
        parties.add(Party.REVIEWER)
    if actor.is_admin:
        parties.add(Party.ADMIN)
    return parties


def check_browser_download(actor: Identity) -> None:
    """Released files leave through a browser session only, never with an API token
    (which is what a notebook server holds)."""
    if not actor.browser:
        raise PermissionDenied("released files are downloaded from the Safezone pages in a "
                               "browser, not with an API token (브라우저에서만 내려받기 가능)")
