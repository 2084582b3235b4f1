"""The notebook server of the safe zone serves nothing out: one config for both modes.

Kubernetes: the notebook image copies this folder to /usr/local/etc/jupyter. Local mode:
the spawner puts this folder on JUPYTER_CONFIG_PATH. Results leave the zone only through
the export review; these settings close the browser routes around it.
"""

import os

c = get_config()  # noqa: F821

# Files: /files/ answers 403; the contents API serves notebooks and small UTF-8 text only
# (never base64 or binary; the size cap is policies/notebook-server.yaml).
c.ContentsManager.files_handler_class = "safezone.notebook_server.NoDownloadHandler"
c.ServerApp.contents_manager_class = "safezone.notebook_server.SafeContentsManager"
# No nbconvert HTTP handlers (exports with outputs); terminals only where the project's
# administrator switched them on (the session grant's SAFEZONE_TERMINALS).
c.ServerApp.jpserver_extensions.update({"safezone.notebook_server": True})
c.ServerApp.terminals_enabled = os.environ.get("SAFEZONE_TERMINALS") == "1"
# No news or update checks (they call out, and the pop-up confuses people); the Lab's own
# settings say so too (labconfig/default_setting_overrides.json: fetchNews, checkForUpdates).
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"
# JupyterLab in the researcher's language (SAFEZONE_LANGUAGE, chosen by the spawner from
# the Safezone pages' language): read-only settings defaults per language beside this file
# (lab-settings/<language>/overrides.json: the Korean language pack or English). The
# researcher may still pick another language in the Lab; that choice is theirs to keep.
language = os.environ.get("SAFEZONE_LANGUAGE", "ko")
c.LabApp.app_settings_dir = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "lab-settings",
    language if language in ("ko", "en") else "ko")
# Dumping a dataset to the browser cell by cell is slow and visible.
c.ZMQChannelsWebsocketConnection.limit_rate = True
c.ZMQChannelsWebsocketConnection.iopub_data_rate_limit = 1_000_000  # bytes per second
c.ZMQChannelsWebsocketConnection.iopub_msg_rate_limit = 1000  # messages per second
c.ZMQChannelsWebsocketConnection.rate_limit_window = 3.0
