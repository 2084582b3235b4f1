"""The control plane's REST API (FastAPI), served as a JupyterHub service."""
