"""MinIO's temporary credentials: STS ``AssumeRole`` with a revoke type, and the admin calls
that revoke or list them (minio-py has no methods for these; requests are signed with its
SigV4 signer).

Why temporary credentials for sessions: creating a service account is an admin call whose
body and answer MinIO encrypts with Argon2id keys (64 MiB each, serialised behind one lock
on the server), about 0.1 s apiece, so concurrent spawns queued for seconds. ``AssumeRole``
is one signed request. Each session's keys carry its grant id as their *revoke type*, so
ending a grant revokes exactly its keys (``revoke-tokens``), which MinIO refuses at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode, urlsplit
from xml.etree import ElementTree

import urllib3
from minio.credentials import Credentials
from minio.crypto import decrypt
from minio.helpers import sha256_hash
from minio.signer import sign_v4_s3, sign_v4_sts
from minio.time import to_amz_date, utcnow

from ..errors import StorageError

_STS = "{https://sts.amazonaws.com/doc/2011-06-15/}"
_ADMIN = "/minio/admin/v3/"


@dataclass(frozen=True)
class TemporaryKeys:
    """One session's keys: all three are needed, the session token proves the policy."""

    access_key: str
    secret_key: str
    session_token: str


class TokenService:
    """Temporary keys on one MinIO deployment; ``root`` (access key, secret key[, session
    token]) signs the revoke and list calls."""

    def __init__(self, endpoint: str, secure: bool, region: str,
                 http: urllib3.PoolManager, root: tuple[str, ...]) -> None:
        self.base = f"{'https' if secure else 'http'}://{endpoint}"
        self.region = region
        self.http = http
        self.root = Credentials(*root)

    def _send(self, method: str, path: str, credentials: Credentials, *,
              query: dict[str, str] | None = None, form: dict[str, str] | None = None,
              sts: bool = False) -> urllib3.BaseHTTPResponse:
        url = urlsplit(self.base + path + (f"?{urlencode(sorted(query.items()))}"
                                           if query else ""))
        body = urlencode(form).encode() if form else b""
        digest = sha256_hash(body)
        now = utcnow()
        headers = {"Host": url.netloc, "X-Amz-Date": to_amz_date(now),
                   "x-amz-content-sha256": digest}
        if form:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if credentials.session_token:
            headers["X-Amz-Security-Token"] = credentials.session_token
        sign = sign_v4_sts if sts else sign_v4_s3
        headers = sign(method=method, url=url, region=self.region, headers=headers,
                       credentials=credentials, content_sha256=digest, date=now)
        try:
            return self.http.request(method, url.geturl(), body=body or None,
                                     headers=headers, preload_content=False)
        except urllib3.exceptions.HTTPError as exc:
            raise StorageError(f"MinIO unreachable: {exc}") from exc

    def assume_role(self, parent: tuple[str, str], policy: dict | None, expires_at: datetime,
                    now: datetime, revoke_type: str) -> TemporaryKeys:
        """New keys of ``parent`` (user, password) until ``expires_at``, limited further by
        ``policy`` (a session policy, at most 2048 characters) when given."""
        form = {"Action": "AssumeRole", "Version": "2011-06-15",
                "DurationSeconds": str(int((expires_at - now).total_seconds())),
                "TokenRevokeType": revoke_type}
        if policy is not None:
            form["Policy"] = json.dumps(policy, separators=(",", ":"))
        response = self._send("POST", "/", Credentials(*parent), form=form, sts=True)
        data = response.read()
        response.release_conn()
        if response.status != 200:
            raise StorageError(f"MinIO refused temporary keys ({response.status}): "
                               f"{_error_code(data)}")
        found = ElementTree.fromstring(data).find(f".//{_STS}Credentials")
        values = [found.findtext(f"{_STS}{name}") if found is not None else None
                  for name in ("AccessKeyId", "SecretAccessKey", "SessionToken")]
        if not all(values):
            raise StorageError("MinIO's AssumeRole answer has no credentials")
        return TemporaryKeys(*values)  # type: ignore[arg-type]

    def revoke(self, parent: str, revoke_type: str) -> bool:
        """Revoke every key of ``parent`` with ``revoke_type``; False if the user is gone
        (its keys are then gone too)."""
        response = self._send("POST", _ADMIN + "revoke-tokens/builtin", self.root,
                              query={"user": parent, "tokenRevokeType": revoke_type})
        data = response.read()
        response.release_conn()
        if response.status in (200, 204):
            return True
        if response.status == 404 or _error_code(data) == "XMinioAdminNoSuchUser":
            return False
        raise StorageError(f"MinIO refused to revoke keys ({response.status}): "
                           f"{_error_code(data)}")

    def temporary_keys(self) -> dict[str, list[str]]:
        """Live temporary access keys of every user, by user (one admin call; its answer is
        encrypted, so this is for reconciling and checks, not a hot path)."""
        response = self._send("GET", _ADMIN + "list-access-keys-bulk", self.root,
                              query={"listType": "sts-only", "all": "true"})
        if response.status != 200:
            data = response.read()
            response.release_conn()
            raise StorageError(f"MinIO refused to list temporary keys ({response.status}): "
                               f"{_error_code(data)}")
        try:
            listing = json.loads(decrypt(response, self.root.secret_key))
        finally:
            response.release_conn()
        return {user: [k["accessKey"] for k in entry.get("stsKeys") or []]
                for user, entry in (listing or {}).items()}


def _error_code(data: bytes) -> str:
    """MinIO's error code from a JSON (admin) or XML (STS) error body."""
    text = data.decode(errors="replace")
    try:
        return str(json.loads(text).get("Code", ""))[:80]
    except (ValueError, AttributeError):
        pass
    try:
        return ElementTree.fromstring(text).findtext(f".//{_STS}Code") or text[:80]
    except ElementTree.ParseError:
        return text[:80]
