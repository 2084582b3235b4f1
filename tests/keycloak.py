"""A real Keycloak for the login tests: the pinned server distribution (scripts/keycloak.sh)
started with ``kc.sh start-dev --import-realm`` on a free port, in-memory database.

The realm (tests/keycloak-realm.json) is written into a private home per test session,
with the fixture's secrets filled in: the hub's client secret and redirect URI, every
user's password and the TOTP seeds of the users with a second factor.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
import pyotp

from safezone.config import REPO_ROOT
from safezone.local.processes import ManagedProcess, free_port, wait_for_http

VERSION = "26.5.6"
DIST = REPO_ROOT / ".cache" / "keycloak" / f"keycloak-{VERSION}"
REALM_FILE = Path(__file__).with_name("keycloak-realm.json")
REALM = "safezone"
CLIENT_ID = "safezone-hub"
BUILD_HINT = "run scripts/keycloak.sh (make test does) and have Java 21+ in /usr/lib/jvm"
OTP_CREDENTIAL_DATA = json.dumps({"subType": "totp", "digits": 6, "counter": 0, "period": 30,
                                  "algorithm": "HmacSHA1"})


def java_home() -> Path | None:
    """A Java 21+ installation (Keycloak 26 needs it; Debian 12's default is 17)."""
    candidates = [os.environ.get("SAFEZONE_KEYCLOAK_JAVA_HOME"), os.environ.get("JAVA_HOME")]
    candidates += sorted(str(p) for p in Path("/usr/lib/jvm").glob("*"))
    for home in filter(None, candidates):
        java = Path(home) / "bin" / "java"
        if not java.exists():
            continue
        done = subprocess.run([str(java), "-version"], capture_output=True, text=True,
                              check=False)
        found = re.search(r'version "(\d+)', done.stderr)
        if found and int(found.group(1)) >= 21:
            return Path(home)
    return None


def missing() -> str:
    """Why Keycloak cannot start here ('' when it can)."""
    if not (DIST / "bin" / "kc.sh").exists():
        return f"Keycloak {VERSION} is not unpacked in {DIST}"
    if java_home() is None:
        return "no Java 21+ found"
    return ""


@dataclass
class KeycloakUser:
    username: str
    password: str
    totp_seed: str = ""  # base32, as an authenticator app holds it

    def code(self, at: float | None = None) -> str:
        return pyotp.TOTP(self.totp_seed).at(at or time.time())


@dataclass
class Keycloak:
    url: str
    process: ManagedProcess
    client_secret: str
    admin_password: str
    users: dict[str, KeycloakUser] = field(default_factory=dict)
    start_seconds: float = 0.0

    @property
    def issuer(self) -> str:
        return f"{self.url}/realms/{REALM}"

    def admin(self) -> httpx.Client:
        """The admin REST API of the realm, as the bootstrap administrator."""
        token = httpx.post(f"{self.url}/realms/master/protocol/openid-connect/token", data={
            "grant_type": "password", "client_id": "admin-cli", "username": "admin",
            "password": self.admin_password}, timeout=30)
        token.raise_for_status()
        return httpx.Client(base_url=f"{self.url}/admin/realms/{REALM}", timeout=30, headers={
            "Authorization": f"Bearer {token.json()['access_token']}"})

    def user_id(self, admin: httpx.Client, username: str) -> str:
        found = admin.get("/users", params={"username": username, "exact": "true"})
        found.raise_for_status()
        return found.json()[0]["id"]

    def group_id(self, admin: httpx.Client, name: str) -> str:
        found = admin.get("/groups", params={"search": name, "exact": "true"})
        found.raise_for_status()
        return next(g["id"] for g in found.json() if g["name"] == name)

    def set_membership(self, username: str, group: str, member: bool) -> None:
        with self.admin() as admin:
            path = f"/users/{self.user_id(admin, username)}/groups/" \
                   f"{self.group_id(admin, group)}"
            (admin.put if member else admin.delete)(path).raise_for_status()

    def add_user(self, username: str, groups: list[str]) -> KeycloakUser:
        """A new person (password and TOTP second factor, e-mail = username) in ``groups``,
        made through the admin API's partial import, as the realm's users were."""
        user = KeycloakUser(username, secrets.token_urlsafe(12),
                            base64.b32encode(secrets.token_hex(10).encode()).decode())
        entry = {"username": username, "email": username, "emailVerified": True,
                 "firstName": "New", "lastName": "Person", "enabled": True, "groups": groups,
                 "credentials": [{"type": "password", "value": "", "temporary": False},
                                 {"type": "otp", "userLabel": "phone", "secretData": "",
                                  "credentialData": OTP_CREDENTIAL_DATA}]}
        _fill_credentials(entry, user)
        with self.admin() as admin:
            admin.post("/partialImport", json={"ifResourceExists": "FAIL",
                                               "users": [entry]}).raise_for_status()
        self.users[username] = user
        return user

    def rename_user(self, username: str, new_name: str) -> None:
        """Give a person another username and e-mail (their ``sub`` stays): the old ones
        are free for someone else."""
        with self.admin() as admin:
            realm_url = str(admin.base_url).rstrip("/")
            realm = admin.get(realm_url).json()
            if not realm.get("editUsernameAllowed"):
                admin.put(realm_url, json={"realm": REALM, "editUsernameAllowed": True}
                          ).raise_for_status()
            user_id = self.user_id(admin, username)
            found = admin.get(f"/users/{user_id}").json()
            admin.put(f"/users/{user_id}", json={**found, "username": new_name,
                                                 "email": new_name}).raise_for_status()
        self.users[new_name] = replace(self.users.pop(username), username=new_name)

    def subject(self, username: str) -> str:
        """The person's ``sub`` (Keycloak's user id)."""
        with self.admin() as admin:
            return self.user_id(admin, username)

    def set_client_secret(self, secret: str) -> None:
        with self.admin() as admin:
            clients = admin.get("/clients", params={"clientId": CLIENT_ID}).json()
            client = clients[0]
            client["secret"] = secret
            admin.put(f"/clients/{client['id']}", json=client).raise_for_status()


def _private_home(tmp_dir: Path) -> Path:
    """A Keycloak home of the session's own: bin/ copied (kc.sh finds its home from its own
    path), the rest linked to the cached distribution; data/ (import, tmp) is private."""
    home = tmp_dir / "keycloak"
    home.mkdir(parents=True)
    shutil.copytree(DIST / "bin", home / "bin", symlinks=True)
    for part in ("lib", "conf", "providers", "themes", "version.txt"):
        (home / part).symlink_to(DIST / part)
    (home / "data" / "import").mkdir(parents=True)
    return home


def _fill_credentials(entry: dict, user: KeycloakUser) -> None:
    """A user entry's password and TOTP seed, as Keycloak imports them."""
    for credential in entry["credentials"]:
        if credential["type"] == "password":
            credential["value"] = user.password
        elif credential["type"] == "otp":
            raw = base64.b32decode(user.totp_seed).decode()  # Keycloak keeps the raw key
            credential["secretData"] = json.dumps({"value": raw})


def _realm(redirect_uri: str, client_secret: str, users: dict[str, KeycloakUser]) -> dict:
    realm = json.loads(REALM_FILE.read_text())
    client = next(c for c in realm["clients"] if c["clientId"] == CLIENT_ID)
    client["secret"], client["redirectUris"] = client_secret, [redirect_uri]
    for entry in realm["users"]:
        _fill_credentials(entry, users[entry["username"]])
    return realm


def start_keycloak(tmp_dir: Path, redirect_uri: str) -> Keycloak:
    """Keycloak on a free loopback port with the test realm; waits for its discovery."""
    home = _private_home(tmp_dir)
    realm = json.loads(REALM_FILE.read_text())
    users = {}
    for entry in realm["users"]:
        has_otp = any(c["type"] == "otp" for c in entry["credentials"])
        seed = base64.b32encode(secrets.token_hex(10).encode()).decode() if has_otp else ""
        users[entry["username"]] = KeycloakUser(entry["username"], secrets.token_urlsafe(12),
                                                seed)
    client_secret, admin_password = secrets.token_urlsafe(24), secrets.token_urlsafe(18)
    (home / "data" / "import" / "safezone-realm.json").write_text(
        json.dumps(_realm(redirect_uri, client_secret, users)))
    port = free_port()
    env = {**os.environ, "JAVA_HOME": str(java_home()),
           "KC_BOOTSTRAP_ADMIN_USERNAME": "admin", "KC_BOOTSTRAP_ADMIN_PASSWORD": admin_password,
           "JAVA_OPTS_APPEND": "-XX:TieredStopAtLevel=1 -Xshare:auto"}
    started = time.monotonic()
    process = ManagedProcess.start(
        "keycloak",
        [str(home / "bin" / "kc.sh"), "start-dev", "--http-port", str(port),
         "--http-host", "127.0.0.1", "--hostname-strict", "false", "--db", "dev-mem",
         "--import-realm", "--health-enabled", "false", "--cache", "local"],
        tmp_dir / "keycloak.log", env=env, cwd=home)
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/realms/{REALM}/.well-known/openid-configuration", 240, process)
    return Keycloak(url, process, client_secret, admin_password, users,
                    time.monotonic() - started)


class LoopbackTransport(httpx.HTTPTransport):
    """Browsers treat http://127.0.0.1 as a secure context and send ``Secure`` cookies to
    it; httpx does not. Keycloak marks its login-session cookies ``Secure``, so for
    loopback hosts this drops the attribute as the cookies arrive."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.url.host not in ("127.0.0.1", "localhost"):
            return response
        headers = [(k, re.sub(rb";\s*Secure(?=;|$)", b"", v, flags=re.I)
                    if k.lower() == b"set-cookie" else v) for k, v in response.headers.raw]
        return httpx.Response(response.status_code, headers=headers, stream=response.stream,
                              extensions=response.extensions)


def browser(base_url: str = "") -> httpx.Client:
    """A cookie-keeping client that follows no redirect by itself (the tests look at each)."""
    return httpx.Client(base_url=base_url, timeout=60, transport=LoopbackTransport())


_USED_CODES: dict[str, set[str]] = {}


def fresh_code(user: KeycloakUser) -> str:
    """A TOTP code Keycloak has not seen yet (it refuses a code used before): the current
    one, else the next period's (the realm's look-ahead window accepts it), else wait."""
    used = _USED_CODES.setdefault(user.username, set())
    while True:
        for at in (time.time(), time.time() + 30):
            code = user.code(at)
            if code not in used:
                used.add(code)
                return code
        time.sleep(2)


FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"')


def form_action(page: str) -> str:
    found = FORM_ACTION.search(page)
    assert found, f"no form on the page: {page[:300]}"
    return html.unescape(found.group(1))


def idp_login(client: httpx.Client, authorize_url: str, username: str, password: str,
              otp: KeycloakUser | None = None) -> httpx.Response:
    """Fill Keycloak's forms as a person does; returns Keycloak's last answer (a redirect
    to the hub's callback on success, a page otherwise)."""
    page = client.get(authorize_url)
    assert page.status_code == 200, page.text[:300]
    answer = client.post(form_action(page.text), data={"username": username,
                                                       "password": password})
    if answer.status_code == 200 and 'name="otp"' in answer.text and otp is not None:
        answer = client.post(form_action(answer.text), data={"otp": fresh_code(otp)})
    return answer
