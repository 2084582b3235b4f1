"""Read models kept in memory until a table they were read from changes.

The lists every page and client polls (projects, the catalogue, a researcher's export
requests) are computed once per change instead of once per call. An entry records the
tables' generation (:mod:`safezone.changes`) read *before* its query, and an optional
moment it stops being true (a membership that expires: zone time); it is used only while
both still hold. When the change feed cannot vouch for the generations (PostgreSQL's
listener is reconnecting), nothing is cached.

Cached values are shared between callers: treat them as read-only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import anyio
from cachetools import LRUCache

from .changes import ChangeFeed

T = TypeVar("T")
MAX_ENTRIES = 20_000  # per process; a per-user entry is a few kilobytes


class NotHeld(Exception):
    """A read needs the database, which the event loop must not wait for."""


_ON_LOOP: ContextVar[bool] = ContextVar("safezone_reads_on_loop", default=False)


async def served(read: Callable[..., T], *args: Any) -> T:
    """``read(*args)`` on the event loop when every read model it uses is held, else in a
    worker thread. ``read`` must do nothing but permission checks before its reads."""
    entered = _ON_LOOP.set(True)
    try:
        return read(*args)
    except NotHeld:
        pass
    finally:
        _ON_LOOP.reset(entered)
    return await anyio.to_thread.run_sync(read, *args)


@dataclass(frozen=True)
class ReadModel:
    """A read kept in the cache: ``load(zone, *args)`` returns the value and the moment
    it stops being true (or None); ``tables`` are those it reads."""

    name: str
    tables: tuple[str, ...]
    load: Callable[..., tuple[Any, datetime | None]]


class ReadCache:
    """Values of read models by arguments, each valid for one generation of its tables."""

    def __init__(self, feed: ChangeFeed, now: Callable[[], datetime],
                 max_entries: int = MAX_ENTRIES) -> None:
        self.feed = feed
        self.now = now
        self._entries: LRUCache[Hashable, tuple[Any, datetime | None, Any]] = LRUCache(
            max_entries)
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def read(self, model: ReadModel, zone: Any, *args: Any, key: Hashable = None) -> Any:
        """The model's value for ``args`` (held under ``key``, by default the arguments),
        loaded here, in this thread, if not held."""
        key = (model.name, key if key is not None else args)
        generation = self.feed.generation(model.tables)
        hit, value = self._lookup(key, generation)
        if hit:
            return value
        if _ON_LOOP.get():
            raise NotHeld(model.name)
        return self._load(model, zone, args, key, generation)

    def _lookup(self, key: Hashable, generation: tuple[int, ...] | None) -> tuple[bool, Any]:
        if generation is None:
            return False, None
        with self._lock:
            found = self._entries.get(key)
        if found and found[0] == generation and (found[1] is None or self.now() < found[1]):
            self.hits += 1
            return True, found[2]
        return False, None

    def _load(self, model: ReadModel, zone: Any, args: tuple, key: Hashable,
              generation: tuple[int, ...] | None) -> Any:
        self.misses += 1
        value, until = model.load(zone, *args)
        if generation is not None:  # read before the load: a change meanwhile outdates it
            with self._lock:
                self._entries[key] = (generation, until, value)
        return value
