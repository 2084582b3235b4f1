"""Concurrent identical calls share one run, and never one that began before they asked
(safezone/coalesce.py: a grant's MinIO listings and its parent's policy write)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from safezone.coalesce import Coalescer


def waiting_for_next(coalescer: Coalescer, key: str, callers: int) -> bool:
    """Whether ``callers`` calls wait for the run after the current one (internal state:
    the only way to know a thread has asked, not just started)."""
    with coalescer._lock:
        waiting = coalescer._next.get(key)
        return waiting is not None and waiting.callers == callers


def test_callers_during_a_run_share_the_next_run_not_the_current_one():
    coalescer, calls = Coalescer(), []
    first_started, release_first = threading.Event(), threading.Event()

    def call() -> int:
        calls.append(len(calls) + 1)
        if len(calls) == 1:
            first_started.set()
            release_first.wait(10)
        return len(calls)

    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(coalescer.run, "key", call)
        assert first_started.wait(10)
        later = [pool.submit(coalescer.run, "key", call) for _ in range(6)]
        while not waiting_for_next(coalescer, "key", 6):  # all of them asked meanwhile
            threading.Event().wait(0.01)
        release_first.set()
        assert first.result(10) == 1
        # the run under way when they asked is not theirs: they share the one after it
        assert [f.result(10) for f in later] == [2] * 6
    assert calls == [1, 2]


def test_an_error_reaches_the_callers_of_that_run_and_is_not_kept():
    coalescer, attempts = Coalescer(), []

    def failing() -> None:
        attempts.append(1)
        raise RuntimeError("MinIO refused")

    with pytest.raises(RuntimeError, match="MinIO refused"):
        coalescer.run("key", failing)
    assert coalescer.run("key", lambda: "answered") == "answered"
    assert attempts == [1]


def test_different_keys_run_apart_and_at_once():
    coalescer = Coalescer()
    both_in = threading.Barrier(2, timeout=10)

    def call(name: str) -> str:
        both_in.wait()  # only returns if the other key runs at the same time
        return name

    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(coalescer.run, "a", lambda: call("a"))
        b = pool.submit(coalescer.run, "b", lambda: call("b"))
        assert (a.result(10), b.result(10)) == ("a", "b")


def test_callers_sharing_a_failed_run_each_get_an_error_of_its_type():
    from safezone.audit import AuditUnanchored

    coalescer = Coalescer()
    first_started, release_first = threading.Event(), threading.Event()

    def call() -> None:
        if not first_started.is_set():
            first_started.set()
            release_first.wait(10)
            return
        raise AuditUnanchored(committed=True)

    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(coalescer.run, "key", call)
        assert first_started.wait(10)
        waiting = [pool.submit(coalescer.run, "key", call) for _ in range(2)]
        while not waiting_for_next(coalescer, "key", 2):
            threading.Event().wait(0.01)
        release_first.set()
        first.result(10)
        errors = [f.exception(10) for f in waiting]
    assert all(isinstance(e, AuditUnanchored) and e.committed for e in errors)
    assert errors[0] is not errors[1]  # each thread raises its own object
