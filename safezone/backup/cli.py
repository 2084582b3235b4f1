"""The ``safezone backup`` / ``safezone restore`` commands' bodies: progress and times on
stderr, the result on stdout, any failure as one line and exit 1."""

from __future__ import annotations

import getpass
import time

import typer
from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError

from ..config import Settings
from ..errors import SafezoneError
from ..zone import Zone
from .restore import restore
from .steps import Steps
from .write import backup


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _zone() -> Zone:
    """The zone of the SAFEZONE_* settings, its schema left as it is."""
    return Zone.from_settings(Settings.from_env(), run_migrations=False)


def _first_line(exc: Exception) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return text.strip().splitlines()[0]


def run_backup(target: str) -> None:
    steps, start = Steps(Console(stderr=True)), time.perf_counter()
    try:
        written = backup(_zone(), target, steps)
    except (SafezoneError, SQLAlchemyError, OSError, ValueError) as exc:
        _fail(f"backup failed, no snapshot written: {_first_line(exc)}")
        return
    head, counts = written.manifest["audit_head"], written.manifest["counts"]
    typer.echo(f"snapshot {written.location}: audit head {head['seq']}, "
               f"{counts['anchors']} anchors, {counts['datasets_pinned']} pinned datasets, "
               f"{time.perf_counter() - start:.2f} s")
    typer.echo(f"manifest sha256 {written.manifest_sha256} (keep it apart from the snapshot; "
               "restore --manifest-sha256 checks it)")


def run_restore(snapshot: str, *, manifest_sha256: str, full: bool, by: str) -> None:
    steps, start = Steps(Console(stderr=True)), time.perf_counter()
    try:
        done = restore(_zone(), snapshot, steps, by=by or getpass.getuser(),
                       expected_sha256=manifest_sha256, full_pin_check=full)
    except (SafezoneError, SQLAlchemyError, OSError, ValueError) as exc:
        _fail(f"restore refused or failed: {_first_line(exc)}")
        return
    typer.echo(f"restored {snapshot} (made {done.manifest['created_at']}): "
               f"{done.anchors_written} anchors re-written, {done.anchors_present} present, "
               f"{done.manifest['counts']['datasets_pinned']} pinned datasets checked, "
               f"{time.perf_counter() - start:.2f} s")
    for name, problems in sorted(done.pin_problems.items()):
        typer.echo(f"{name}: withdrawn, pins do not hold: {'; '.join(problems[:5])}")
    for finding in done.findings:
        typer.echo(f"{finding.kind}: event {finding.seq}: {finding.detail}")
    if done.later_anchors:
        typer.echo(f"{done.later_anchors} anchor(s) in MinIO are newer than the snapshot: "
                   "the events after it are lost and audit verify names them; to go on "
                   "with a clean chain, restore with a new SAFEZONE_AUDIT_ANCHOR_PREFIX "
                   "(docs/operations.md)")
    if not done.ok:
        _fail(f"restored, but {len(done.pin_problems)} dataset(s) failed their pins and "
              f"the audit check found {len(done.findings)} problem(s)")
    typer.echo(f"audit chain intact: {done.events} events, {done.anchors_checked} anchors "
               "checked; every dataset's pins verify")
