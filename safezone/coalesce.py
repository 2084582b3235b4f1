"""Concurrent callers of the same call share one run of it that began after they asked.

A burst of session grants asks MinIO the same questions (is dataset D still its attested
objects? how much does project P store?) and makes the same writes (parent P holds policy
X). Answering each from a cache would be stale: a grant must see the objects as they are
*after* it was asked for. So a caller never takes the result of a run already under way:
it joins the next run of that key, which starts when the current one ends, and every
caller waiting for it shares its result (or its error). One run per key at a time, as the
audit anchor's group commit does (``Zone.anchor``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class _Run(Generic[T]):
    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: T | None = None
        self.error: BaseException | None = None
        self.callers = 1

    def result(self) -> T:
        self.done.wait()
        if self.error is not None:
            raise _own_copy(self.error) from self.error
        return self.value  # type: ignore[return-value]


def _own_copy(error: BaseException) -> BaseException:
    """The shared error as this caller's own object (same type and fields: the callers'
    handlers tell errors apart by type), so threads do not rewrite one traceback."""
    try:  # not copy.copy: it re-runs __init__ with args, which keyword-only ones refuse
        clone = type(error).__new__(type(error))
        clone.__dict__.update(error.__dict__)
        clone.args = error.args
        return clone
    except Exception:  # an exception type that cannot be copied: share it
        return error


class Coalescer:
    """``run(key, call)``: ``call()``'s result, from a run that began after this call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[Hashable, _Run[Any]] = {}
        self._next: dict[Hashable, _Run[Any]] = {}  # joinable until it starts

    def run(self, key: Hashable, call: Callable[[], T]) -> T:
        with self._lock:
            waiting = self._next.get(key)
            if waiting is not None:
                waiting.callers += 1
                joined: _Run[Any] | None = waiting
            else:
                joined = None
                mine: _Run[Any] = _Run()
                ahead = self._running.get(key)
                if ahead is None:
                    self._running[key] = mine
                else:
                    self._next[key] = mine
        if joined is not None:
            return joined.result()
        try:
            if ahead is not None:
                ahead.done.wait()
                with self._lock:  # from here on, later callers wait for the run after this
                    del self._next[key]
                    self._running[key] = mine
            mine.value = call()
        except Exception as exc:
            mine.error = exc
        except BaseException:  # interrupted: the callers waiting with it are told so
            mine.error = RuntimeError("a shared call was interrupted; try again")
            raise
        finally:
            with self._lock:
                if self._running.get(key) is mine:
                    del self._running[key]
                if self._next.get(key) is mine:
                    del self._next[key]
            mine.done.set()
        if mine.error is not None:
            raise mine.error
        return mine.value  # type: ignore[return-value]
