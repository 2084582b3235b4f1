"""How many control-plane processes serve a zone, and which one sweeps: the worker count
from SAFEZONE_WORKERS (SQLite zones refuse more than one), and the sweeper lock (one
holder per PostgreSQL database; the first pass of CI runs this on SQLite, the second on
PostgreSQL, where two holders are tried for real)."""

from __future__ import annotations

import pytest

from safezone.api.main import worker_count
from safezone.db import make_engine
from safezone.leader import Leadership

from .support import fresh_database_url

PG = "postgresql+psycopg://u:p@db/safezone"


def test_worker_count_follows_the_setting_and_refuses_more_than_one_on_sqlite(monkeypatch):
    monkeypatch.setenv("SAFEZONE_WORKERS", "3")
    assert worker_count(PG) == 3
    with pytest.raises(ValueError, match="needs PostgreSQL"):
        worker_count("sqlite:///zone.sqlite")
    monkeypatch.setenv("SAFEZONE_WORKERS", "1")
    assert worker_count("sqlite:///zone.sqlite") == 1
    for bad in ("0", "-2", "two", "1.5"):
        monkeypatch.setenv("SAFEZONE_WORKERS", bad)
        with pytest.raises(ValueError, match="whole number"):
            worker_count(PG)
    monkeypatch.delenv("SAFEZONE_WORKERS")
    assert worker_count("sqlite:///zone.sqlite") == 1
    assert worker_count(PG) >= 1


def test_one_sweeper_per_database(tmp_path):
    """Two processes' leaderships on one database: exactly one holds; when it lets go (its
    process ended), the other takes over. SQLite zones run one process, which leads."""
    engines = [make_engine(fresh_database_url(tmp_path))]
    engines.append(make_engine(engines[0].url.render_as_string(hide_password=False)))
    first, second = (Leadership(e) for e in engines)
    try:
        if not first.shared:
            assert first.held() and second.held()
            return
        assert first.held()
        assert not second.held()
        assert first.held()  # still its own
        first.release()
        assert second.held()
        assert not first.held()
    finally:
        first.release()
        second.release()
        for engine in engines:
            engine.dispose()
