"""Which process owns a short-lived MinIO identity, so that a later process can tell an
orphan (its owner was killed: ``kill -9``, the OOM killer) from one still in use.

The tag is ``host:pid:start`` where ``start`` is the process's start time in clock ticks
since boot (``/proc/<pid>/stat``, field 22), so a reused pid is not mistaken for the owner.
Another host's tag is never judged: only the machine (or pod) that made it can tell.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

PREFIX = "owner="


def _start_ticks(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: count after the last ')'
    return stat.rpartition(")")[2].split()[19]


def owner_tag() -> str:
    """This process's tag, e.g. ``owner=node1:4242:1234567``."""
    pid = os.getpid()
    return f"{PREFIX}{socket.gethostname()}:{pid}:{_start_ticks(pid)}"


def owner_gone(text: str) -> bool:
    """True only when ``text`` carries a tag of this host whose process no longer runs."""
    _, found, tag = text.rpartition(PREFIX)
    host, _, rest = tag.partition(":")
    pid, _, start = rest.partition(":")
    if not found or host != socket.gethostname() or not pid.isdigit():
        return False
    return _start_ticks(int(pid)) != start.strip()
