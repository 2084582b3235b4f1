"""``safezone records …``: verify, review (monthly report), read and apply retention to
the access records through the control plane's REST API (an administrator's token)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

records_app = typer.Typer(help="Access records (접속기록).", no_args_is_help=True)


@records_app.command("verify")
def records_verify() -> None:
    """Check the records' chain, base and checkpoints; exit 1 naming each problem."""
    from ..cli import CliError, call

    result = call("GET", "/api/records/verify")
    if result["intact"]:
        typer.echo(f"access records intact / 접속기록 무결: {result['records']} records, "
                   f"{result['checkpoints']} checkpoints checked (base {result['base_seq']}, "
                   f"head {result['head_seq']})")
        return
    for finding in result["findings"]:
        typer.echo(f"{finding['kind']}: record {finding['seq']}: {finding['detail']}")
    raise CliError(f"access records broken (접속기록 변조 의심): "
                   f"{len(result['findings'])} finding(s)")


@records_app.command("report")
def records_report(
        month: str = typer.Option(..., help="YYYY-MM on the zone's clock, e.g. 2026-11"),
        format: str = typer.Option("csv", "--format", help="csv or json"),
        output: str = typer.Option("", "--output", "-o", help="file (default: stdout)"),
        mark_reviewed: bool = typer.Option(
            False, "--mark-reviewed", help="then record that you reviewed this report "
            "(through its newest record)"),
) -> None:
    """The monthly review (월간 점검): every record of the month with its flags (CSV or
    JSON) and a readable summary on stderr. Reading writes nothing; --mark-reviewed
    records the review of exactly the records shown."""
    import json

    from ..cli import CliError, call
    from .report import as_csv

    if format not in ("csv", "json"):
        raise CliError("--format must be csv or json")
    result = call("GET", f"/api/records/report?month={month}&format=json")
    data = as_csv(result) if format == "csv" else json.dumps(result, indent=2,
                                                             ensure_ascii=False)
    if output:
        Path(output).write_text(data, encoding="utf-8")
    else:
        sys.stdout.write(data if data.endswith("\n") else data + "\n")
    typer.echo(result["summary"], err=True)
    if mark_reviewed:
        done = call("POST", "/api/records/reviews",
                    {"month": result["month"], "through": result["through"]})
        typer.echo(f"reviewed / 점검 완료: {done['month']} through record {done['through']} "
                   f"({done['records']} records)", err=True)


@records_app.command("list")
def records_list(account: str = "", action: str = "", since: str = "", until: str = "",
                 limit: int = 100) -> None:
    """The newest records, filtered (since/until: ISO days or times, UTC)."""
    from urllib.parse import urlencode

    from ..cli import call, show

    query = urlencode({k: v for k, v in {"account": account, "action": action,
                                         "since": since, "until": until,
                                         "limit": limit}.items() if v})
    show(call("GET", f"/api/records?{query}"))


@records_app.command("sweep")
def records_sweep() -> None:
    """Delete the records older than the policy's retention period (policies/records.yaml)
    now; the control plane also does it once a day."""
    from ..cli import call, show

    show(call("POST", "/api/records/sweep"))
