"""JupyterHub configuration of Safezone (local and Kubernetes modes).

Every value comes from the environment (the local launcher and the Helm chart set it),
so the same file serves both modes. ``SAFEZONE_MODE`` picks the spawner.
"""

import html
import os

c = get_config()  # type: ignore[name-defined]  # noqa: F821

env = os.environ.get
mode = env("SAFEZONE_MODE", "local")
state_dir = env("SAFEZONE_HUB_STATE_DIR", ".")
control_plane_url = env("SAFEZONE_CONTROL_PLANE_URL", "http://127.0.0.1:8700")


def _names(var: str) -> list[str]:
    return [n.strip() for n in env(var, "").split(",") if n.strip()]


# -- network -------------------------------------------------------------------------
c.JupyterHub.bind_url = env("SAFEZONE_HUB_URL", "http://127.0.0.1:8000")
c.JupyterHub.hub_ip = env("SAFEZONE_HUB_IP", "127.0.0.1")
c.JupyterHub.hub_port = int(env("SAFEZONE_HUB_PORT", "8081"))
if env("SAFEZONE_PROXY_API_PORT"):
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{env('SAFEZONE_PROXY_API_PORT')}"
if env("SAFEZONE_PROXY_API_URL"):  # Kubernetes: the proxy is its own Deployment
    c.ConfigurableHTTPProxy.api_url = env("SAFEZONE_PROXY_API_URL")
    c.ConfigurableHTTPProxy.should_start = False  # its token: CONFIGPROXY_AUTH_TOKEN
c.JupyterHub.db_url = env("SAFEZONE_HUB_DB_URL", f"sqlite:///{state_dir}/jupyterhub.sqlite")
c.JupyterHub.cookie_secret_file = os.path.join(state_dir, "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = os.path.join(state_dir, "jupyterhub.pid")
# the launcher stops a proxy a killed hub left behind by this file (safezone/local/services.py)
from safezone.local.services import PROXY_PID_FILE  # noqa: E402

c.ConfigurableHTTPProxy.pid_file = os.path.join(state_dir, PROXY_PID_FILE)
# Local notebooks are the hub's children: they stop with it. Pods outlive a hub restart
# (an upgrade must not end every session); the restarted hub polls each one and ends the
# grants of those that died meanwhile (spawner/kube.py poll, its database on a volume).
c.JupyterHub.cleanup_servers = mode != "kubernetes"

# -- who is who ----------------------------------------------------------------------
oidc = bool(env("SAFEZONE_OIDC_ISSUER"))
if oidc:
    # the institution's identity provider: hub_config/oidc.py, policies/identity.yaml
    # (MFA required; IdP groups -> Safezone roles, synced at each login; safe user names)
    from hub_config.oidc import configure as configure_oidc

    configure_oidc(c)
elif mode == "local" or env("SAFEZONE_USERS_FILE"):
    # the demo users file (make run; the chart's hub.demoUsersSecret for evaluation)
    c.JupyterHub.authenticator_class = "spawner.demo_auth.FileAuthenticator"
# Access records (접속기록): every login is reported to the control plane with the address
# the hub saw, using the spawner's token; a login that cannot be recorded is refused.
from safezone.records.hub_hook import report_login  # noqa: E402

c.Authenticator.post_auth_hook = report_login
# Safezone roles never carry JupyterHub admin: a hub admin can mint tokens for anyone and
# so act as any reviewer. Hub admin is a break-glass operator role, held by nobody unless
# SAFEZONE_HUB_OPERATORS names someone; the control plane refuses and audits them.
c.Authenticator.admin_users = set(_names("SAFEZONE_HUB_OPERATORS"))
# Page sessions (the hub's OAuth tokens) last a working day.
c.JupyterHub.oauth_token_expires_in = int(env("SAFEZONE_PAGE_SESSION_SECONDS", "28800"))

c.JupyterHub.custom_scopes = {
    "custom:safezone:admin": {"description": "Administer Safezone projects and datasets."},
    "custom:safezone:review": {"description": "Review Safezone export requests."},
    "custom:safezone:steward": {"description": "De-identify raw data into attested datasets."},
    "custom:safezone:sessions": {"description": "Issue and end Safezone session grants."},
}
if not oidc:  # with OIDC the authenticator sets each user's groups at login
    c.JupyterHub.load_groups = {
        "safezone-admins": {"users": _names("SAFEZONE_ADMINS")},
        "safezone-reviewers": {"users": _names("SAFEZONE_REVIEWERS")},
        "safezone-stewards": {"users": _names("SAFEZONE_STEWARDS")},
    }
c.JupyterHub.load_roles = [
    {"name": "user", "scopes": ["self", "access:services!service=safezone"]},
    {"name": "server", "scopes": ["users:activity!user", "access:servers!server",
                                 "access:services!service=safezone"]},
    {"name": "safezone-admin", "groups": ["safezone-admins"],
     "scopes": ["custom:safezone:admin", "access:services!service=safezone"]},
    {"name": "safezone-reviewer", "groups": ["safezone-reviewers"],
     "scopes": ["custom:safezone:review", "access:services!service=safezone"]},
    {"name": "safezone-steward", "groups": ["safezone-stewards"],
     "scopes": ["custom:safezone:steward", "access:services!service=safezone"]},
    # The control plane stops servers on revocation and resolves callers' tokens.
    {"name": "safezone-control-plane", "services": ["safezone"],
     "scopes": ["admin:servers", "read:users:name"]},
    # The spawner's token: the only identity that may ask for session grants.
    {"name": "safezone-spawner", "services": ["safezone-spawner"],
     "scopes": ["custom:safezone:sessions"]},
]
c.JupyterHub.services = [
    {
        "name": "safezone",
        "url": control_plane_url,
        "api_token": env("SAFEZONE_SERVICE_TOKEN"),
        "display": True,
        "oauth_no_confirm": True,
        "oauth_client_allowed_scopes": ["custom:safezone:admin", "custom:safezone:review",
                                        "custom:safezone:steward"],
    },
    {"name": "safezone-spawner", "api_token": env("SAFEZONE_SPAWNER_TOKEN")},
]

# -- idle culling (policies/operations.yaml; SAFEZONE_IDLE_*): jupyterhub-idle-culler stops
# idle default and named servers through the hub API, so the spawner's stop() ends their
# grants. Its role holds only the scopes the culler documents; servers report activity
# (kernels, terminals, API calls) often enough for the timeout to see it.
from safezone.culling import culler_role, culler_service, culling_settings  # noqa: E402

culling = culling_settings()
_api_host = c.JupyterHub.hub_ip if c.JupyterHub.hub_ip not in ("", "0.0.0.0") else "127.0.0.1"
culler = culler_service(culling, f"http://{_api_host}:{c.JupyterHub.hub_port}/hub/api")
if culler:
    c.JupyterHub.services.append(culler)
    c.JupyterHub.load_roles.append(culler_role())
c.Spawner.environment = {"JUPYTERHUB_ACTIVITY_INTERVAL": str(culling.activity_interval_seconds)}
c.JupyterHub.activity_resolution = min(30, culling.activity_interval_seconds)

# -- spawner -------------------------------------------------------------------------
workspaces = env("SAFEZONE_WORKSPACE_ROOT", os.path.join(state_dir, "workspaces"))
if mode == "local" and env("SAFEZONE_UNISOLATED_DEMO") == "1":
    # the explicit demo switch only: servers run as the hub's user, unconfined
    c.JupyterHub.spawner_class = "spawner.local.SafeZoneLocalSpawner"
    c.SafeZoneLocalSpawner.workspace_root = workspaces
elif mode == "local":
    # each server in a runc sandbox on the zone bridge (spawner/sandbox.py)
    c.JupyterHub.spawner_class = "spawner.sandbox.SafeZoneSandboxSpawner"
    c.SafeZoneSandboxSpawner.workspace_root = workspaces
    c.SafeZoneSandboxSpawner.state_dir = env(
        "SAFEZONE_SANDBOX_STATE_DIR", os.path.join(state_dir, "sandbox"))
    c.SafeZoneSandboxSpawner.bridge = env("SAFEZONE_SANDBOX_BRIDGE", "szbr0")
    c.SafeZoneSandboxSpawner.subnet = env("SAFEZONE_SANDBOX_SUBNET", "10.99.0.0/24")
    # a password typed into a notebook does not log in (nor mint a hub token) from there
    from safezone.sandbox.network import ZoneNetwork

    c.FileAuthenticator.refused_networks = ZoneNetwork(
        subnet=c.SafeZoneSandboxSpawner.subnet).sandbox_networks  # the proxy is the gateway
    c.SafezoneOIDCAuthenticator.refused_networks = c.FileAuthenticator.refused_networks
c.SafeZoneLocalSpawner.control_plane_url = control_plane_url
c.SafeZoneSandboxSpawner.control_plane_url = control_plane_url
# A server that died on its own (a sandbox, or a pod deleted behind the hub's back) is
# noticed within this many seconds; its teardown ends the grant (MinIO refuses the keys)
# and frees its sandbox or deletes its session Secret. KubeSpawner polls a watch cache.
c.Spawner.poll_interval = int(env("SAFEZONE_POLL_SECONDS", "2"))
if mode == "kubernetes":
    c.JupyterHub.spawner_class = "spawner.kube.SafeZoneKubeSpawner"
    c.JupyterHub.hub_connect_ip = env("SAFEZONE_HUB_CONNECT_HOST", "hub")
    c.SafeZoneKubeSpawner.control_plane_url = control_plane_url
    c.SafeZoneKubeSpawner.image = env("SAFEZONE_NOTEBOOK_IMAGE", "")
    c.SafeZoneKubeSpawner.start_timeout = int(env("SAFEZONE_START_TIMEOUT", "300"))
c.JupyterHub.allow_named_servers = True  # e.g. one server per project
c.JupyterHub.named_server_limit_per_user = int(env("SAFEZONE_SERVERS_PER_USER", "3"))
# the workspace opens on its read-only welcome notebook (safezone/welcome.py)
c.Spawner.default_url = "/lab/tree/Welcome.ipynb"
c.Spawner.start_timeout = int(env("SAFEZONE_START_TIMEOUT", "60"))
c.Spawner.http_timeout = int(env("SAFEZONE_HTTP_TIMEOUT", "60"))

# -- hub pages: the Safezone's navigation and language (hub_config/templates/) -----------
from safezone.config import REPO_ROOT  # noqa: E402
from spawner.hub_pages import hub_settings  # noqa: E402

c.JupyterHub.template_paths = [str(REPO_ROOT / "hub_config" / "templates")]
for name, value in hub_settings().items():
    getattr(c.JupyterHub, name).update(value)

# -- unsandboxed demo: every hub page says so (page.html renders announcement unescaped) --
if env("SAFEZONE_UNISOLATED_DEMO") == "1":
    from safezone.config import UNISOLATED_DEMO_WARNING

    banner = f'<strong role="alert">{html.escape(UNISOLATED_DEMO_WARNING)}</strong>'
    c.JupyterHub.template_vars = {name: banner for name in (
        "announcement", "announcement_login", "announcement_spawn", "announcement_home",
        "announcement_logout")}

# -- logs: the hub's own lines pass safezone.logs.redact (JupyterHub logs the xsrf cookie's
# session id, a cookie value, at INFO; tests/test_logs_secrets.py scans for such leaks) --
from safezone.logs import protect_loggers  # noqa: E402

protect_loggers("JupyterHub", "tornado.application", "tornado.access", "tornado.general")
