"""The OCI bundle runc starts a notebook server from: a read-only view of the host's
runtime, the project's workspace, private /tmp and /dev/shm, no capabilities.

Nothing of the zone's state is mounted: the root is an empty skeleton holding only mount
points, so a path not listed here does not exist inside.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

from ..config import REPO_ROOT
from .limits import Limits
from .users import UnixUser

NOTEBOOK_CONFIG = REPO_ROOT / "images" / "notebook" / "jupyter"
# Host /etc entries a Python notebook needs; the rest of /etc (and its user list) stays out.
ETC_SHARED = ("ld.so.cache", "ssl", "fonts", "localtime", "mime.types", "nsswitch.conf")
HOSTNAME = "safezone"
PORT = 8888  # each sandbox has its own network namespace, so every server uses this port


def runtime_paths() -> list[Path]:
    """Host folders bound read-only at the same path: system, Python, the notebook code."""
    paths = [Path("/usr"), Path(sys.base_prefix).resolve(), Path(sys.prefix),
             REPO_ROOT / "safezone", NOTEBOOK_CONFIG]
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / top
        if path.is_dir() and not path.is_symlink():  # not a merged-/usr system
            paths.append(path)
    return sorted(set(paths))


def prepare_rootfs(rootfs: Path) -> Path:
    """An empty skeleton (mount points and the merged-/usr links), shared by sandboxes."""
    rootfs.mkdir(parents=True, exist_ok=True)
    rootfs.chmod(0o755)
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host, link = Path("/") / top, rootfs / top
        if host.is_symlink() and not link.is_symlink():
            link.symlink_to(os.readlink(host))
    for path in [*runtime_paths(), Path("/workspace"), Path("/tmp"), Path("/proc"),
                 Path("/dev"), Path("/etc")]:
        (rootfs / path.relative_to("/")).mkdir(parents=True, exist_ok=True)
    (rootfs / "tmp").chmod(0o1777)  # runc gives a tmpfs its mount point's mode
    for name in ("passwd", "group", "hosts"):
        (rootfs / "etc" / name).touch()
    for name in ETC_SHARED:
        host = Path("/etc") / name
        if host.is_dir():
            (rootfs / "etc" / name).mkdir(exist_ok=True)
        elif host.exists():
            (rootfs / "etc" / name).touch()
    return rootfs


@dataclass(frozen=True)
class SandboxSpec:
    container_id: str
    user: UnixUser
    workspace: Path
    netns: str
    limits: Limits
    args: list[str]
    env: dict[str, str]
    seccomp: dict | None = None  # policies/sandbox.yaml's "seccomp" entry


ARCHITECTURES = {"x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                 "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]}
EPERM, ENOSYS = 1, 38


def seccomp_profile(policy: dict) -> dict:
    """The OCI seccomp filter from ``policies/sandbox.yaml``: allow all but the listed
    calls, on every ABI the machine runs (a 32-bit call must not slip past)."""
    rules = [{"names": policy["denied"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM},
             {"names": policy["enosys"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS}]
    rules += [{"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM,
               "args": [{"index": 0, "value": flag, "valueTwo": flag,
                         "op": "SCMP_CMP_MASKED_EQ"}]}
              for flag in policy["clone_namespace_flags"]]
    return {"defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ARCHITECTURES.get(platform.machine(), []), "syscalls": rules}


def _bind(source: Path, destination: Path, writable: bool = False) -> dict:
    options = ["rbind", "nosuid", "nodev", "rw" if writable else "ro"]
    return {"destination": str(destination), "type": "bind", "source": str(source),
            "options": options}


def write_bundle(bundle: Path, rootfs: Path, spec: SandboxSpec) -> Path:
    """Write ``config.json`` (mode 0600: it holds the session's keys) and the sandbox's
    own /etc files into ``bundle`` (mode 0700)."""
    bundle.mkdir(parents=True, exist_ok=True, mode=0o700)
    bundle.chmod(0o700)
    etc = {
        "passwd": f"root:x:0:0::/nonexistent:/usr/sbin/nologin\n"
                  f"{spec.user.name}:x:{spec.user.uid}:{spec.user.gid}::/workspace:/bin/sh\n",
        "group": f"root:x:0:\n{spec.user.name}:x:{spec.user.gid}:\n",
        "hosts": f"127.0.0.1 localhost\n127.0.1.1 {HOSTNAME}\n",
    }
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=262144k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "nodev", "mode=1777", "size=1048576k"]},
        *[_bind(path, path) for path in runtime_paths()],
        _bind(spec.workspace, Path("/workspace"), writable=True),
    ]
    for name, text in etc.items():
        (bundle / name).write_text(text)
        (bundle / name).chmod(0o644)
        mounts.append(_bind(bundle / name, Path("/etc") / name))
    mounts += [_bind(Path("/etc") / name, Path("/etc") / name)
               for name in ETC_SHARED if (Path("/etc") / name).exists()]
    period = 100_000
    swap = Path("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
    memory = {"limit": spec.limits.memory_bytes, **({"swap": spec.limits.memory_bytes}
                                                     if swap else {})}
    config = {
        "ociVersion": "1.0.2",
        "root": {"path": str(rootfs), "readonly": True},
        "hostname": HOSTNAME,
        "process": {
            "terminal": False,
            "user": {"uid": spec.user.uid, "gid": spec.user.gid, "additionalGids": []},
            "args": spec.args,
            "env": [f"{k}={v}" for k, v in sorted(spec.env.items())],
            "cwd": "/workspace",
            "capabilities": {"bounding": [], "effective": [], "permitted": [],
                             "inheritable": [], "ambient": []},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 4096},
                        {"type": "RLIMIT_CORE", "hard": 0, "soft": 0}],
            "noNewPrivileges": True,
        },
        "mounts": mounts,
        "linux": {
            "cgroupsPath": f"/safezone/{spec.container_id}",
            "resources": {
                "devices": [{"allow": False, "access": "rwm"}],
                "memory": memory,
                "cpu": {"period": period, "quota": int(spec.limits.cpus * period)},
                "pids": {"limit": spec.limits.processes},
            },
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"},
                           {"type": "mount"}, {"type": "cgroup"},
                           {"type": "network", "path": f"/run/netns/{spec.netns}"}],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                            "/proc/sched_debug", "/proc/scsi", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                              "/proc/sysrq-trigger"],
        },
    }
    if spec.seccomp:
        config["linux"]["seccomp"] = seccomp_profile(spec.seccomp)
    path = bundle / "config.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(config, out)
    return path
