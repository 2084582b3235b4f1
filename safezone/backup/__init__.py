"""Backups of a zone: ``safezone backup`` writes a consistent snapshot (database, catalogue
pins, audit anchors, a manifest of hashes), ``safezone restore`` brings a fresh zone back
from one. Object data stays in MinIO (see docs/operations.md)."""
