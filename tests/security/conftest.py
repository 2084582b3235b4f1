"""The security suite: every attack on a protected byte or power, on the real stack."""

from __future__ import annotations

import pytest

from .world import World, build_world


@pytest.fixture(scope="session")
def world(stack) -> World:
    return build_world(stack)
