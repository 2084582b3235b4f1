"""Run test code as if from inside the zone's notebook network, without a sandbox.

``InNamespace(client, name)`` makes every call of ``client`` on this thread from the
network namespace ``name`` (``setns`` applies per thread); sockets keep the namespace
they were opened in, so pooled connections stay inside.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


@contextmanager
def entered(name: str) -> Iterator[None]:
    """This thread in network namespace ``name`` for the ``with`` body."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(target)
        os.close(own)


class InNamespace:
    """A proxy of ``client`` whose method calls run inside network namespace ``name``."""

    def __init__(self, client: Any, name: str) -> None:
        self._client, self._name = client, name

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._client, attr)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            with entered(self._name):
                return value(*args, **kwargs)

        return call


def inside(client: httpx.Client, name: str) -> InNamespace:
    """A new client like ``client`` (same base URL and headers), calling from namespace
    ``name``: a fresh pool, since pooled connections stay where they were opened."""
    return InNamespace(httpx.Client(base_url=client.base_url, headers=client.headers,
                                    timeout=30), name)
