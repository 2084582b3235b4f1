"""The one hub configuration file serves both modes (values from the environment)."""

from __future__ import annotations

import pytest
from traitlets.config import PyFileConfigLoader

from safezone.config import REPO_ROOT


def load(monkeypatch, **env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    loader = PyFileConfigLoader("jupyterhub_config.py", path=str(REPO_ROOT / "hub_config"))
    return loader.load_config()


@pytest.mark.parametrize(("mode", "demo", "spawner"), [
    ("local", "0", "spawner.sandbox.SafeZoneSandboxSpawner"),
    ("local", "1", "spawner.local.SafeZoneLocalSpawner"),  # only with --unisolated-demo
    ("kubernetes", "0", "spawner.kube.SafeZoneKubeSpawner")])
def test_mode_picks_the_spawner(monkeypatch, mode, demo, spawner):
    config = load(monkeypatch, SAFEZONE_MODE=mode, SAFEZONE_NOTEBOOK_IMAGE="img:1",
                  SAFEZONE_ADMINS="admin", SAFEZONE_REVIEWERS="rev",
                  SAFEZONE_UNISOLATED_DEMO=demo)
    assert config.JupyterHub.spawner_class == spawner
    roles = {r["name"]: r for r in config.JupyterHub.load_roles}
    assert roles["safezone-spawner"]["scopes"] == ["custom:safezone:sessions"]
    assert config.JupyterHub.load_groups["safezone-admins"]["users"] == ["admin"]
