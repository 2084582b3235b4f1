"""The one-machine zone: start MinIO, the control plane and JupyterHub as processes."""
