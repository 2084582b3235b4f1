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


@pytest.mark.parametrize(("mode", "spawner"), [("local", "spawner.local.SafeZoneLocalSpawner"),
                                               ("kubernetes", "spawner.kube.SafeZoneKubeSpawner")])
def test_mode_picks_the_spawner(monkeypatch, mode, spawner):
    config = load(monkeypatch, SAFEZONE_MODE=mode, SAFEZONE_NOTEBOOK_IMAGE="img:1",
                  SAFEZONE_ADMINS="admin", SAFEZONE_REVIEWERS="rev")
    assert config.JupyterHub.spawner_class == spawner
    roles = {r["name"]: r for r in config.JupyterHub.load_roles}
    assert roles["safezone-spawner"]["scopes"] == ["custom:safezone:sessions"]
    assert config.JupyterHub.load_groups["safezone-admins"]["users"] == ["admin"]
