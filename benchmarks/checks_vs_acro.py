"""Disclosure checks on a 1 M-row table: Safezone vs ACRO vs a plain pyarrow read.

The same CSV (a frequency table of 1 M cells: five key columns and a count) is
  * read with pyarrow (the floor: nothing can check a file faster than it can be read),
  * checked by Safezone's server-side checks (frequency threshold, zeros, record-level
    shape, identifier scan of every text cell),
  * checked by ACRO (PyPI ``acro``) the way ACRO checks: a table is built through its
    ``crosstab`` over all 1 M rows (sum of counts by region × age band × sex) with its
    threshold, dominance and p% masks. ACRO cannot check a finished table file, and its
    ``pivot_table`` over all five keys (≈1 M cells) did not finish in 13 minutes here.
Each runs in this process, best of ``--repeat`` untraced runs; peak memory (Python heap via
tracemalloc plus Arrow's pool) from one more traced run; printed with the ratios.

    .cache/bench-venv/bin/python benchmarks/checks_vs_acro.py      # venv with acro installed
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.csv as pacsv
from measuring import measure
from rich.console import Console
from rich.progress import track
from rich.table import Table

from safezone.checks.findings import load_rules
from safezone.checks.runner import FileInput, check_file

SIDO = ["서울", "부산", "대구", "인천", "광주", "대전", "울산", "세종", "경기", "강원", "충북",
        "충남", "전북", "전남", "경북", "경남", "제주"]


def make_table(rows: int, path: Path, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "sido": rng.choice(SIDO, rows),
        "district": rng.integers(1, 250, rows).astype(str),
        "age_band": (rng.integers(0, 10, rows) * 10).astype(str),
        "sex": rng.choice(["M", "F"], rows),
        "diagnosis": rng.choice([f"D{i:02d}" for i in range(60)], rows),
        "count": rng.integers(0, 400, rows),
    })
    frame.to_csv(path, index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "table.csv"
        console.print(f"writing a {args.rows:,}-row table …")
        make_table(args.rows, path)
        data = path.read_bytes()
        console.print(f"{len(data) / 1e6:.1f} MB CSV")
        rules = load_rules()
        item = FileInput("table.csv", data, "-")

        def plain() -> object:
            return pacsv.read_csv(path)

        def safezone() -> object:
            return check_file(item, rules)

        candidates: dict[str, Callable[[], object]] = {"pyarrow read": plain,
                                                       "safezone checks": safezone}
        try:
            from acro import ACRO

            acro = ACRO(suppress=False)

            def acro_check() -> object:
                frame = pd.read_csv(path)
                with contextlib.redirect_stdout(io.StringIO()):  # ACRO prints every table
                    return acro.crosstab([frame.sido, frame.age_band], frame.sex,
                                         values=frame["count"], aggfunc="sum")

            candidates["acro crosstab"] = acro_check
        except ImportError:
            console.print("[yellow]acro is not installed in this environment: "
                          "python -m venv .cache/bench-venv && .cache/bench-venv/bin/pip "
                          "install acro -e .[/yellow]")
        results = {name: measure(fn, args.repeat)[:2]
                   for name, fn in track(candidates.items(), description="measuring")}
        kind, findings = check_file(item, rules)
        console.print(f"safezone found {len(findings)} findings (capped per rule) in {kind}")
    table = Table(title=f"Checks on a {args.rows:,}-row table (best of {args.repeat})")
    for column in ("candidate", "seconds", "peak MB", "time vs safezone", "memory vs safezone"):
        table.add_column(column, justify="right")
    ours_t, ours_m = results["safezone checks"]
    for name, (seconds, peak) in results.items():
        table.add_row(name, f"{seconds:.3f}", f"{peak / 1e6:.0f}", f"{seconds / ours_t:.2f}×",
                      f"{peak / ours_m:.2f}×")
    console.print(table)
    plain_t = results["pyarrow read"][0]
    console.print(f"safezone / plain read: {ours_t / plain_t:.2f}× (target ≤ 2×)")
    if "acro crosstab" in results:
        console.print(f"acro / safezone: {results['acro crosstab'][0] / ours_t:.1f}× "
                      "(target ≥ 10×)")


if __name__ == "__main__":
    main()
