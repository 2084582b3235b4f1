"""Policy templates are data: fill ``{placeholder}`` strings anywhere in a YAML/JSON tree."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def fill(node: Any, values: Mapping[str, str | list[str]]) -> Any:
    """A copy of ``node`` with every string (keys too) formatted with ``values``.

    A string that is exactly one placeholder of a list value becomes a copy of that list;
    a list value anywhere else inside a string is an error (KeyError), never its repr.
    """
    if isinstance(node, str):
        whole = node[1:-1] if node.startswith("{") and node.endswith("}") else None
        if whole is not None and isinstance(values.get(whole), list):
            return list(values[whole])
        return node.format(**{k: v for k, v in values.items() if isinstance(v, str)})
    if isinstance(node, list):
        return [fill(item, values) for item in node]
    if isinstance(node, dict):
        return {fill(k, values): fill(v, values) for k, v in node.items()}
    return node
