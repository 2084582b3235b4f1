"""The login policy of the identity provider (``policies/identity.yaml``).

Which IdP groups make which Safezone role, what happens to a person in none of them, and
which ``acr``/``amr`` values count as a second factor. Pure functions over claims; the hub's
authenticator (hub_config/oidc.py) applies them at each login.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .config import POLICIES_DIR

# Safezone role -> JupyterHub group whose role carries its scopes (jupyterhub_config.py).
# A researcher needs no group: every signed-in user is one.
ROLE_GROUPS = {"researcher": None, "reviewer": "safezone-reviewers",
               "admin": "safezone-admins", "steward": "safezone-stewards"}
UNMAPPED = ("refuse", "researcher")


@dataclass(frozen=True)
class IdentityPolicy:
    groups: Mapping[str, str]        # IdP group -> Safezone role
    unmapped: str                    # "refuse" or "researcher"
    mfa_required: bool
    mfa_acr: frozenset[str]
    mfa_amr: frozenset[str]
    messages: Mapping[str, str]

    def roles(self, idp_groups: Iterable[str]) -> set[str] | None:
        """The Safezone roles of a person in ``idp_groups``; None when refused."""
        roles = {self.groups[g] for g in idp_groups if g in self.groups}
        if not roles:
            return None if self.unmapped == "refuse" else {"researcher"}
        return roles

    def hub_groups(self, roles: Iterable[str]) -> list[str]:
        """The JupyterHub groups of these roles (the hub's whole group list for the user)."""
        return sorted(g for r in roles if (g := ROLE_GROUPS[r]))

    def second_factor(self, claims: Mapping[str, Any]) -> bool:
        """True when the ID token's ``acr`` is an accepted multi-factor level, or its
        ``amr`` says ``mfa`` or names two different accepted methods (a password and a
        one-time code, say): one method alone, whatever it is, is one factor."""
        if not self.mfa_required:
            return True
        acr = claims.get("acr")
        amr = claims.get("amr") or []
        if isinstance(amr, str):
            amr = [amr]
        methods = {a for a in amr if isinstance(a, str)} if isinstance(amr, list) else set()
        return (isinstance(acr, str) and acr in self.mfa_acr) or "mfa" in methods or (
            len(methods & self.mfa_amr) >= 2)  # RFC 8176: otp, sms... are one factor each


def load_identity_policy(path: Path | None = None) -> IdentityPolicy:
    """Read and check the policy; a malformed file raises ValueError naming the problem."""
    path = path or POLICIES_DIR / "identity.yaml"
    data = yaml.safe_load(path.read_text()) or {}
    groups = {str(k): str(v) for k, v in (data.get("groups") or {}).items()}
    bad = sorted({r for r in groups.values() if r not in ROLE_GROUPS})
    if bad:
        raise ValueError(f"{path}: unknown Safezone role(s) {bad}; use {sorted(ROLE_GROUPS)}")
    unmapped = data.get("unmapped", "refuse")
    if unmapped not in UNMAPPED:
        raise ValueError(f"{path}: unmapped must be one of {UNMAPPED}, not {unmapped!r}")
    mfa = data.get("mfa") or {}
    messages = data.get("messages") or {}
    for key in ("no_mfa", "not_permitted", "subject_taken"):
        if not messages.get(key):
            raise ValueError(f"{path}: messages.{key} is missing")
    policy = IdentityPolicy(groups, unmapped, bool(mfa.get("required", True)),
                            frozenset(map(str, mfa.get("acr") or [])),
                            frozenset(map(str, mfa.get("amr") or [])), messages)
    if policy.mfa_required and not (policy.mfa_acr or policy.mfa_amr):
        raise ValueError(f"{path}: mfa.required needs at least one acr or amr value")
    return policy
