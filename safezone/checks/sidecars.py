"""Evidence sidecars (``<file>.evidence.json``): written by the notebook helper beside a
table, checked with it, never released. Plain functions, importable inside a notebook
(no heavy dependencies): the notebook helper and the control plane attach sidecars the
same way."""

from __future__ import annotations

from collections.abc import Collection

EVIDENCE_SUFFIX = ".evidence.json"
EVIDENCE_NOTE = "evidence (stays in the zone)"


def is_evidence(path: str) -> bool:
    """Evidence sidecars written by the notebook helper: checked, kept in the zone."""
    return path.endswith(EVIDENCE_SUFFIX)


def sidecar_of(path: str) -> str:
    """The name of ``path``'s evidence sidecar."""
    return path + EVIDENCE_SUFFIX


def attach_evidence(entries: list[dict[str, str]], present: Collection[str]
                    ) -> list[dict[str, str]]:
    """Request file entries (``{"path", "justification", …}``) followed by one entry per
    evidence sidecar of theirs found in ``present`` (the names in the outbox) and not
    already listed."""
    listed = {e.get("path", "") for e in entries}
    wanted = {sidecar_of(p) for p in listed if not is_evidence(p)}
    extra = sorted((wanted & set(present)) - listed)
    return list(entries) + [{"path": path, "justification": EVIDENCE_NOTE} for path in extra]
