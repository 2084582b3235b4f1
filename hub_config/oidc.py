"""Login through the institution's identity provider (OIDC), configured from the environment.

``configure(c)`` is called by jupyterhub_config.py when ``SAFEZONE_OIDC_ISSUER`` is set. It
discovers the provider's endpoints at hub start (a hub that cannot reach them does not
start) and installs ``SafezoneOIDCAuthenticator``, oauthenticator's generic authenticator
with the zone's rules (policies/identity.yaml, read by safezone/idp_policy.py):

- the ID token's signature, issuer, audience and expiry are checked against the
  provider's keys; the userinfo must be about the same subject;
- a login without an accepted ``acr``/``amr`` second factor is refused (403, ko/en);
- the groups claim is mapped to Safezone roles and replaces the user's hub groups at each
  login; a person in no mapped group is refused (policy ``unmapped``);
- the user name claim goes through ``safezone.idp_names.safezone_name``;
- the first login with a Safezone name binds the name to the provider's ``sub``
  (``safezone.idp_subjects``, in the hub's database); a later login mapping to that name
  with another ``sub`` (the username or e-mail given to someone else) is refused (403,
  ko/en) before any user, token or cookie is made, and recorded as a denied login.

Environment (the Helm chart sets it from ``hub.oidc``):
``SAFEZONE_OIDC_ISSUER``, ``SAFEZONE_OIDC_CLIENT_ID``, ``SAFEZONE_OIDC_CLIENT_SECRET_FILE``
(or ``SAFEZONE_OIDC_CLIENT_SECRET``), ``SAFEZONE_OIDC_CALLBACK_URL`` (default: the hub's
public URL + ``/hub/oauth_callback``), ``SAFEZONE_OIDC_USERNAME_CLAIM``
(``preferred_username``), ``SAFEZONE_OIDC_GROUPS_CLAIM`` (``groups``),
``SAFEZONE_OIDC_SCOPES`` (``openid profile email``), ``SAFEZONE_OIDC_MFA_ACR`` and
``SAFEZONE_OIDC_MFA_AMR`` (comma-separated; replace the policy's accepted values),
``SAFEZONE_IDENTITY_POLICY`` (a path replacing policies/identity.yaml).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import httpx
import jwt
from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.oauth2 import OAuthCallbackHandler
from tornado import web
from traitlets import List, Unicode

from safezone import idp_subjects
from safezone.idp_names import safezone_name
from safezone.idp_policy import IdentityPolicy, load_identity_policy
from safezone.records.hub_hook import report_refused
from spawner.demo_auth import peer_address

# ID-token signatures the hub accepts: asymmetric only (never "none", never HMAC).
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                      "ES256", "ES384", "ES512", "EdDSA")
ENDPOINTS = ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri")


class OIDCConfigError(SystemExit):
    """The hub cannot start: one line saying why (SystemExit prints it and exits 1)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"Safezone OIDC login cannot start: {reason}")


def discover(issuer: str, timeout: float = 15) -> dict[str, Any]:
    """The provider's discovery document, checked for what the hub needs."""
    url = f"{issuer.rstrip('/')}/.well-known/openid-configuration"
    try:
        response = httpx.get(url, timeout=timeout)
        response.raise_for_status()
        document = response.json()
    except httpx.HTTPError as exc:
        raise OIDCConfigError(f"{url} unreachable ({type(exc).__name__}: {exc})") from None
    except ValueError:
        raise OIDCConfigError(f"{url} did not answer JSON") from None
    if not isinstance(document, dict):
        raise OIDCConfigError(f"{url} did not answer a JSON object")
    if document.get("issuer") != issuer:
        raise OIDCConfigError(f"{url} names issuer {document.get('issuer')!r}, "
                              f"not {issuer!r}")
    for key in ENDPOINTS:
        value = document.get(key)
        if not isinstance(value, str) or not value.startswith(("https://", "http://")):
            raise OIDCConfigError(f"{url} has no usable {key}")
    return document


def client_secret(env: Mapping[str, str]) -> str:
    """The client secret from its file (a mounted Secret) or the environment."""
    path = env.get("SAFEZONE_OIDC_CLIENT_SECRET_FILE")
    if path:
        try:
            secret = Path(path).read_text().strip()
        except OSError as exc:
            raise OIDCConfigError(f"client secret file {path}: {exc.strerror}") from None
    else:
        secret = env.get("SAFEZONE_OIDC_CLIENT_SECRET", "").strip()
    if not secret:
        raise OIDCConfigError("no client secret (SAFEZONE_OIDC_CLIENT_SECRET_FILE or "
                              "SAFEZONE_OIDC_CLIENT_SECRET)")
    return secret


class CallbackHandler(OAuthCallbackHandler):
    """The callback, logging refusals by path only: tornado's own line would carry the
    query string, with an authorization code that may still be unused."""

    def log_exception(self, typ, value, tb) -> None:
        where = f"{self.request.method} {self.request.path}"
        if isinstance(value, web.HTTPError):
            self.log.warning("%s refused (%d)", where, value.status_code)
        else:
            self.log.error("%s failed: %s", where, typ.__name__, exc_info=(typ, value, tb))


class SubjectTaken(web.HTTPError):
    """403: the login's Safezone name is bound to another subject of the provider."""

    def __init__(self, message: str, name: str, subject: str) -> None:
        super().__init__(403, message)
        self.name, self.subject = name, subject


class SafezoneOIDCAuthenticator(GenericOAuthenticator):
    """GenericOAuthenticator with verified ID tokens, MFA, the role mapping and safe names."""

    callback_handler = CallbackHandler

    issuer = Unicode(config=True, help="The OIDC issuer (the ID token's iss).")
    jwks_url = Unicode(config=True, help="The provider's signing keys (discovery jwks_uri).")
    signing_algorithms = List(Unicode(), list(SIGNING_ALGORITHMS), config=True)
    groups_claim = Unicode("groups", config=True, help="Claim holding the IdP groups.")
    policy_file = Unicode(config=True, help="policies/identity.yaml or its replacement.")
    mfa_acr = List(Unicode(), config=True, help="Accepted acr values, replacing the policy's.")
    mfa_amr = List(Unicode(), config=True, help="Accepted amr values, replacing the policy's.")
    refused_networks = List(Unicode(), config=True, help=(
        "CIDRs no one may complete a login from (the notebook sandboxes), checked on the "
        "connection's own peer address."))

    @cached_property
    def policy(self) -> IdentityPolicy:
        policy = load_identity_policy(Path(self.policy_file) if self.policy_file else None)
        if self.mfa_acr or self.mfa_amr:  # the chart's hub.oidc.mfa
            policy = replace(policy, mfa_acr=frozenset(self.mfa_acr),
                             mfa_amr=frozenset(self.mfa_amr))
        return policy

    async def authenticate(self, handler, data=None, **kwargs):
        peer = peer_address(handler)
        if peer and any(peer in ipaddress.ip_network(n) for n in self.refused_networks):
            self.log.warning("login refused from the notebook network (%s)", peer)
            return None
        try:
            return await super().authenticate(handler, data, **kwargs)
        except SubjectTaken as refused:
            await report_refused(self, handler, refused.name, "idp_subject", refused.subject)
            raise

    def _hub_db(self):
        """The hub's database session (the bindings' table is made at first use)."""
        db = self.parent.db
        if not getattr(self, "_subjects_ready", False):
            idp_subjects.ensure_table(db)
            self._subjects_ready = True
        return db

    def _check_subject(self, name: str, user_info: Mapping[str, Any]) -> None:
        """Bind ``name`` to this login's subject at its first login; refuse another."""
        subject = str(user_info.get("sub") or "")
        binding = idp_subjects.bind(self._hub_db(), name, self.issuer, subject,
                                    datetime.now(UTC))
        if not binding.belongs_to(self.issuer, subject):
            self.log.warning("login as %s refused: the name belongs to another subject of "
                             "the identity provider (bound %s)", name, binding.bound_at)
            raise SubjectTaken(self.policy.messages["subject_taken"], name, subject)

    async def _signing_key(self, id_token: str) -> jwt.PyJWK:
        kid = jwt.get_unverified_header(id_token).get("kid")
        for refresh in (False, True):
            if refresh or not getattr(self, "_jwks", None):
                self._jwks = jwt.PyJWKSet.from_dict(await self.httpfetch(
                    self.jwks_url, "Fetching the provider's keys...",
                    validate_cert=self.validate_server_cert))
            for key in self._jwks.keys:
                if key.key_id == kid or (kid is None and len(self._jwks.keys) == 1):
                    return key
        raise web.HTTPError(403, "ID token signed with an unknown key")

    async def id_token_claims(self, token_info: Mapping[str, Any]) -> dict[str, Any]:
        """The ID token's claims after checking signature, issuer, audience and expiry."""
        id_token = token_info.get("id_token")
        if not id_token:
            raise web.HTTPError(403, "the identity provider returned no ID token")
        try:
            key = await self._signing_key(id_token)
            claims = jwt.decode(id_token, key=key, algorithms=list(self.signing_algorithms),
                                audience=self.client_id, issuer=self.issuer, leeway=30,
                                options={"require": ["exp", "iat", "iss", "aud", "sub"]})
        except jwt.PyJWTError as exc:
            self.log.warning("ID token refused: %s", type(exc).__name__)
            raise web.HTTPError(403, "invalid ID token") from None
        audience = claims["aud"]
        if isinstance(audience, list) and len(audience) > 1 \
                and claims.get("azp") != self.client_id:
            raise web.HTTPError(403, "ID token issued to another client")
        return claims

    async def token_to_user(self, token_info):
        """Userinfo, with the verified ID token's claims taking precedence; the second
        factor (acr/amr) is read from the ID token only."""
        claims = await self.id_token_claims(token_info)
        user_info = await super().token_to_user(token_info)
        if user_info.get("sub") != claims["sub"]:
            raise web.HTTPError(403, "userinfo is about another subject than the ID token")
        kept = {k: v for k, v in user_info.items() if k not in ("acr", "amr")}
        return {**kept, **claims}

    def user_info_to_username(self, user_info):
        return safezone_name(str(super().user_info_to_username(user_info)))

    def _idp_groups(self, user_info: Mapping[str, Any]) -> list[str]:
        value = user_info.get(self.groups_claim) or []
        if isinstance(value, str):
            value = [value]
        return [g for g in value if isinstance(g, str)] if isinstance(value, list) else []

    async def update_auth_model(self, auth_model):
        """Refuse a login without a second factor, without a mapped group, or whose name
        belongs to another subject of the provider (403, ko/en)."""
        user_info = auth_model["auth_state"][self.user_auth_state_key]
        if not self.policy.second_factor(user_info):
            self.log.warning("login of %s refused: no second factor", auth_model["name"])
            raise web.HTTPError(403, self.policy.messages["no_mfa"])
        if self.policy.roles(self._idp_groups(user_info)) is None:
            self.log.warning("login of %s refused: in no mapped group", auth_model["name"])
            raise web.HTTPError(403, self.policy.messages["not_permitted"])
        self._check_subject(auth_model["name"], user_info)
        return auth_model

    async def get_user_groups(self, auth_state):
        """The hub groups of the user's Safezone roles (replacing the previous ones)."""
        user_info = auth_state[self.user_auth_state_key]
        roles = self.policy.roles(self._idp_groups(user_info)) or set()
        return set(self.policy.hub_groups(roles))


def _list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def configure(c: Any, env: Mapping[str, str] = os.environ) -> None:
    """Install the OIDC authenticator on the hub's config ``c`` from ``env``."""
    issuer = env["SAFEZONE_OIDC_ISSUER"]
    client_id = env.get("SAFEZONE_OIDC_CLIENT_ID", "")
    if not client_id:
        raise OIDCConfigError("SAFEZONE_OIDC_CLIENT_ID is not set")
    policy_file = env.get("SAFEZONE_IDENTITY_POLICY", "")
    try:
        load_identity_policy(Path(policy_file) if policy_file else None)
    except (OSError, ValueError) as exc:
        raise OIDCConfigError(f"identity policy: {exc}") from None
    document = discover(issuer)
    hub_url = env.get("SAFEZONE_HUB_URL", "http://127.0.0.1:8000").rstrip("/")
    algorithms = [a for a in document.get("id_token_signing_alg_values_supported", [])
                  if a in SIGNING_ALGORITHMS] or ["RS256"]

    c.JupyterHub.authenticator_class = SafezoneOIDCAuthenticator
    a = c.SafezoneOIDCAuthenticator
    a.login_service = env.get("SAFEZONE_OIDC_LOGIN_SERVICE", "기관 계정 / institution account")
    a.issuer = issuer
    a.authorize_url = document["authorization_endpoint"]
    a.token_url = document["token_endpoint"]
    a.userdata_url = document["userinfo_endpoint"]
    a.jwks_url = document["jwks_uri"]
    a.signing_algorithms = algorithms
    a.client_id = client_id
    a.client_secret = client_secret(env)
    a.oauth_callback_url = env.get("SAFEZONE_OIDC_CALLBACK_URL",
                                   f"{hub_url}/hub/oauth_callback")
    a.scope = env.get("SAFEZONE_OIDC_SCOPES", "openid profile email").split()
    a.username_claim = env.get("SAFEZONE_OIDC_USERNAME_CLAIM", "preferred_username")
    a.groups_claim = env.get("SAFEZONE_OIDC_GROUPS_CLAIM", "groups")
    a.policy_file = policy_file
    a.mfa_acr = _list(env.get("SAFEZONE_OIDC_MFA_ACR", ""))
    a.mfa_amr = _list(env.get("SAFEZONE_OIDC_MFA_AMR", ""))
    # who may enter is the identity policy's decision (update_auth_model refuses)
    a.allow_all = True
    a.manage_groups = True
    a.enable_auth_state = False  # the IdP's tokens are not kept by the hub
