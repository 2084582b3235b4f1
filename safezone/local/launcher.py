"""``safezone local up``: the whole zone on one machine with demo data; notebooks in
sandboxes on the zone bridge (services they need listen on its gateway address)."""

from __future__ import annotations

import json
import logging
import os
import pwd
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from ..config import REPO_ROOT, UNISOLATED_DEMO_WARNING, Settings
from ..sandbox.network import NetworkError, ZoneNetwork
from ..sandbox.preflight import SandboxUnavailable, require_sandbox
from ..zone import Zone
from .demo import DEMO_PROJECT, seed
from .private_files import UnsafeFolder, private_dir, write_private
from .processes import (
    ManagedProcess,
    PortInUse,
    held_signals,
    require_free_ports,
    wait_for_http,
)
from .services import MissingTool, minio_binary, start_hub, start_minio

log = logging.getLogger("safezone.local")
# two reviewers, so a flagged request (two approvals) can finish in the demo
DEMO_USERS = ("admin", "reviewer", "reviewer2", "alice", "bob")
PORTS = {"minio": 9000, "minio_console": 9001, "control_plane": 8700, "hub_api": 8081,
         "proxy_api": 8001}


def _secrets(state: Path) -> dict:
    """Generated once per state folder and kept there (mode 600 from the first byte)."""
    path = state / "secrets.json"
    values = json.loads(path.read_text()) if path.exists() else {}
    passwords = values.get("passwords", {})
    if {"pseudonym_key", "records_token", "metrics_token"} <= set(values) and \
            set(DEMO_USERS) <= set(passwords):
        return values
    if values:  # a zone from before a demo user was added: give them a password too
        values["passwords"] = {**{u: secrets.token_urlsafe(9) for u in DEMO_USERS},
                               **passwords}
    values = {
        "minio_root_password": secrets.token_urlsafe(24),
        "issuer_password": secrets.token_urlsafe(24),
        "service_token": secrets.token_hex(32),
        "spawner_token": secrets.token_hex(32),
        "records_token": secrets.token_hex(32),  # MinIO's audit log -> access records
        "metrics_token": secrets.token_urlsafe(32),  # GET /metrics (Prometheus)
        "passwords": {user: secrets.token_urlsafe(9) for user in DEMO_USERS},
        # the demo's pseudonymisation key: kept here, outside MinIO (a real zone keeps it
        # with the data steward, outside the zone)
        "pseudonym_key": secrets.token_urlsafe(32),
        **values,
    }
    write_private(path, json.dumps(values, indent=2).encode())
    return values


def _users_file(state: Path, passwords: dict[str, str]) -> Path:
    from spawner.demo_auth import hash_password

    path = state / "users.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    if set(known) != set(passwords):
        write_private(path, json.dumps(
            {u: known.get(u) or hash_password(p) for u, p in passwords.items()}).encode())
    return path


# what keeps the zone from starting, each said in one line (the CLI's CliError)
REFUSALS = (SandboxUnavailable, PortInUse, UnsafeFolder, MissingTool, NetworkError)


def run_local_zone(state_dir: str, port: int = 8000, *, unisolated_demo: bool = False
                   ) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if unisolated_demo:
        log.warning("!!! --unisolated-demo: %s !!!", UNISOLATED_DEMO_WARNING)
        print(f"WARNING: {UNISOLATED_DEMO_WARNING}", file=sys.stderr, flush=True)
    else:
        require_sandbox()
    require_free_ports({"hub": port, **PORTS})
    state = (REPO_ROOT / state_dir).resolve() if not os.path.isabs(state_dir) else Path(state_dir)
    private_dir(state)
    state.chmod(0o711)  # each service's folder below is its own (0700); secrets.json is 0600
    values = _secrets(state)
    network = None if unisolated_demo else ZoneNetwork(
        bridge=os.environ.get("SAFEZONE_SANDBOX_BRIDGE", "szbr0"),
        subnet=os.environ.get("SAFEZONE_SANDBOX_SUBNET", "10.99.0.0/24"))
    host = network.gateway if network else "127.0.0.1"  # where sandboxes reach services
    minio_uid = service_user("safezone-minio", minio_binary(), state) if network else None
    hub_url = f"http://127.0.0.1:{port}"
    env = {
        "SAFEZONE_MINIO_ENDPOINT": f"{host}:{PORTS['minio']}",
        "SAFEZONE_MINIO_ROOT_USER": "safezone-root",
        "SAFEZONE_MINIO_ROOT_PASSWORD": values["minio_root_password"],
        "SAFEZONE_MINIO_ISSUER_PASSWORD": values["issuer_password"],
        "SAFEZONE_DATABASE_URL": os.environ.get(
            "SAFEZONE_DATABASE_URL",
            f"sqlite:///{private_dir(state / 'control-plane') / 'safezone.sqlite'}"),
        "SAFEZONE_CONTROL_PLANE_URL": f"http://{host}:{PORTS['control_plane']}",
        "SAFEZONE_SERVICE_TOKEN": values["service_token"],
        "SAFEZONE_SPAWNER_TOKEN": values["spawner_token"],
        "SAFEZONE_RECORDS_TOKEN": values["records_token"],
        "SAFEZONE_RECORDS_TRUSTED_PROXIES": host,  # the proxy's forwarded client address
        "SAFEZONE_METRICS_TOKEN": values["metrics_token"],
        "SAFEZONE_USERS_FILE": str(_users_file(state, values["passwords"])),
        "SAFEZONE_ADMINS": "admin",
        "SAFEZONE_REVIEWERS": "reviewer,reviewer2",
        "SAFEZONE_STEWARDS": "steward",
        "SAFEZONE_HUB_URL": hub_url,
        "SAFEZONE_HUB_IP": host,
        "SAFEZONE_HUB_PORT": str(PORTS["hub_api"]),
        "SAFEZONE_PROXY_API_PORT": str(PORTS["proxy_api"]),
        "SAFEZONE_WORKSPACE_ROOT": str(private_dir(state / "workspaces")),
        "SAFEZONE_UNISOLATED_DEMO": "1" if unisolated_demo else "0",
    }
    if network:
        env.update({
            "SAFEZONE_SANDBOX_BRIDGE": network.bridge,
            "SAFEZONE_SANDBOX_SUBNET": network.subnet,
            "SAFEZONE_SANDBOX_STATE_DIR": str(private_dir(state / "sandbox")),
            # session keys work only from the sandboxes (never from the host's gateway)
            "SAFEZONE_NOTEBOOK_NETWORKS": network.subnet,
            "SAFEZONE_NOTEBOOK_EXCLUDED": network.excluded,
            # calls from there are inside the zone (the proxy and services use the gateway)
            "SAFEZONE_INSIDE_NETWORKS": network.subnet,
            "SAFEZONE_INSIDE_EXCLUDED": network.excluded,
        })
    os.environ.update(env)
    running: list[ManagedProcess] = []
    # a stop asked for while starting stops what has started (its services run in sessions
    # of their own, so nothing else would); a closed terminal is such a stop too
    for stop_signal in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, lambda *_: sys.exit(0))
    try:
        if network:
            network.service_ports = {PORTS["minio"], PORTS["hub_api"], PORTS["control_plane"]}
            network.storage_ports = {PORTS["minio"]}
            network.up()
            log.info("zone network %s %s: sandboxes reach only %s:%s", network.bridge,
                     network.subnet, host, sorted(network.service_ports))
        log.info("starting MinIO on %s:%s", host, PORTS["minio"])
        owner = None if minio_uid is None else (minio_uid, pwd.getpwuid(minio_uid).pw_gid)
        start_minio(private_dir(state / "minio", owner), PORTS["minio"],
                    PORTS["minio_console"], env["SAFEZONE_MINIO_ROOT_USER"],
                    values["minio_root_password"], state / "logs" / "minio.log",
                    host=host, user=minio_uid, into=running, audit_webhook=(
                        f"{env['SAFEZONE_CONTROL_PLANE_URL']}/api/records/minio",
                        values["records_token"]))
        settings = Settings.from_env()
        zone = Zone.from_settings(settings)
        zone.broker.bootstrap()
        seed(zone, values["pseudonym_key"].encode())
        log.info("demo data ready (project %s)", DEMO_PROJECT)
        cp_env = {**os.environ, "JUPYTERHUB_API_TOKEN": values["service_token"],
                  "JUPYTERHUB_API_URL": f"http://{host}:{PORTS['hub_api']}/hub/api",
                  "JUPYTERHUB_SERVICE_URL": env["SAFEZONE_CONTROL_PLANE_URL"],
                  "PYTHONPATH": str(REPO_ROOT)}
        control_plane = ManagedProcess.start(
            "control-plane", [sys.executable, "-m", "safezone.api.main"],
            state / "logs" / "control-plane.log", env=cp_env, into=running)
        wait_for_http(f"{env['SAFEZONE_CONTROL_PLANE_URL']}/api/health", 60, control_plane)
        start_hub(env, private_dir(state / "hub"), hub_url, state / "logs" / "hub.log",
                  into=running)
        token = httpx.post(f"{hub_url}/hub/api/users/admin/tokens", timeout=30, json={
            "auth": {"username": "admin", "password": values["passwords"]["admin"]},
            "note": "safezone local zone"}).json()["token"]
        _announce(hub_url, values["passwords"], token, state, unisolated_demo)
        while all(p.popen.poll() is None for p in running):
            time.sleep(1)
        stopped = next(p for p in running if p.popen.poll() is not None)
        log.error("%s stopped; see %s", stopped.name, stopped.log_path)
        raise SystemExit(1)  # the zone is down (the rest is stopped below)
    except KeyboardInterrupt:
        pass
    finally:
        with held_signals():  # a second Ctrl-C or SIGTERM must not abandon the clean-up
            for process in reversed(running):
                process.stop(timeout=30)
            if network:
                network.down()


def service_user(name: str, binary: Path, state: Path) -> int | None:
    """A system user for a service, if ``binary`` runs as it inside ``state`` (either may
    sit below a folder only root can enter: then the service stays root, with a note)."""
    done = subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                           "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name],
                          capture_output=True, text=True, check=False)
    if done.returncode not in (0, 9):  # 9: exists
        log.warning("could not create service user %s: %s", name, done.stderr.strip())
        return None
    uid = pwd.getpwnam(name).pw_uid
    try:
        probe = subprocess.run([str(binary), "--version"], user=uid, cwd=state,
                               capture_output=True, check=False).returncode
    except OSError:
        probe = -1
    if probe != 0:
        log.warning("%s cannot run %s in %s (a parent folder is closed to it): the service "
                    "runs as root", name, binary, state)
        return None
    return uid


def _announce(hub_url: str, passwords: dict[str, str], token: str, state: Path,
              unisolated_demo: bool) -> None:
    lines = [
        "",
        "Safezone (안심구역) is running / 실행 중",
        f"  !!! {UNISOLATED_DEMO_WARNING}" if unisolated_demo else
        "  Notebooks run in sandboxes (own user, namespaces, cgroups, zone firewall).",
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
