"""The long schemathesis run: tests/test_fuzz_api.py with many examples per operation and
identity, then cases, 5xx responses and the failing operations per identity.

    .venv/bin/python -m benchmarks.fuzz_api [--examples 100] [--identity admin ...]
    make fuzz                 # the same with its defaults

The CI suite runs the same test with 3 examples; this one runs the real stack the test
builds (its own MinIO, database, hub and proxy), derandomized as there, so a failure found
here is found again with the same --examples. pytest prints each failing case with a curl
command that reproduces it. Exit status: pytest's (non-zero when any identity got a 5xx).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
IDENTITIES = ("admin", "reviewer", "steward", "alice", "bob", "spawner", "operator",
              "anonymous")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100,
                        help="examples per operation, phase and identity (default 100)")
    parser.add_argument("--identity", action="append", choices=IDENTITIES,
                        help="fuzz only as this identity (repeatable; default: all)")
    args = parser.parse_args()
    chosen = args.identity or list(IDENTITIES)
    console = Console()
    with tempfile.TemporaryDirectory(prefix="safezone-fuzz-") as tmp:
        report = Path(tmp) / "report.json"
        env = {**os.environ, "SAFEZONE_FUZZ_EXAMPLES": str(args.examples),
               "SAFEZONE_FUZZ_REPORT": str(report), "SAFEZONE_FUZZ_LONG": "1"}
        selected = " or ".join(f"as_{name}" for name in chosen)
        command = [sys.executable, "-m", "pytest", "tests/test_fuzz_api.py", "-q",
                   "-p", "no:cacheprovider", "-k", selected, f"--basetemp={tmp}/pt"]
        started = time.monotonic()
        code = subprocess.run(command, cwd=ROOT, env=env, check=False).returncode
        took = time.monotonic() - started
        if not report.exists():
            console.print(f"[red]no report: the run ended before fuzzing (exit {code})")
            sys.exit(code or 1)
        rows = json.loads(report.read_text())["identities"]
    table = Table(title=f"schemathesis, {args.examples} examples per operation "
                        f"({took:.0f} s)")
    for column in ("identity", "cases", "5xx responses", "failing operations"):
        table.add_column(column, justify="right" if column in {"cases",
                                                               "5xx responses"} else "left")
    for name in chosen:
        row = rows.get(name, {"cases": 0, "server_errors": 0, "failing_operations": []})
        table.add_row(name, str(row["cases"]), str(row["server_errors"]),
                      ", ".join(row["failing_operations"]) or "-")
    total = sum(r["cases"] for r in rows.values())
    errors = sum(r["server_errors"] for r in rows.values())
    table.add_row("all", str(total), str(errors), "")
    console.print(table)
    sys.exit(code)


if __name__ == "__main__":
    main()
