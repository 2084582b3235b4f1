"""Server-rendered pages of the control plane (Jinja, Korean and English)."""
