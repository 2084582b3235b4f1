"""Each route names the permission-table action it performs (``policies/permissions.yaml``).

A test walks every route of the app and fails on one that names no action, so no route
can be added without a line in the table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi.routing import APIRoute

from ..permissions import load_table

F = TypeVar("F", bound=Callable)


def action(name: str) -> Callable[[F], F]:
    """Mark a route's endpoint with its action (checked against the table at import)."""
    load_table().rule(name)

    def mark(endpoint: F) -> F:
        endpoint.safezone_action = name  # type: ignore[attr-defined]
        return endpoint

    return mark


def routes_of(router: Any) -> list[APIRoute]:
    """Every route of an app or router, including those of included routers (which newer
    FastAPI keeps as lazy wrappers; ours are included without a prefix)."""
    found: list[APIRoute] = []
    for route in router.routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            found.extend(routes_of(route.original_router))
    return found
