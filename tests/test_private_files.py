"""Secrets are 0600 and folders 0700 from the first moment; a failed write keeps the old
file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from safezone.local.private_files import UnsafeFolder, private_dir, write_private

NOBODY = (65534, 65534)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o000, 0o022, 0o277], ids=["umask000", "umask022", "umask277"])
def umask(request):
    """The umask neither widens nor narrows the modes."""
    saved = os.umask(request.param)
    yield request.param
    os.umask(saved)


def test_file_is_0600_from_creation(tmp_path, monkeypatch, umask):
    opened: list[tuple[str, int, int]] = []
    written_modes: list[int] = []
    real_open, real_write = os.open, os.write

    def spy_open(path, flags, mode=0o777, *args, **kwargs):
        opened.append((str(path), flags, mode))
        return real_open(path, flags, mode, *args, **kwargs)

    def spy_write(fd, data):
        written_modes.append(stat.S_IMODE(os.fstat(fd).st_mode))  # as the first byte lands
        return real_write(fd, data)

    monkeypatch.setattr(os, "open", spy_open)
    monkeypatch.setattr(os, "write", spy_write)
    target = tmp_path / "secrets.json"
    write_private(target, b'{"k": "v"}')
    monkeypatch.undo()

    created = [(p, f, m) for p, f, m in opened if f & os.O_CREAT]
    assert len(created) == 1
    path, flags, created_mode = created[0]
    assert Path(path).parent == tmp_path  # same folder: os.replace is a rename
    assert flags & os.O_EXCL and flags & os.O_WRONLY
    assert created_mode == 0o600
    assert written_modes and set(written_modes) == {0o600}
    assert mode(target) == 0o600
    assert target.read_bytes() == b'{"k": "v"}'
    assert sorted(tmp_path.iterdir()) == [target]  # no temporary file left


def test_rewrite_replaces_content_and_narrows_an_old_wide_file(tmp_path):
    target = tmp_path / "users.json"
    target.write_text("old")
    target.chmod(0o644)
    write_private(target, b"new")
    assert target.read_bytes() == b"new" and mode(target) == 0o600


@pytest.mark.parametrize("failing", ["write", "fsync", "replace"])
def test_failure_mid_write_leaves_the_old_file_intact(tmp_path, monkeypatch, failing):
    target = tmp_path / "secrets.json"
    target.write_bytes(b"old secrets")
    target.chmod(0o600)
    real_write = os.write

    def half_then_fail(fd, data):
        real_write(fd, bytes(data[:3]))
        raise OSError(28, "No space left on device")

    def fail(*_args, **_kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, failing, half_then_fail if failing == "write" else fail)
    with pytest.raises(OSError):
        write_private(target, b"new secrets, much longer than the old ones")
    monkeypatch.undo()
    assert target.read_bytes() == b"old secrets"
    assert sorted(tmp_path.iterdir()) == [target]  # the partial temporary file is gone


def test_private_dir_creates_with_parents_and_fixes_mode(tmp_path, umask):
    fresh = private_dir(tmp_path / "a" / "b" / "state")
    assert fresh == tmp_path / "a" / "b" / "state"
    assert fresh.is_dir() and mode(fresh) == 0o700
    wide = tmp_path / "wide"
    wide.mkdir()
    wide.chmod(0o755)
    private_dir(wide)
    assert mode(wide) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give files to another user")
def test_owner_is_applied(tmp_path):
    tmp_path.chmod(0o755)
    folder = private_dir(tmp_path / "hub", owner=NOBODY)
    st = folder.stat()
    assert (st.st_uid, st.st_gid) == NOBODY and stat.S_IMODE(st.st_mode) == 0o700
    target = folder / "users.json"
    write_private(target, b"hashes", owner=NOBODY)
    st = target.stat()
    assert (st.st_uid, st.st_gid) == NOBODY and stat.S_IMODE(st.st_mode) == 0o600
    assert target.read_bytes() == b"hashes"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give files to another user")
def test_a_folder_someone_else_made_or_a_symlink_is_refused(tmp_path):
    """A state folder on a shared path (``--state-dir /tmp/zone``): another user who made
    ``hub/`` first could write the proxy's pid file or swap secrets, so it is refused, and
    its owner and mode are left as they were; the same for a symlink."""
    planted = tmp_path / "hub"
    planted.mkdir()
    planted.chmod(0o777)
    os.chown(planted, *NOBODY)
    with pytest.raises(UnsafeFolder, match="belongs to uid"):
        private_dir(planted)
    st = planted.lstat()
    assert (st.st_uid, st.st_gid) == NOBODY and stat.S_IMODE(st.st_mode) == 0o777
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UnsafeFolder, match="symlink"):
        private_dir(tmp_path / "link")
    assert private_dir(planted, owner=NOBODY) == planted  # the service's own folder
