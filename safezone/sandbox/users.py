"""One unprivileged Unix user per researcher, created once and reused (as TLJH does)."""

from __future__ import annotations

import hashlib
import pwd
import re
import subprocess
from dataclasses import dataclass

PREFIX = "sz-"
MAX_NAME = 32  # useradd's limit


@dataclass(frozen=True)
class UnixUser:
    name: str
    uid: int
    gid: int


def unix_name(hub_name: str) -> str:
    """A stable, safe Unix name for a hub user: ``sz-<name>``, hashed when it had to change.

    Two hub names never map to one Unix name: any name that is not already safe carries
    a hash of the original.
    """
    safe = re.sub(r"[^a-z0-9_-]", "-", hub_name.lower())
    candidate = f"{PREFIX}{safe}"
    if safe == hub_name and len(candidate) <= MAX_NAME:
        return candidate
    digest = hashlib.sha256(hub_name.encode()).hexdigest()[:8]
    return f"{candidate[:MAX_NAME - 9]}-{digest}"


def ensure_user(hub_name: str) -> UnixUser:
    """The researcher's Unix user, created (no home, no login shell) on first use."""
    name = unix_name(hub_name)
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        entry = None
    if entry is None:
        done = subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home",
             "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
             "--comment", f"Safezone researcher {hub_name}", name],
            capture_output=True, text=True, check=False)
        if done.returncode not in (0, 9):  # 9: created meanwhile
            raise RuntimeError(f"useradd {name}: {done.stderr.strip()}")
        entry = pwd.getpwnam(name)
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise RuntimeError(f"Unix user {name} has uid/gid 0: refusing to run a sandbox as it")
    return UnixUser(name, entry.pw_uid, entry.pw_gid)
