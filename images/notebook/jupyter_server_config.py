"""Notebook server settings of the Safezone image: no file downloads over HTTP."""

c = get_config()  # noqa: F821
c.ContentsManager.files_handler_class = "safezone.notebook_server.NoDownloadHandler"
c.ServerApp.terminals_enabled = True
