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
# No news or update checks (they call out, and the pop-up confuses people).
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"
# Dumping a dataset to the browser cell by cell is slow and visible.
c.ZMQChannelsWebsocketConnection.limit_rate = True
c.ZMQChannelsWebsocketConnection.iopub_data_rate_limit = 1_000_000  # bytes per second
c.ZMQChannelsWebsocketConnection.iopub_msg_rate_limit = 1000  # messages per second
c.ZMQChannelsWebsocketConnection.rate_limit_window = 3.0
