"""Child processes with log files, free ports and readiness waits."""

from __future__ import annotations

import errno
import os
import pwd
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
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
    seen: dict[int, str] = {}
    for name, port in ports.items():
        if not 0 < port < 65536:
            raise PortInUse(f"port {port} ({name}) is not a port number (1-65535)")
        if port in seen:
            raise PortInUse(f"port {port} is given to both {seen[port]} and {name}")
        seen[port] = name
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
            try:
                probe.bind(("0.0.0.0", port))  # conflicts with a listener on any address
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise PortInUse(f"port {port} ({name}) cannot be used: {exc.strerror}"
                                    ) from None
                raise PortInUse(f"port {port} ({name}) is in use{_holder(port)}: stop that "
                                "program, or the zone already running there") from None


@contextmanager
def held_signals() -> Iterator[None]:
    """Hold SIGTERM, SIGINT and SIGHUP (delivered when the block ends): a second Ctrl-C
    must not abandon a clean-up. Never around a start: a child inherits the mask."""
    held = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    before = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


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


def stop_recorded_process(pid_file: Path, expected: str) -> None:
    """SIGTERM (then SIGKILL) the process ``pid_file`` names if it is still alive and its
    command line contains ``expected``: for children that a killed parent leaves behind in
    a session of their own (the hub's proxy). The file goes in any case: a stale pid would
    make the next hub signal whatever process has it."""
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except (OSError, ValueError):
        cmdline = ""  # no pid, or no such process
    if expected not in cmdline:  # gone, or the pid went to something else: not ours
        pid_file.unlink(missing_ok=True)
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if not _alive(pid):
            break
    pid_file.unlink(missing_ok=True)


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
    stopped: bool = False  # by stop(): a second stop (a failed wait, then the starter's
    # clean-up) signals nothing, not even a group id that may have gone to another

    @classmethod
    def start(cls, name: str, args: list[str], log_path: Path, env: dict[str, str] | None = None,
              cwd: str | Path | None = None, user: int | None = None,
              into: list[ManagedProcess] | None = None) -> ManagedProcess:
        """Start it in a session of its own; ``into``: the caller's list of what it must
        stop, which it joins as soon as it exists. (Signals are not held around the start:
        a child inherits the mask, and a service that cannot get SIGTERM cannot clean up.)"""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:  # the child keeps its own copy
            popen = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env,
                                     cwd=cwd, start_new_session=True, user=user,
                                     group=None if user is None else pwd.getpwuid(user).pw_gid,
                                     extra_groups=None if user is None else [])
            process = cls(name, popen, log_path)
            if into is not None:
                into.append(process)
        return process

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM the whole process group, then SIGKILL what is left (also once the leader
        exited: it is reaped only after, so its group id cannot have gone to another);
        then whatever it left behind in sessions of their own. Signals wait till done."""
        if self.stopped:
            return
        with held_signals():
            if self.popen.returncode is None:
                with suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.popen.pid, signal.SIGTERM)
                deadline = time.monotonic() + timeout
                while not self._exited() and time.monotonic() < deadline:
                    time.sleep(0.05)
            # what is left of the group; once the leader was reaped (by a poll()) its group
            # id stays taken while any member lives, so this reaches no other group
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
            for pid_file, command in self.leaves:
                stop_recorded_process(pid_file, command)
            self.stopped = True

    def _exited(self) -> bool:
        """Whether the leader exited, without reaping it."""
        try:
            found = os.waitid(os.P_PID, self.popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # reaped already (by Popen.poll)
            return True
        return found is not None
