"""The storage broker: the only code that administers MinIO.

Identities: the root user (bootstrap, dataset buckets, reading audit anchors); the anchor
writer, whose only right is ``s3:PutObject`` under the anchor prefix of ``audit``
(``anchor-writer.yaml``); the released reader, whose only right is ``s3:GetObject`` in
``released`` (``released-reader.yaml``); and the session parents. A session parent is a
plain user for one researcher, one project and one set of datasets; its own policy (named
like it) is exactly what such a session may do, rendered by ``policies.session_policy``.
Sessions hold its *temporary* keys (STS ``AssumeRole``, ``tokens.py``), each revocable by
its grant id; revoking refuses the keys at once, and narrowing the parent's policy narrows
every live session of it at once. (The session issuer, a user whose policy is the ceiling
of the service accounts sessions used to get, only serves grants issued before that.)
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import re
import secrets
import string
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import urllib3
from minio import Minio, MinioAdmin
from minio.commonconfig import COMPLIANCE
from minio.credentials import StaticProvider
from minio.error import MinioAdminException, S3Error
from minio.objectlockconfig import DAYS, ObjectLockConfig
from minio.versioningconfig import ENABLED, VersioningConfig

from ..audit import Anchor
from ..config import StorageSettings
from ..errors import StorageError
from .layout import Layout, load_layout
from .policies import (
    anchor_writer_policy,
    issuer_policy,
    released_reader_policy,
    session_ceiling,
)
from .tokens import TemporaryKeys, TokenService

log = logging.getLogger(__name__)

ISSUER_POLICY_NAME = "safezone-session-issuer"
ANCHOR_WRITER = "safezone-anchor-writer"
RELEASED_READER = "safezone-released-reader"
AUDIT, RELEASED = "audit", "released"
# <seq>-<sha256>.json; anchors written before the hash was in the key are <seq>.json
_ANCHOR_KEY = re.compile(r"(\d{12})(?:-([0-9a-f]{64}))?\.json")
# MinIO refuses service-account expiries closer than 15 minutes or further than 365 days.
MIN_IDENTITY_LIFETIME = timedelta(minutes=16)
MAX_IDENTITY_LIFETIME = timedelta(days=364)
_ALPHABET = string.ascii_uppercase + string.digits
SESSION_PARENT_PREFIX = "szs-"


@dataclass(frozen=True)
class StoredObject:
    """One object version as MinIO reports it."""

    version_id: str | None
    etag: str
    size: int


class ObjectMissing(StorageError):
    status_code = 422


class ObjectTooLarge(StorageError):
    status_code = 413


def _http_client() -> urllib3.PoolManager:
    retry = urllib3.Retry(total=2, backoff_factor=0.1, status_forcelist=[502, 503, 504])
    return urllib3.PoolManager(timeout=urllib3.Timeout(connect=5, read=60), retries=retry)


def derived_password(root_password: str, purpose: str) -> str:
    """A dedicated identity's password when none is configured: HMAC-SHA256 of ``purpose``
    keyed by the root password, so it survives restarts and needs no new configuration
    (hex, cut to MinIO's 40-character limit for secret keys)."""
    return hmac.new(root_password.encode(), purpose.encode(), hashlib.sha256).hexdigest()[:40]


def anchor_writer_name(anchor_prefix: str) -> str:
    """One writer per anchor prefix, so zones sharing a MinIO cannot write each other's
    anchors; the default prefix keeps the plain name."""
    if anchor_prefix == "anchors/":
        return ANCHOR_WRITER
    return f"{ANCHOR_WRITER}-{hashlib.sha256(anchor_prefix.encode()).hexdigest()[:8]}"


@contextmanager
def _object_errors(what: str, doing: str) -> Iterator[None]:
    """MinIO's refusals as our errors: a missing object or bucket is ObjectMissing (422)."""
    try:
        yield
    except S3Error as exc:
        if exc.code in {"NoSuchKey", "NoSuchBucket"}:
            raise ObjectMissing(f"{what} does not exist") from exc
        raise StorageError(f"MinIO refused to {doing} {what}: {exc.code}") from exc
    except urllib3.exceptions.HTTPError as exc:
        raise StorageError(f"MinIO unreachable while trying to {doing} {what}") from exc


def clamp_identity_expiry(wanted: datetime, now: datetime) -> datetime:
    """MinIO's accepted expiry window; earlier ends are enforced by deleting the identity."""
    return min(max(wanted, now + MIN_IDENTITY_LIFETIME), now + MAX_IDENTITY_LIFETIME)



def session_parent(project: str, user: str, datasets: list[str]) -> str:
    """The MinIO user whose temporary keys the sessions of ``user`` in ``project`` holding
    exactly ``datasets`` get; its own policy is what those sessions may do."""
    basis = json.dumps([project, user, sorted(datasets)])
    return SESSION_PARENT_PREFIX + hashlib.sha256(basis.encode()).hexdigest()[:32]

class StorageBroker:
    """Administers buckets and identities on one MinIO deployment."""

    def __init__(self, settings: StorageSettings, layout: Layout | None = None) -> None:
        self.settings = settings
        self.layout = layout or load_layout()
        http = _http_client()
        root = StaticProvider(settings.root_user, settings.root_password)
        self.s3 = Minio(settings.endpoint, credentials=root, secure=settings.secure,
                        region=settings.region, http_client=http)
        self.admin = MinioAdmin(endpoint=settings.endpoint, credentials=root,
                                secure=settings.secure, http_client=http)
        issuer = StaticProvider(settings.issuer_user, settings.issuer_password)
        self.issuer = MinioAdmin(endpoint=settings.endpoint, credentials=issuer,
                                 secure=settings.secure, http_client=http)
        self.anchor_user = anchor_writer_name(settings.anchor_prefix)
        self.anchor_password = (settings.anchor_password
                                or derived_password(settings.root_password, "anchor-writer"))
        self.anchor_s3 = self.client_for(self.anchor_user, self.anchor_password)
        self.reader_password = (settings.released_reader_password
                                or derived_password(settings.root_password, "released-reader"))
        self.released_s3 = self.client_for(RELEASED_READER, self.reader_password)
        self.tokens = TokenService(settings.endpoint, settings.secure, settings.region, http,
                                   (settings.root_user, settings.root_password))
        self._known_parents: set[str] = set()  # session parents this process has made
        self._ceiling = session_ceiling()  # every session key's session policy

    # -- bootstrap -------------------------------------------------------------------
    def bootstrap(self) -> None:
        """Create the zone's buckets and its three users with their policies (idempotent)."""
        for bucket, locked in self.layout.buckets.items():
            if not self.s3.bucket_exists(bucket):
                self.s3.make_bucket(bucket, object_lock=locked)
                log.info("created bucket %s%s", bucket, " (object lock)" if locked else "")
            if locked:
                self.s3.set_object_lock_config(
                    bucket,
                    ObjectLockConfig(COMPLIANCE, self.settings.lock_retention_days, DAYS),
                )
        self._ensure_user(self.settings.issuer_user, self.settings.issuer_password,
                          ISSUER_POLICY_NAME, issuer_policy())
        self._ensure_user(self.anchor_user, self.anchor_password, self.anchor_user,
                          anchor_writer_policy(self.settings.anchor_prefix))
        self._ensure_user(RELEASED_READER, self.reader_password, RELEASED_READER,
                          released_reader_policy())

    def _ensure_user(self, user: str, password: str, policy_name: str, policy: dict,
                     policy_added: bool = False) -> None:
        """A plain MinIO user holding exactly ``policy`` (re-applied on every bootstrap)."""
        if not policy_added:
            self.admin.policy_add(policy_name, policy=policy)
        self.admin.user_add(user, password)
        try:
            self.admin.attach_policy([policy_name], user=user)
        except MinioAdminException as exc:
            if "PolicyChangeAlreadyApplied" not in str(exc):
                raise

    # -- dataset buckets -------------------------------------------------------------
    def bucket_exists(self, bucket: str) -> bool:
        return self.s3.bucket_exists(bucket)

    def ensure_bucket(self, bucket: str, versioned: bool = False) -> bool:
        """Create ``bucket`` if missing; True when this call created it.

        A versioned bucket gives every write a new version id that no writer can choose,
        which is what attestations pin.
        """
        try:
            if self.s3.bucket_exists(bucket):
                return False
            self.s3.make_bucket(bucket)
            if versioned:
                self.s3.set_bucket_versioning(bucket, VersioningConfig(ENABLED))
        except (S3Error, urllib3.exceptions.HTTPError) as exc:
            raise StorageError(f"MinIO could not create bucket {bucket}: {exc}") from exc
        return True

    def remove_bucket_if_empty(self, bucket: str) -> None:
        try:
            self.s3.remove_bucket(bucket)
        except S3Error as exc:
            log.warning("could not remove bucket %s: %s", bucket, exc.code)

    # -- session identities ----------------------------------------------------------
    def session_parent_password(self, parent: str) -> str:
        return derived_password(self.settings.root_password, f"session-parent:{parent}")

    def prepare_session_parent(self, parent: str, policy: dict) -> None:
        """``parent`` exists and holds exactly ``policy`` (a named policy of its own name).

        Creating the user is MinIO's slow, Argon2-encrypted admin call, paid once per
        parent (this process remembers it); replacing its policy is one plain request.
        """
        try:
            self.admin.policy_add(parent, policy=policy)
            if parent in self._known_parents:
                return
            try:
                known = json.loads(self.admin.user_info(parent)).get("policyName") == parent
            except MinioAdminException as exc:
                if "Status: 404" not in str(exc) and "NoSuchUser" not in str(exc):
                    raise
                known = False
            if not known:
                self._ensure_user(parent, self.session_parent_password(parent), parent, policy,
                                  policy_added=True)
        except (MinioAdminException, urllib3.exceptions.HTTPError) as exc:
            raise StorageError(f"MinIO refused to prepare the session identity: {exc}"
                               ) from exc
        self._known_parents.add(parent)

    def issue_session_keys(self, parent: str, grant_id: str, expires_at: datetime
                           ) -> TemporaryKeys:
        """Temporary keys of ``parent`` for one grant, revocable by the grant's id."""
        now = datetime.now(UTC)
        return self.tokens.assume_role(
            (parent, self.session_parent_password(parent)), self._ceiling,
            clamp_identity_expiry(expires_at, now), now, revoke_type=grant_id)

    def revoke_session_keys(self, parent: str, grant_id: str) -> None:
        """MinIO refuses the grant's keys from now on (a parent already gone is fine)."""
        self.tokens.revoke(parent, grant_id)

    def narrow_session_parent(self, parent: str, policy: dict) -> bool:
        """Replace what a parent's sessions may do; MinIO applies it to their keys at once.
        False when the parent no longer exists."""
        if not policy.get("Statement"):
            raise ValueError("a session policy needs at least one statement")
        try:
            json.loads(self.admin.user_info(parent))
        except MinioAdminException as exc:
            if "Status: 404" in str(exc) or "NoSuchUser" in str(exc):
                return False
            raise StorageError(f"MinIO refused to read {parent}: {exc}") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise StorageError(f"MinIO unreachable while reading {parent}: {exc}") from exc
        try:
            self.admin.policy_add(parent, policy=policy)
        except (MinioAdminException, urllib3.exceptions.HTTPError) as exc:
            raise StorageError(f"MinIO refused to narrow {parent}: {exc}") from exc
        return True

    def remove_session_parent(self, parent: str) -> None:
        """The parent, its keys and its policy go (a project's data was destroyed)."""
        try:
            self.admin.user_remove(parent)
        except MinioAdminException as exc:
            if "Status: 404" not in str(exc) and "NoSuchUser" not in str(exc):
                raise StorageError(f"MinIO refused to remove {parent}: {exc}") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise StorageError(f"MinIO unreachable while removing {parent}: {exc}") from exc
        try:
            self.admin.policy_remove(parent)
        except MinioAdminException as exc:
            log.info("policy %s not removed: %s", parent, exc)
        self._known_parents.discard(parent)

    def delete_legacy_identity(self, access_key: str) -> None:
        """A grant issued before sessions used temporary keys holds a service account of
        the issuer; an identity that is already gone is fine."""
        try:
            self.issuer.delete_service_account(access_key)
        except MinioAdminException as exc:
            if "NoSuchServiceAccount" in str(exc) or "404" in str(exc):
                return
            raise StorageError(f"MinIO refused to delete {access_key}: {exc}") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise StorageError(f"MinIO unreachable while deleting {access_key}: {exc}") from exc

    def session_identities(self) -> list[str]:
        """Access keys of all live session keys (temporary keys of session parents)."""
        return [key for user, keys in self.tokens.temporary_keys().items()
                if user.startswith(SESSION_PARENT_PREFIX) for key in keys]

    # -- pipeline identities ---------------------------------------------------------
    def create_pipeline_identity(self, policy: dict, name: str, description: str
                                 ) -> tuple[str, str]:
        """A short-lived service account limited by ``policy`` for one pipeline run."""
        access_key = "SZP" + "".join(secrets.choice(_ALPHABET) for _ in range(17))
        secret_key = secrets.token_urlsafe(30)
        expiry = (datetime.now(UTC) + MIN_IDENTITY_LIFETIME).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            self.admin.add_service_account(
                access_key=access_key, secret_key=secret_key, policy=policy,
                expiration=expiry, name=name[:32], description=description[:256])
        except (MinioAdminException, urllib3.exceptions.HTTPError) as exc:
            raise StorageError(f"MinIO refused to create the pipeline identity: {exc}"
                               ) from exc
        return access_key, secret_key

    def pipeline_identities(self) -> list[tuple[str, str]]:
        """(access key, description) of every pipeline identity MinIO still holds."""
        try:
            listing = json.loads(self.admin.list_service_account(self.settings.root_user))
        except (MinioAdminException, urllib3.exceptions.HTTPError) as exc:
            raise StorageError(f"MinIO could not list pipeline identities: {exc}") from exc
        return [(a["accessKey"], a.get("description") or "")
                for a in listing.get("accounts") or [] if a["accessKey"].startswith("SZP")]

    def delete_pipeline_identity(self, access_key: str) -> None:
        try:
            self.admin.delete_service_account(access_key)
        except (MinioAdminException, urllib3.exceptions.HTTPError) as exc:
            log.warning("could not delete pipeline identity %s: %s", access_key, exc)

    def client_for(self, access_key: str, secret_key: str) -> Minio:
        """An S3 client acting as another identity (never root)."""
        return Minio(self.settings.endpoint, credentials=StaticProvider(access_key, secret_key),
                     secure=self.settings.secure, region=self.settings.region,
                     http_client=_http_client())

    def current_objects(self, bucket: str, prefix: str = "") -> dict[str, StoredObject]:
        """The latest live version of every object under ``prefix`` (delete markers hide)."""
        try:
            listing = self.s3.list_objects(bucket, prefix=prefix, recursive=True,
                                           include_version=True)
            return {o.object_name: StoredObject(o.version_id, (o.etag or "").strip('"'),
                                                o.size or 0)
                    for o in listing if o.is_latest == "true" and not o.is_delete_marker}
        except (S3Error, urllib3.exceptions.HTTPError) as exc:
            raise StorageError(f"MinIO could not list {bucket}/{prefix}: {exc}") from exc

    # -- export objects ----------------------------------------------------------------
    def _get(self, bucket: str, key: str, **options: object):
        """An open GET response, MinIO's refusals mapped to our errors."""
        with _object_errors(f"{bucket}/{key}", "read"):
            return self.s3.get_object(bucket, key, **options)

    @staticmethod
    def _drain(response) -> bytes:
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def read_object(self, bucket: str, key: str, max_bytes: int) -> bytes:
        """The whole object, refusing anything over ``max_bytes`` before reading it."""
        response = self._get(bucket, key)
        size = int(response.headers.get("Content-Length", "0"))
        if size > max_bytes:
            response.close()
            response.release_conn()
            raise ObjectTooLarge(f"{key} is {size} bytes, over the limit of {max_bytes}")
        return self._drain(response)

    def read_version(self, bucket: str, key: str, version_id: str, max_bytes: int) -> bytes:
        """One pinned version of an object (not whatever is latest), size-capped."""
        try:
            stat = self.s3.stat_object(bucket, key, version_id=version_id)
            if (stat.size or 0) > max_bytes:
                raise ObjectTooLarge(f"{key} is {stat.size} bytes, over {max_bytes}")
            response = self.s3.get_object(bucket, key, version_id=version_id)
        except S3Error as exc:
            raise ObjectMissing(f"{bucket}/{key} ({version_id}) cannot be read: {exc.code}"
                                ) from exc
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def read_head(self, bucket: str, key: str, length: int,
                  version_id: str | None = None) -> tuple[int, bytes]:
        """(size of the object, its first ``length`` bytes): enough to sniff its kind."""
        try:
            response = self._get(bucket, key, offset=0, length=length, version_id=version_id)
        except StorageError as exc:
            if "InvalidRange" in exc.message:  # an empty object has no byte 0
                return 0, b""
            raise
        total = response.headers.get("Content-Range", "").rpartition("/")[2]
        size = int(total) if total.isdigit() else int(response.headers.get("Content-Length",
                                                                            "0"))
        return size, self._drain(response)

    def freeze_copy(self, source_bucket: str, source_key: str, bucket: str, key: str,
                    max_bytes: int) -> tuple[str, int]:
        """Server-side copy into a locked bucket: (version id of the frozen copy, size).

        MinIO copies the bytes as they are at this moment, so the caller's time does not
        grow with the file; the version id pins exactly this copy.
        """
        from minio.commonconfig import CopySource

        with _object_errors(f"{source_bucket}/{source_key}", "freeze"):
            written = self.s3.copy_object(bucket, key, CopySource(source_bucket, source_key))
            stat = self.s3.stat_object(bucket, key, version_id=written.version_id)
        size = stat.size or 0
        if size > max_bytes:  # it grew between the check and the copy
            raise ObjectTooLarge(f"{source_key} is {size} bytes, over the limit of {max_bytes}")
        return written.version_id or "", size

    def write_object(self, bucket: str, key: str, data: bytes) -> str:
        """Store ``data``; returns its SHA-256 (what was written is what was hashed)."""
        try:
            self.s3.put_object(bucket, key, io.BytesIO(data), len(data))
        except (S3Error, urllib3.exceptions.HTTPError) as exc:
            raise StorageError(f"MinIO could not store {bucket}/{key}: {exc}") from exc
        return hashlib.sha256(data).hexdigest()

    def list_keys(self, bucket: str, prefix: str, limit: int = 1000) -> list[tuple[str, int]]:
        """(key, size) of the objects under ``prefix``, at most ``limit``."""
        try:
            found = []
            for obj in self.s3.list_objects(bucket, prefix=prefix, recursive=True):
                found.append((obj.object_name, obj.size or 0))
                if len(found) >= limit:
                    break
            return found
        except (S3Error, urllib3.exceptions.HTTPError) as exc:
            raise StorageError(f"MinIO could not list {bucket}/{prefix}: {exc}") from exc

    def list_entries(self, bucket: str, prefix: str, limit: int = 1000
                     ) -> list[tuple[str, int, datetime | None]]:
        """(key, size, last modified) of the objects under ``prefix``, at most ``limit``."""
        try:
            found = []
            for obj in self.s3.list_objects(bucket, prefix=prefix, recursive=True):
                found.append((obj.object_name, obj.size or 0, obj.last_modified))
                if len(found) >= limit:
                    break
            return found
        except (S3Error, urllib3.exceptions.HTTPError) as exc:
            raise StorageError(f"MinIO could not list {bucket}/{prefix}: {exc}") from exc

    def delete_object(self, bucket: str, key: str) -> None:
        try:
            self.s3.remove_object(bucket, key)
        except (S3Error, urllib3.exceptions.HTTPError) as exc:
            log.warning("could not remove %s/%s: %s", bucket, key, exc)

    def stream_released(self, key: str, chunk: int = 1 << 20) -> tuple[int, Iterator[bytes]]:
        """Size and chunks of ``released/<key>``, read as the released reader (never root),
        so the control plane can serve a download itself. Iterate the chunks to the end
        (or close the iterator) to give the connection back. The reader may not list, so
        MinIO answers a missing key with AccessDenied (a ``StorageError`` here too)."""
        try:
            with _object_errors(f"{RELEASED}/{key}", "read"):
                response = self.released_s3.get_object(RELEASED, key)
        except ValueError as exc:  # the client refuses '.'/'..' segments and empty keys
            raise ObjectMissing(f"{key!r} is not a released object key") from exc

        def chunks() -> Iterator[bytes]:
            try:
                yield from response.stream(chunk)
            except urllib3.exceptions.HTTPError as exc:
                raise StorageError(f"MinIO stopped sending {RELEASED}/{key}") from exc
            finally:
                response.close()
                response.release_conn()

        return int(response.headers.get("Content-Length", "0")), chunks()

    # -- audit anchors ---------------------------------------------------------------
    def write_anchor(self, seq: int, digest: str) -> None:
        """Add an anchor, as the anchor writer. Its key carries seq and hash, so a single
        listing reads every anchor; the object lock keeps every version."""
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ValueError(f"not a SHA-256 hex digest: {digest!r}")
        body = json.dumps({"seq": seq, "hash": digest}).encode()
        key = f"{self.settings.anchor_prefix}{seq:012d}-{digest}.json"
        try:
            self.anchor_s3.put_object(AUDIT, key, io.BytesIO(body), len(body),
                                      content_type="application/json")
        except (S3Error, urllib3.exceptions.HTTPError) as exc:
            raise StorageError(f"MinIO could not store audit anchor {seq}: {exc}") from exc

    def list_anchors(self) -> list[Anchor]:
        """Every anchor ever written, every version (a delete marker hides nothing), sorted
        by seq. Read as root: the anchor writer cannot read. Anchors from before the hash
        went into the key (``<seq>.json``) are read one by one."""
        prefix, found = self.settings.anchor_prefix, set()
        try:
            for obj in self.s3.list_objects(AUDIT, prefix=prefix, recursive=True,
                                            include_version=True):
                name = _ANCHOR_KEY.fullmatch(obj.object_name.removeprefix(prefix))
                if obj.is_delete_marker or name is None:
                    continue
                found.add(Anchor(int(name[1]), name[2]) if name[2]
                          else self._read_anchor(obj.object_name, obj.version_id))
        except (S3Error, urllib3.exceptions.HTTPError) as exc:
            raise StorageError(f"MinIO could not list the audit anchors: {exc}") from exc
        return sorted(found)

    def _read_anchor(self, key: str, version_id: str | None) -> Anchor:
        response = self.s3.get_object(AUDIT, key, version_id=version_id)
        try:
            doc = json.loads(response.read())
        finally:
            response.close()
            response.release_conn()
        return Anchor(int(doc["seq"]), str(doc["hash"]))

    def latest_anchor(self) -> Anchor | None:
        """The anchor of the highest seq (see ``list_anchors``)."""
        anchors = self.list_anchors()
        return anchors[-1] if anchors else None

