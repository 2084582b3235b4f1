"""Login through a real identity provider: Keycloak (tests/keycloak.py) and a real hub
configured by hub_config/oidc.py, with the control plane behind it.

The browser is httpx following Keycloak's own login forms (password, then a TOTP code
computed from the user's imported seed) and the hub's OAuth redirects.
"""

from __future__ import annotations

import secrets
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from safezone.config import REPO_ROOT
from safezone.idp_names import safezone_name
from safezone.local.processes import ManagedProcess, free_port
from safezone.local.services import start_hub
from safezone.models import AccessRecord
from safezone.zone import Zone

from . import keycloak as kc
from .support import (
    ZONE_NET,
    ThreadedServer,
    fresh_database_url,
    make_zone,
    pages_session,
    report_measure,
)

pytestmark = [pytest.mark.integration, pytest.mark.db_independent]

ALICE, BOB, CAROL, DAN = "alice@uni.ac.kr", "bob@uni.ac.kr", "carol@uni.ac.kr", "dan@uni.ac.kr"


@pytest.fixture(scope="session")
def keycloak_hub_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def keycloak(tmp_path_factory, keycloak_hub_port) -> Iterator[kc.Keycloak]:
    why = kc.missing()
    if why:
        pytest.skip(f"{why}: {kc.BUILD_HINT}")
    server = kc.start_keycloak(tmp_path_factory.mktemp("keycloak"),
                               f"http://127.0.0.1:{keycloak_hub_port}/hub/oauth_callback")
    report_measure(f"keycloak {kc.VERSION}: started in {server.start_seconds:.1f} s "
                   "(start-dev, realm import)")
    yield server
    server.process.stop(timeout=20)


@dataclass
class OIDCHub:
    url: str
    process: ManagedProcess
    state_dir: Path
    zone: Zone

    def db(self, query: str, *args) -> list[tuple]:
        with sqlite3.connect(f"file:{self.state_dir / 'jupyterhub.sqlite'}?mode=ro",
                             uri=True) as conn:
            return conn.execute(query, args).fetchall()

    def users(self) -> set[str]:
        return {name for (name,) in self.db("SELECT name FROM users")}

    def groups_of(self, user: str) -> set[str]:
        return {g for (g,) in self.db(
            "SELECT groups.name FROM groups JOIN user_group_map ON groups.id = "
            "user_group_map.group_id JOIN users ON users.id = user_group_map.user_id "
            "WHERE users.name = ?", user)}

    def footprint(self) -> tuple:
        """Everything a login leaves in the hub: users, tokens, cookies."""
        return (sorted(self.users()), self.db("SELECT count(*) FROM api_tokens"),
                self.db("SELECT count(*) FROM oauth_codes"),
                self.db("SELECT name, cookie_id FROM users ORDER BY name"))


def oidc_env(hub_url: str, hub_api_port: int, keycloak: kc.Keycloak, secret_file: Path
             ) -> dict[str, str]:
    return {
        "SAFEZONE_HUB_URL": hub_url,
        "SAFEZONE_HUB_PORT": str(hub_api_port),
        "SAFEZONE_OIDC_ISSUER": keycloak.issuer,
        "SAFEZONE_OIDC_CLIENT_ID": kc.CLIENT_ID,
        "SAFEZONE_OIDC_CLIENT_SECRET_FILE": str(secret_file),
    }


@pytest.fixture(scope="session")
def oidc_hub(tmp_path_factory, minio, keycloak, keycloak_hub_port) -> Iterator[OIDCHub]:
    """A hub (local mode, sandbox spawner) logging in through Keycloak, with its control
    plane; no users file at all."""
    tmp = tmp_path_factory.mktemp("oidc-hub")
    service_token, spawner_token = secrets.token_hex(24), secrets.token_hex(24)
    hub_api_port, proxy_api_port = free_port(), free_port()
    hub_url = f"http://127.0.0.1:{keycloak_hub_port}"
    zone = make_zone(minio, fresh_database_url(tmp),
                     hub_api_url=f"http://{ZONE_NET.gateway}:{hub_api_port}/hub/api",
                     service_token=service_token)
    control_plane = ThreadedServer(zone, host=ZONE_NET.gateway).start()
    ZONE_NET.allow(control_plane.port)
    ZONE_NET.allow(hub_api_port)
    secret_file = tmp / "client-secret"
    secret_file.write_text(keycloak.client_secret + "\n")
    secret_file.chmod(0o600)
    env = {
        "SAFEZONE_MODE": "local",
        "SAFEZONE_HUB_IP": ZONE_NET.gateway,
        "SAFEZONE_SANDBOX_BRIDGE": ZONE_NET.bridge,
        "SAFEZONE_SANDBOX_SUBNET": ZONE_NET.subnet,
        "SAFEZONE_SANDBOX_STATE_DIR": str(tmp / "sandbox"),
        "SAFEZONE_PROXY_API_PORT": str(proxy_api_port),
        "SAFEZONE_CONTROL_PLANE_URL": control_plane.url,
        "SAFEZONE_SERVICE_TOKEN": service_token,
        "SAFEZONE_SPAWNER_TOKEN": spawner_token,
        "SAFEZONE_WORKSPACE_ROOT": str(tmp / "workspaces"),
        **oidc_env(hub_url, hub_api_port, keycloak, secret_file),
    }
    hub = start_hub(env, tmp / "hub", hub_url, tmp / "hub.log")
    yield OIDCHub(hub_url, hub, tmp / "hub", zone)
    hub.stop(timeout=20)
    control_plane.stop()


def login(hub: OIDCHub, keycloak: kc.Keycloak, username: str, password: str | None = None,
          second_factor: bool = True, tamper_state: bool = False
          ) -> tuple[httpx.Client, httpx.Response]:
    """The whole browser journey: hub -> Keycloak's forms -> the hub's callback."""
    user = keycloak.users[username]
    client = kc.browser(hub.url)
    start = client.get("/hub/oauth_login")
    assert start.status_code == 302, start.text[:300]
    authorize = start.headers["location"]
    assert authorize.startswith(keycloak.issuer)
    answer = kc.idp_login(client, authorize, username, password or user.password,
                          user if second_factor and user.totp_seed else None)
    if answer.status_code != 302:
        return client, answer  # Keycloak kept the person on its forms
    callback = answer.headers["location"]
    assert callback.startswith(f"{hub.url}/hub/oauth_callback"), callback
    if tamper_state:
        url = httpx.URL(callback)
        state = url.params["state"]
        callback = str(url.copy_set_param("state", state[:-4] + "AAAA"))
    return client, client.get(callback)


def me(hub: OIDCHub, client: httpx.Client) -> dict:
    """/api/me of the control plane, through the pages' OAuth session of this browser."""
    pages = pages_session(client, hub.url)
    response = pages.get("api/me")
    assert response.status_code == 200, response.text[:300]
    return response.json()


def test_mfa_user_with_email_name_logs_in_with_her_roles(oidc_hub, keycloak):
    name = safezone_name(ALICE)
    assert name != ALICE and "@" not in name
    client, done = login(oidc_hub, keycloak, ALICE)
    assert done.status_code == 302, done.text[:500]
    assert not done.headers["location"].startswith("/hub/login")
    home = client.get("/hub/home")
    assert home.status_code == 200 and name in home.text
    assert name in oidc_hub.users()
    assert oidc_hub.groups_of(name) == {"safezone-reviewers"}
    identity = me(oidc_hub, client)
    assert identity["name"] == name
    assert identity["reviewer"] is True and identity["admin"] is False


def test_login_without_second_factor_is_refused(oidc_hub, keycloak):
    before = oidc_hub.footprint()
    client, done = login(oidc_hub, keycloak, BOB)  # bob has no OTP credential
    assert done.status_code == 403
    assert "second factor" in done.text and "2단계 인증" in done.text
    assert oidc_hub.footprint() == before
    assert safezone_name(BOB) not in oidc_hub.users()
    assert client.get("/hub/home").status_code == 302  # no hub session


def test_person_in_no_mapped_group_is_refused(oidc_hub, keycloak):
    before = oidc_hub.footprint()
    _, done = login(oidc_hub, keycloak, DAN)  # MFA, but only in library-staff
    assert done.status_code == 403
    assert "no institution group" in done.text and "기관 그룹" in done.text
    assert oidc_hub.footprint() == before


def test_wrong_password_never_reaches_the_hub(oidc_hub, keycloak):
    before = oidc_hub.footprint()
    client, answer = login(oidc_hub, keycloak, ALICE, password="not-her-password")
    assert answer.status_code == 200 and 'name="password"' in answer.text
    assert "Invalid username or password" in answer.text
    assert oidc_hub.footprint() == before
    assert client.get("/hub/home").status_code == 302


def test_wrong_client_secret_is_refused(oidc_hub, keycloak):
    """The IdP's client secret changes under the hub: the code exchange fails."""
    before = oidc_hub.footprint()
    keycloak.set_client_secret(secrets.token_urlsafe(24))
    try:
        client, done = login(oidc_hub, keycloak, CAROL)
    finally:
        keycloak.set_client_secret(keycloak.client_secret)
    assert done.status_code >= 400
    assert oidc_hub.footprint() == before
    assert client.get("/hub/home").status_code == 302


def test_tampered_state_is_refused(oidc_hub, keycloak):
    before = oidc_hub.footprint()
    client, done = login(oidc_hub, keycloak, CAROL, tamper_state=True)
    assert done.status_code == 400 and "state" in done.text
    assert oidc_hub.footprint() == before
    assert client.get("/hub/home").status_code == 302


def test_group_removed_in_the_idp_removes_the_role_at_next_login(oidc_hub, keycloak):
    name = safezone_name(CAROL)
    client, done = login(oidc_hub, keycloak, CAROL)
    assert done.status_code == 302, done.text[:500]
    assert oidc_hub.groups_of(name) == {"safezone-reviewers"}
    assert me(oidc_hub, client)["reviewer"] is True
    keycloak.set_membership(CAROL, "research-reviewers", member=False)
    try:
        client, done = login(oidc_hub, keycloak, CAROL)
        assert done.status_code == 302, done.text[:500]
        assert oidc_hub.groups_of(name) == set()
        identity = me(oidc_hub, client)
        assert identity["name"] == name and identity["reviewer"] is False
    finally:
        keycloak.set_membership(CAROL, "research-reviewers", member=True)


def logins_of(hub: OIDCHub, name: str) -> list[AccessRecord]:
    """The access records of logins as ``name`` (the hub reports them)."""
    with hub.zone.sessions() as db:
        return list(db.scalars(select(AccessRecord).where(
            AccessRecord.action == "login", AccessRecord.account == name)
            .order_by(AccessRecord.seq)))


def test_a_name_given_to_another_person_of_the_idp_is_refused(oidc_hub, keycloak):
    """The first login with a name binds it to the IdP's ``sub``. The institution then
    renames that person and gives their username and e-mail to someone else (another
    ``sub``): the newcomer is refused (403, ko/en), gets nothing of the account (no user,
    token, cookie or session), and the refusal is an access record; the first person's
    binding stays."""
    first_name = "erin@uni.ac.kr"
    name = safezone_name(first_name)
    keycloak.add_user(first_name, ["researchers"])
    first_sub = keycloak.subject(first_name)
    _, done = login(oidc_hub, keycloak, first_name)
    assert done.status_code == 302, done.text[:500]
    assert name in oidc_hub.users()
    assert oidc_hub.db("SELECT subject FROM safezone_idp_subjects WHERE name = ?",
                       name) == [(first_sub,)]

    keycloak.rename_user(first_name, "erin.kim@uni.ac.kr")
    keycloak.add_user(first_name, ["researchers", "research-reviewers"])
    newcomer_sub = keycloak.subject(first_name)
    assert newcomer_sub != first_sub
    before = oidc_hub.footprint()
    groups_before = oidc_hub.groups_of(name)
    newcomer, refused = login(oidc_hub, keycloak, first_name)
    assert refused.status_code == 403, refused.text[:500]
    assert "already belongs to another person" in refused.text
    assert "다른 사람에게 이미 연결" in refused.text
    assert name not in refused.text  # not even the account's name is shown
    assert oidc_hub.footprint() == before  # no user, token, code or cookie made
    assert oidc_hub.groups_of(name) == groups_before  # her roles did not reach the account
    assert newcomer.get("/hub/home").status_code == 302  # no hub session
    assert newcomer.get(f"/user/{name}/").status_code in (302, 403, 404)
    assert oidc_hub.db("SELECT subject FROM safezone_idp_subjects WHERE name = ?",
                       name) == [(first_sub,)]
    denied = [r for r in logins_of(oidc_hub, name) if r.outcome == "denied"]
    assert len(denied) == 1
    assert denied[0].detail["refused"] == "idp_subject"
    assert denied[0].detail["idp_subject"] == newcomer_sub
    assert denied[0].source == "127.0.0.1"
    log = (oidc_hub.state_dir.parent / "hub.log").read_text(errors="replace")
    assert f"login as {name} refused: the name belongs to another subject" in log


def test_password_api_login_is_not_possible_with_oidc(oidc_hub, keycloak):
    """The demo authenticator's token endpoint (user + password) mints nothing here."""
    before = oidc_hub.footprint()
    user = keycloak.users[ALICE]
    response = httpx.post(f"{oidc_hub.url}/hub/api/users/{safezone_name(ALICE)}/tokens",
                          json={"auth": {"username": ALICE, "password": user.password}},
                          timeout=30)
    assert response.status_code >= 400
    assert oidc_hub.footprint()[1:3] == before[1:3]


def hub_start_error(env: dict[str, str], tmp: Path) -> str:
    """Start the hub's config with ``env``; return its last line (it must exit 1)."""
    done = subprocess.run(
        [sys.executable, "-m", "jupyterhub", "-f",
         str(REPO_ROOT / "hub_config" / "jupyterhub_config.py")],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT),
             "SAFEZONE_HUB_STATE_DIR": str(tmp), "SAFEZONE_MODE": "kubernetes", **env},
        cwd=tmp, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0
    return done.stderr.strip().splitlines()[-1]


def test_hub_does_not_start_without_its_provider(tmp_path, keycloak):
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t-value")
    base = {"SAFEZONE_OIDC_CLIENT_ID": kc.CLIENT_ID,
            "SAFEZONE_OIDC_CLIENT_SECRET_FILE": str(secret)}
    port = free_port()
    line = hub_start_error({**base, "SAFEZONE_OIDC_ISSUER": f"http://127.0.0.1:{port}/x"},
                           tmp_path)
    assert line.startswith("Safezone OIDC login cannot start:") and "unreachable" in line
    line = hub_start_error({**base, "SAFEZONE_OIDC_ISSUER": keycloak.issuer + "/"}, tmp_path)
    assert "names issuer" in line  # discovery answers for another issuer string
    line = hub_start_error({**base, "SAFEZONE_OIDC_ISSUER": keycloak.issuer,
                            "SAFEZONE_OIDC_CLIENT_SECRET_FILE": str(tmp_path / "none")},
                           tmp_path)
    assert "client secret file" in line and "s3cr3t" not in line


def test_hub_log_holds_no_secret_or_code(oidc_hub, keycloak):
    """After the logins above (refusals included): no client secret, password, TOTP seed
    or authorization code in the hub's log."""
    import re

    log = (oidc_hub.state_dir.parent / "hub.log").read_text(errors="replace")
    assert "User logged in" in log
    secrets_made = [keycloak.client_secret] + [
        v for u in keycloak.users.values() for v in (u.password, u.totp_seed) if v]
    assert not [s for s in secrets_made if s in log]
    assert not re.findall(r"[?&]code=(?!\[secret\])[^&\s]+", log)
