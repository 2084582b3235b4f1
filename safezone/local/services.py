"""Start the real services of the one-machine zone: MinIO and JupyterHub."""

from __future__ import annotations

import os
import pwd
import shutil
import sys
from pathlib import Path

from ..config import REPO_ROOT
from .private_files import private_dir
from .processes import ManagedProcess, stop_recorded_process, wait_for_http

CACHE = REPO_ROOT / ".cache"
PROXY_PID_FILE = "jupyterhub-proxy.pid"  # in the hub's state folder (hub_config uses it)


class MissingTool(RuntimeError):
    """A binary the zone needs is not installed; the message says how to get it."""


def minio_binary() -> Path:
    """``$SAFEZONE_MINIO_BIN`` or the pinned build of ``scripts/setup.sh``."""
    override = os.environ.get("SAFEZONE_MINIO_BIN")
    path = Path(override) if override else CACHE / "bin" / "minio"
    if not path.is_file():
        raise MissingTool(f"MinIO server binary not found at {path}: run scripts/setup.sh "
                          "(needs Go) or set SAFEZONE_MINIO_BIN to a minio binary")
    return path


def proxy_binary() -> Path:
    local = REPO_ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
    found = local if local.exists() else shutil.which("configurable-http-proxy")
    if not found:
        raise MissingTool("configurable-http-proxy not found: run scripts/setup.sh "
                          "(npm install)")
    return Path(found)


# MinIO's audit webhook: entries per POST (one JSON object a line) and how many batches
# its queue folder keeps while the control plane is down (MinIO's own default size)
AUDIT_BATCH_SIZE = 100
AUDIT_QUEUE_SIZE = 100000


def audit_queue_dir(data_dir: Path, user: int | None = None) -> Path:
    """The audit webhook's queue folder, beside MinIO's data (a folder inside the data
    folder would be a bucket): mode 0700, owned by MinIO's service user."""
    owner = None if user is None else (user, pwd.getpwuid(user).pw_gid)
    return private_dir(data_dir.with_name(f"{data_dir.name}-audit-queue"), owner)


def audit_webhook_env(endpoint: str, token: str, queue_dir: Path | None = None
                      ) -> dict[str, str]:
    """MinIO's own audit log sent to the control plane's access records
    (``POST /api/records/minio``, refused without ``token``), in batches; with
    ``queue_dir`` MinIO keeps the entries on disk until the control plane took them
    (none lost while it is down or slow, none pushed out of a memory buffer)."""
    return {"MINIO_AUDIT_WEBHOOK_ENABLE_safezone": "on",
            "MINIO_AUDIT_WEBHOOK_ENDPOINT_safezone": endpoint,
            "MINIO_AUDIT_WEBHOOK_AUTH_TOKEN_safezone": token,
            "MINIO_AUDIT_WEBHOOK_BATCH_SIZE_safezone": str(AUDIT_BATCH_SIZE),
            "MINIO_AUDIT_WEBHOOK_QUEUE_SIZE_safezone": str(AUDIT_QUEUE_SIZE),
            **({"MINIO_AUDIT_WEBHOOK_QUEUE_DIR_safezone": str(queue_dir)} if queue_dir
               else {})}


def start_minio(data_dir: Path, port: int, console_port: int, root_user: str,
                root_password: str, log_path: Path, host: str = "127.0.0.1",
                user: int | None = None, audit_webhook: tuple[str, str] | None = None,
                into: list[ManagedProcess] | None = None) -> ManagedProcess:
    """MinIO's S3 API on ``host:port`` (the zone bridge's gateway, where sandboxes reach
    it), its console on loopback only; run as ``user`` (uid) when given. With
    ``audit_webhook`` (endpoint, token) MinIO sends its audit log there. ``into``: the
    caller's list of what to stop (joined as soon as it starts)."""
    env = {**os.environ, "MINIO_ROOT_USER": root_user, "MINIO_ROOT_PASSWORD": root_password,
           "MINIO_BROWSER": "off", "MINIO_UPDATE": "off", "MINIO_CI_CD": "1",
           # aws:SourceIp from the connection, not from a client's X-Forwarded-For
           "_MINIO_API_XFF_HEADER": "off",
           **(audit_webhook_env(*audit_webhook, audit_queue_dir(data_dir, user))
              if audit_webhook else {})}
    process = ManagedProcess.start(
        "minio",
        [str(minio_binary()), "server", str(data_dir), "--address", f"{host}:{port}",
         "--console-address", f"127.0.0.1:{console_port}", "--quiet"],
        log_path, env=env, user=user, into=into)
    wait_for_http(f"http://{host}:{port}/minio/health/ready", 60, process)
    return process


def start_hub(env: dict[str, str], state_dir: Path, hub_url: str, log_path: Path,
              into: list[ManagedProcess] | None = None) -> ManagedProcess:
    """JupyterHub with our config; configurable-http-proxy is started by the hub (a proxy
    an earlier hub of this folder left is stopped first, and its pid file goes)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    proxy_pid = (state_dir / PROXY_PID_FILE, "configurable-http-proxy")
    stop_recorded_process(*proxy_pid)
    path = f"{proxy_binary().parent}{os.pathsep}{Path(sys.executable).parent}"
    full_env = {**os.environ, **env, "PATH": f"{path}{os.pathsep}{os.environ.get('PATH', '')}",
                "SAFEZONE_HUB_STATE_DIR": str(state_dir), "PYTHONPATH": str(REPO_ROOT)}
    process = ManagedProcess.start(
        "jupyterhub",
        [sys.executable, "-m", "jupyterhub", "-f",
         str(REPO_ROOT / "hub_config" / "jupyterhub_config.py")],
        log_path, env=full_env, cwd=state_dir, into=into)
    # the hub starts its proxy in a session of its own; a killed hub leaves it listening
    process.leaves = (proxy_pid,)
    wait_for_http(f"{hub_url}/hub/api/", 90, process)
    return process
