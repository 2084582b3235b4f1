"""Control-plane settings, read from ``SAFEZONE_*`` environment variables."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from . import failpoints

REPO_ROOT = Path(__file__).resolve().parent.parent
POLICIES_DIR = Path(os.environ.get("SAFEZONE_POLICIES_DIR", REPO_ROOT / "policies"))
# shown on every hub and control-plane page when SAFEZONE_UNISOLATED_DEMO=1
UNISOLATED_DEMO_WARNING_KO = ("격리되지 않은 데모: 노트북이 격리되지 않습니다 — "
                              "실제 데이터에 쓰지 마세요.")
UNISOLATED_DEMO_WARNING_EN = ("Unisolated demo: notebooks are NOT isolated — "
                              "do not use with real data.")
# the hub's own pages and the logs carry both; the Safezone pages one, in the page's language
UNISOLATED_DEMO_WARNING = f"{UNISOLATED_DEMO_WARNING_KO} / {UNISOLATED_DEMO_WARNING_EN}"


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"SAFEZONE_{name}", default)


def _env_list(name: str) -> tuple[str, ...]:
    """A comma-separated ``SAFEZONE_*`` variable as a tuple (blanks dropped)."""
    return tuple(item.strip() for item in (_env(name, "") or "").split(",") if item.strip())


def _networks(setting: str, values: tuple[str, ...]) -> tuple[str, ...]:
    """``values`` as canonical CIDRs (a bare address is its /32 or /128); anything that is
    not an IP network, or has host bits set, is refused with the setting's name."""
    checked = []
    for value in values:
        try:
            checked.append(str(ipaddress.ip_network(value, strict=True)))
        except ValueError as exc:
            raise ValueError(f"{setting}: {value!r} is not an IP network in CIDR form "
                             f"(e.g. 10.98.0.0/24): {exc}") from None
    return tuple(checked)


@dataclass(frozen=True)
class StorageSettings:
    """Where MinIO is and which identities the control plane holds."""

    endpoint: str  # host:port as seen by the control plane
    public_endpoint: str  # URL as seen by notebook sessions
    root_user: str
    root_password: str
    issuer_user: str = "safezone-session-issuer"
    issuer_password: str = ""
    secure: bool = False
    region: str = "us-east-1"
    lock_retention_days: int = 365
    anchor_prefix: str = "anchors/"  # where audit heads go in the audit bucket
    # Dedicated identities; empty means derived from the root password (storage.broker).
    anchor_password: str = ""  # the audit anchor writer (PutObject on audit anchors only)
    released_reader_password: str = ""  # the released reader (GetObject on released only)
    # Where session keys may be used from (CIDRs; aws:SourceIp in session.yaml). Empty: from
    # anywhere. ``notebook_excluded`` is refused even inside them (e.g. the host's gateway).
    notebook_networks: tuple[str, ...] = ()
    notebook_excluded: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        networks = _networks("SAFEZONE_NOTEBOOK_NETWORKS", tuple(self.notebook_networks))
        excluded = _networks("SAFEZONE_NOTEBOOK_EXCLUDED", tuple(self.notebook_excluded))
        if excluded and not networks:
            raise ValueError("SAFEZONE_NOTEBOOK_EXCLUDED is set but SAFEZONE_NOTEBOOK_NETWORKS "
                             "is empty: session keys would be usable from anywhere")
        object.__setattr__(self, "notebook_networks", networks)
        object.__setattr__(self, "notebook_excluded", excluded)


@dataclass(frozen=True)
class Settings:
    """Everything the control plane needs to run."""

    database_url: str
    storage: StorageSettings
    hub_api_url: str = "http://127.0.0.1:8081/hub/api"
    service_name: str = "safezone"
    service_token: str = ""  # JUPYTERHUB_API_TOKEN of the control-plane service
    session_ttl_hours: float = 12.0
    base_url: str = "/services/safezone/"
    kubernetes: bool = False  # provision a namespace per project
    unisolated_demo: bool = False  # notebooks run unsandboxed: every page warns
    # Calls whose TCP peer is here come from inside the zone (safezone/api/origin.py): only
    # where no other component shares the range (the local sandbox subnet; not a Kubernetes
    # pod CIDR, which the proxy shares). Empty: a token's shape alone says "notebook".
    inside_networks: tuple[str, ...] = ()
    inside_excluded: tuple[str, ...] = ()
    # the bearer token a Prometheus scraper sends to GET /metrics; empty: no one may scrape
    metrics_token: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "inside_networks",
                           _networks("SAFEZONE_INSIDE_NETWORKS", tuple(self.inside_networks)))
        object.__setattr__(self, "inside_excluded",
                           _networks("SAFEZONE_INSIDE_EXCLUDED", tuple(self.inside_excluded)))

    @classmethod
    def from_env(cls) -> Settings:
        """Build settings from the environment (the hub passes JUPYTERHUB_* to services).
        Raises ``ValueError`` (one line) for a setting that must not start the zone."""
        kubernetes = _env("MODE", "local") == "kubernetes"
        failpoints.refuse_in_production(kubernetes)
        endpoint = _env("MINIO_ENDPOINT", "127.0.0.1:9000") or ""
        storage = StorageSettings(
            endpoint=endpoint,
            public_endpoint=_env("MINIO_PUBLIC_URL") or f"http://{endpoint}",  # "" = unset
            root_user=_env("MINIO_ROOT_USER", "") or "",
            root_password=_env("MINIO_ROOT_PASSWORD", "") or "",
            issuer_password=_env("MINIO_ISSUER_PASSWORD", "") or "",
            anchor_password=_env("MINIO_ANCHOR_PASSWORD", "") or "",
            released_reader_password=_env("MINIO_RELEASED_READER_PASSWORD", "") or "",
            lock_retention_days=int(_env("LOCK_RETENTION_DAYS", "365") or 365),
            anchor_prefix=_env("AUDIT_ANCHOR_PREFIX", "anchors/") or "anchors/",
            notebook_networks=_env_list("NOTEBOOK_NETWORKS"),
            notebook_excluded=_env_list("NOTEBOOK_EXCLUDED"),
        )
        return cls(
            database_url=_env("DATABASE_URL", "sqlite:///safezone.sqlite") or "",
            storage=storage,
            hub_api_url=os.environ.get("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api"),
            service_name=os.environ.get("JUPYTERHUB_SERVICE_NAME", "safezone"),
            service_token=os.environ.get("JUPYTERHUB_API_TOKEN", ""),
            session_ttl_hours=float(_env("SESSION_TTL_HOURS", "12") or 12),
            base_url=os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/safezone/"),
            kubernetes=kubernetes,
            unisolated_demo=_env("UNISOLATED_DEMO", "") == "1",
            inside_networks=_env_list("INSIDE_NETWORKS"),
            inside_excluded=_env_list("INSIDE_EXCLUDED"),
            metrics_token=_env("METRICS_TOKEN", "") or "",
        )
