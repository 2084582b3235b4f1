"""Child processes with log files, free ports and readiness waits."""

from __future__ import annotations

import os
import pwd
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


class PortInUse(RuntimeError):
    """A port the zone listens on is taken; the message names it and, if known, its holder."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_free_ports(ports: dict[str, int]) -> None:
    """Refuse to start anything while another program listens on one of ``ports`` (name →
    port): a zone half up behind someone else's proxy is worse than a clear refusal."""
    for name, port in ports.items():
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
            try:
                probe.bind(("0.0.0.0", port))  # conflicts with a listener on any address
            except OSError:
                raise PortInUse(f"port {port} ({name}) is in use{_holder(port)}: stop that "
                                "program, or the zone already running there") from None


def _holder(port: int) -> str:
    """`` by <program> (pid N)`` when ``ss`` can tell (it names other users' sockets to
    root only), else nothing."""
    try:
        out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True,
                             text=True, timeout=5, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    found = re.search(r'users:\(\("([^"]+)",pid=(\d+)', out)
    return f" by {found[1]} (pid {found[2]})" if found else ""


def stop_recorded_process(pid_file: Path, expected: str) -> bool:
    """SIGTERM (then SIGKILL) the process ``pid_file`` names if it is still alive and its
    command line contains ``expected``; True if one was stopped. For children that a
    killed parent leaves behind in a session of their own (the hub's proxy)."""
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except (OSError, ValueError):
        return False
    if expected not in cmdline:
        return False  # the pid was reused by something else: not ours to stop
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if not _alive(pid):
            break
    return True


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for_http(url: str, timeout: float = 60, process: ManagedProcess | None = None,
                  ok: tuple[int, ...] = (200,)) -> None:
    """Poll ``url`` until it answers with a status in ``ok``. If the wait ends any other
    way (``process`` exited, the time ran out, a stop was asked for), ``process`` is
    stopped with what it left behind: its starter has not yet taken it into its care."""
    try:
        _poll_http(url, timeout, process, ok)
    except BaseException:
        if process:
            process.stop()
        raise


def _poll_http(url: str, timeout: float, process: ManagedProcess | None,
               ok: tuple[int, ...]) -> None:
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
    # (pid file, command) of children it starts in sessions of their own, which outlive it
    # when it is killed; stopped with it
    leaves: tuple[tuple[Path, str], ...] = ()

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
        """SIGTERM the whole process group, then SIGKILL what is left; then whatever it
        left behind in sessions of their own."""
        try:
            if self.popen.poll() is None:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
        except ProcessLookupError:
            pass
        for pid_file, command in self.leaves:
            stop_recorded_process(pid_file, command)
