"""The snapshot folder: its files, its manifest of SHA-256 hashes, and how it is written
(into a hidden temporary folder, every file and folder fsync'd, then renamed into place,
so a failure never leaves a folder that looks like a complete snapshot)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import SafezoneError

FORMAT = "safezone-backup/1"
MANIFEST = "manifest.json"
PINS = "pins.json"
ANCHORS = "anchors.json"
DATABASE_FILES = {"sqlite": "database.sqlite", "postgresql": "database.pgdump"}


class BackupError(SafezoneError):
    """A backup or restore that cannot go on; the message is one line."""

    status_code = 409


def file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as JSON, private (0600) and flushed to disk."""
    data = json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_folder(target: Path) -> Iterator[Path]:
    """A private temporary folder beside ``target``; renamed to ``target`` when the block
    ends without error (after fsync of every file and of both folders), removed otherwise.
    ``target`` may not exist yet, or be an empty folder (the rename replaces it)."""
    target = target.absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BackupError(f"{target} already exists and is not an empty folder: a snapshot "
                          "is never written over another (스냅샷 대상 폴더가 비어 있지 않음)")
    if not target.parent.is_dir():
        raise BackupError(f"{target.parent} is not a folder (대상 상위 폴더 없음)")
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        yield work
        for item in work.iterdir():
            _fsync(item)
        _fsync(work)
        os.rename(work, target)
        _fsync(target.parent)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def describe_files(folder: Path, names: list[str],
                   advance: Callable[[int], None] = lambda _n=1: None) -> dict[str, Any]:
    """{name: {sha256, bytes}} of the snapshot's files."""
    found = {}
    for name in names:
        path = folder / name
        found[name] = {"sha256": file_sha256(path), "bytes": path.stat().st_size}
        advance(1)
    return found


def read_manifest(folder: Path, expected_sha256: str = "") -> dict[str, Any]:
    """The manifest of a snapshot folder, after checking every file against it: same
    names, sizes and SHA-256 (and the manifest's own hash when the operator gives it).
    Raises ``BackupError`` naming the first problem; reads nothing else."""
    path = folder / MANIFEST
    if not folder.is_dir():
        raise BackupError(f"{folder} is not a snapshot folder (스냅샷 폴더 아님)")
    if not path.is_file():
        raise BackupError(f"{folder} has no {MANIFEST}: not a complete snapshot "
                          "(완전한 스냅샷 아님)")
    raw = path.read_bytes()
    if expected_sha256 and hashlib.sha256(raw).hexdigest() != expected_sha256.lower():
        raise BackupError(f"{MANIFEST} does not have the expected SHA-256: refused "
                          "(매니페스트 해시 불일치)")
    try:
        manifest = json.loads(raw)
        files: dict[str, dict[str, Any]] = manifest["files"]
        kind = manifest["database"]["kind"]
        if manifest.get("format") != FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}")
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"{MANIFEST} is not a {FORMAT} manifest ({exc}): refused "
                          "(매니페스트 형식 오류)") from None
    wanted = {DATABASE_FILES.get(kind, "?"), PINS, ANCHORS}
    present = {p.name for p in folder.iterdir()} - {MANIFEST}
    if set(files) != wanted or present != wanted:
        odd = sorted((present ^ wanted) | (set(files) ^ wanted))
        raise BackupError(f"snapshot files do not match the manifest ({', '.join(odd)}): "
                          "refused (스냅샷 파일 불일치)")
    for name, want in sorted(files.items()):
        have = folder / name
        if have.stat().st_size != want["bytes"] or file_sha256(have) != want["sha256"]:
            raise BackupError(f"{name} does not match its SHA-256 in the manifest: the "
                              "snapshot was changed or damaged; refused, nothing written "
                              "(스냅샷 변조 또는 손상)")
    return manifest


def read_json(folder: Path, name: str) -> Any:
    return json.loads((folder / name).read_text())
