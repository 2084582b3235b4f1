"""``safezone local up``: the whole zone on 127.0.0.1 with demo data."""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import sys
import time
from pathlib import Path

import httpx

from ..config import REPO_ROOT, Settings
from ..zone import Zone
from .demo import DEMO_PROJECT, seed
from .processes import ManagedProcess, wait_for_http
from .services import MissingTool, start_hub, start_minio

log = logging.getLogger("safezone.local")
DEMO_USERS = ("admin", "reviewer", "alice", "bob")
PORTS = {"minio": 9000, "minio_console": 9001, "control_plane": 8700, "hub_api": 8081,
         "proxy_api": 8001}


def _secrets(state: Path) -> dict:
    """Generated once per state folder and kept there (mode 600)."""
    path = state / "secrets.json"
    if path.exists():
        values = json.loads(path.read_text())
        if "pseudonym_key" in values:
            return values
    else:
        values = {}
    values = {
        "minio_root_password": secrets.token_urlsafe(24),
        "issuer_password": secrets.token_urlsafe(24),
        "service_token": secrets.token_hex(32),
        "spawner_token": secrets.token_hex(32),
        "passwords": {user: secrets.token_urlsafe(9) for user in DEMO_USERS},
        # the demo's pseudonymisation key: kept here, outside MinIO (a real zone keeps it
        # with the data steward, outside the zone)
        "pseudonym_key": secrets.token_urlsafe(32),
        **values,
    }
    path.write_text(json.dumps(values, indent=2))
    path.chmod(0o600)
    return values


def _users_file(state: Path, passwords: dict[str, str]) -> Path:
    from spawner.demo_auth import hash_password

    path = state / "users.json"
    if not path.exists():
        path.write_text(json.dumps({u: hash_password(p) for u, p in passwords.items()}))
        path.chmod(0o600)
    return path


def run_local_zone(state_dir: str, port: int = 8000) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    state = (REPO_ROOT / state_dir).resolve() if not os.path.isabs(state_dir) else Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    values = _secrets(state)
    hub_url = f"http://127.0.0.1:{port}"
    env = {
        "SAFEZONE_MINIO_ENDPOINT": f"127.0.0.1:{PORTS['minio']}",
        "SAFEZONE_MINIO_ROOT_USER": "safezone-root",
        "SAFEZONE_MINIO_ROOT_PASSWORD": values["minio_root_password"],
        "SAFEZONE_MINIO_ISSUER_PASSWORD": values["issuer_password"],
        "SAFEZONE_DATABASE_URL": os.environ.get("SAFEZONE_DATABASE_URL",
                                                f"sqlite:///{state / 'safezone.sqlite'}"),
        "SAFEZONE_CONTROL_PLANE_URL": f"http://127.0.0.1:{PORTS['control_plane']}",
        "SAFEZONE_SERVICE_TOKEN": values["service_token"],
        "SAFEZONE_SPAWNER_TOKEN": values["spawner_token"],
        "SAFEZONE_USERS_FILE": str(_users_file(state, values["passwords"])),
        "SAFEZONE_ADMINS": "admin",
        "SAFEZONE_REVIEWERS": "reviewer",
        "SAFEZONE_STEWARDS": "steward",
        "SAFEZONE_HUB_URL": hub_url,
        "SAFEZONE_HUB_PORT": str(PORTS["hub_api"]),
        "SAFEZONE_PROXY_API_PORT": str(PORTS["proxy_api"]),
        "SAFEZONE_WORKSPACE_ROOT": str(state / "workspaces"),
    }
    os.environ.update(env)
    running: list[ManagedProcess] = []
    try:
        log.info("starting MinIO on 127.0.0.1:%s", PORTS["minio"])
        running.append(start_minio(state / "minio", PORTS["minio"], PORTS["minio_console"],
                                   env["SAFEZONE_MINIO_ROOT_USER"],
                                   values["minio_root_password"], state / "logs" / "minio.log"))
        settings = Settings.from_env()
        zone = Zone.from_settings(settings)
        zone.broker.bootstrap()
        seed(zone, values["pseudonym_key"].encode())
        log.info("demo data ready (project %s)", DEMO_PROJECT)
        cp_env = {**os.environ, "JUPYTERHUB_API_TOKEN": values["service_token"],
                  "JUPYTERHUB_API_URL": f"http://127.0.0.1:{PORTS['hub_api']}/hub/api",
                  "JUPYTERHUB_SERVICE_URL": env["SAFEZONE_CONTROL_PLANE_URL"],
                  "PYTHONPATH": str(REPO_ROOT)}
        control_plane = ManagedProcess.start(
            "control-plane", [sys.executable, "-m", "safezone.api.main"],
            state / "logs" / "control-plane.log", env=cp_env)
        running.append(control_plane)
        wait_for_http(f"{env['SAFEZONE_CONTROL_PLANE_URL']}/api/health", 60, control_plane)
        running.append(start_hub(env, state / "hub", hub_url, state / "logs" / "hub.log"))
        token = httpx.post(f"{hub_url}/hub/api/users/admin/tokens", timeout=30, json={
            "auth": {"username": "admin", "password": values["passwords"]["admin"]},
            "note": "safezone local zone"}).json()["token"]
        _announce(hub_url, values["passwords"], token, state)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while all(p.popen.poll() is None for p in running):
            time.sleep(1)
        stopped = next(p for p in running if p.popen.poll() is not None)
        log.error("%s stopped; see %s", stopped.name, stopped.log_path)
    except MissingTool as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        pass
    finally:
        for process in reversed(running):
            process.stop()


def _announce(hub_url: str, passwords: dict[str, str], token: str, state: Path) -> None:
    lines = [
        "",
        "Safezone (안심구역) is running / 실행 중",
        f"  Open {hub_url}/hub/login",
        "  Demo logins (user / password):",
        *[f"    {user:9s} {pw}" for user, pw in passwords.items()],
        "  alice is approved for demo-health; bob is not a member.",
        "  Administer from another shell:",
        f"    export SAFEZONE_URL={hub_url}/services/safezone SAFEZONE_TOKEN={token}",
        "    .venv/bin/safezone projects list",
        f"  Logs: {state / 'logs'}   Stop: Ctrl-C",
        "",
    ]
    print("\n".join(lines), flush=True)
