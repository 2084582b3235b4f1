"""Policy templates are data: fill ``{placeholder}`` strings anywhere in a YAML/JSON tree."""

from __future__ import annotations

from typing import Any


def fill(node: Any, values: dict[str, str]) -> Any:
    """A copy of ``node`` with every string (keys too) formatted with ``values``."""
    if isinstance(node, str):
        return node.format(**values)
    if isinstance(node, list):
        return [fill(item, values) for item in node]
    if isinstance(node, dict):
        return {fill(k, values): fill(v, values) for k, v in node.items()}
    return node
