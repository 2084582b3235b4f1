"""Child processes with log files, free ports and readiness waits."""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float = 60, process: ManagedProcess | None = None,
                  ok: tuple[int, ...] = (200,)) -> None:
    """Poll ``url`` until it answers with a status in ``ok``."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if process and process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited with {process.popen.returncode}; "
                               f"see {process.log_path}:\n{process.tail()}")
        try:
            status = httpx.get(url, timeout=2).status_code
            if status in ok:
                return
            last = f"HTTP {status}"
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(0.2)
    tail = f"\n{process.tail()}" if process else ""
    raise TimeoutError(f"{url} not ready after {timeout:.0f}s ({last}){tail}")


@dataclass
class ManagedProcess:
    name: str
    popen: subprocess.Popen
    log_path: Path

    @classmethod
    def start(cls, name: str, args: list[str], log_path: Path, env: dict[str, str] | None = None,
              cwd: str | Path | None = None, user: int | None = None) -> ManagedProcess:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        popen = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                 start_new_session=True, user=user,
                                 group=None if user is None else pwd.getpwuid(user).pw_gid,
                                 extra_groups=None if user is None else [])
        log.close()
        return cls(name, popen, log_path)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM the whole process group, then SIGKILL what is left."""
        if self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
        except ProcessLookupError:
            pass
