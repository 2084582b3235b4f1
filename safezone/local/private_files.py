"""Secret files and folders that are private (0600 / 0700) from the first byte."""

from __future__ import annotations

import os
import pwd
import secrets
import stat
from pathlib import Path


def write_private(path: Path, data: bytes, owner: tuple[int, int] | None = None) -> None:
    """Replace ``path`` with ``data`` atomically; mode 0600 (and ``owner``) from creation.

    The bytes go to a new temporary file in the same folder, created 0600 with O_EXCL,
    owned and synced before ``os.replace`` puts it in place: a reader sees the old file
    or the new one, never a partial one, and nobody else can read either at any moment.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # exactly 0600 whatever the umask took away
            if owner is not None:
                os.fchown(fd, *owner)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _sync_dir(path.parent)


class UnsafeFolder(RuntimeError):
    """A private folder exists but is a symlink or belongs to someone else."""


def private_dir(path: Path, owner: tuple[int, int] | None = None) -> Path:
    """Create ``path`` (and its parents) or fix it: mode 0700, owned by ``owner``. An
    existing one that is a symlink, or owned by neither this user nor ``owner``, is
    refused: whoever made it could replace what goes in it (a pid file, a secret)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    found = path.lstat()
    trusted = {os.geteuid(), *(owner[:1] if owner else ())}
    if stat.S_ISLNK(found.st_mode) or not (found.st_uid in trusted
                                           or _service_user(found.st_uid)):
        raise UnsafeFolder(f"{path} is a symlink or belongs to uid {found.st_uid}, not to "
                           "this user: remove it, or choose another --state-dir")
    if owner is not None:
        os.chown(path, *owner)
    path.chmod(0o700)
    return path


def _service_user(uid: int) -> bool:
    """One of the zone's own service users (``safezone-…``, made by the launcher)."""
    try:
        return pwd.getpwuid(uid).pw_name.startswith("safezone-")
    except KeyError:
        return False


def _sync_dir(folder: Path) -> None:
    """Make the rename durable (best effort: some filesystems refuse a folder fsync)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
