"""k-anonymity and a full de-identification recipe on 10 M rows: Safezone vs pycanon vs anjana.

Data: a synthetic patient table (NumPy, seeded) written once to .cache/bench/deid-<rows>.csv:
a direct identifier (patient_id), 8 quasi-identifiers in raw form (birth_year, sex, address
"시도 구NN", visit_date, income_manwon, height_cm, household_size, insurance) and diagnosis.
Beside it, deid-<rows>-generalised.csv holds the same rows after the recipe's generalisation
(computed in NumPy here, not by Safezone): 10-year age bands, 17 시도, 12 months, 3 income
and 3 height ranges, household topcoded at 4, sex and insurance kept. Marginals are skewed,
so at 10 M rows ~266 k classes exist, most of at least k=5 rows, and ~2 % of rows sit in
smaller ones (at 1 M rows 18 %, at 300 k 40 %: the same space, fewer rows).

1. k verification of the generalised CSV, file to answer:
  * Safezone ``engine.min_class_size`` over ``engine.csv_batches`` (Arrow, streamed in
    blocks, partial class tables merged as it goes: memory bounded by the number of classes);
  * pycanon ``k_anonymity(df, qi)`` after ``pd.read_csv`` of the whole file; the read is
    inside pycanon's time and shown in its own column. pycanon takes ``groupby(qi).groups``,
    which turns the rows into a MultiIndex of one Python tuple per row, factorises the
    tuples and builds one Index per class, then loops over the classes in Python to take
    ``len``: O(rows) Python objects plus O(classes) interpreter work, the whole table in
    memory;
  * pyarrow ``read_csv`` of the file, the floor.
  The answers are asserted equal, and equal to pandas' ``value_counts`` of the same file.
2. The full recipe, raw CSV to Parquet: generalise the 8 quasi-identifiers, remove the
   identifier, suppress the classes under k=5, write the output.
  * Safezone ``engine.deidentify`` (two streamed passes, Parquet out), once with the
    identifier deleted (what anjana does: it overwrites identifiers with "*") and once
    pseudonymised (keyed HMAC, the recipe's usual choice; per value in Python);
  * anjana ``k_anonymity(df, ident, qi, k, supp_level, hierarchies)`` after ``pd.read_csv``,
    then ``to_parquet``. Hierarchies are the recipe's: per quasi-identifier level 0 lists
    every raw value and level 1 its generalisation (kept ones have level 0 only);
    ``supp_level`` is exactly the share of rows the recipe suppresses, so that anjana's
    greedy search (generalise the quasi-identifier with most distinct values one level,
    recount, until the small classes fit under ``supp_level``) ends where the recipe does.
    Each step recomputes the classes through pycanon twice (~22 class computations here, the
    first ones on near-unique raw rows) and applies a level with a Python loop that runs
    ``np.where`` over the hierarchy for every row: O(steps × rows) Python work. Measured
    here (untraced): 44 s at 100 k rows, 114 s at 300 k, 410 s and 1.6 GB RSS at 1 M;
    linearly, 10 M would take over an hour (not measured). So anjana runs on
    ``--anjana-rows`` (default 300 k) beside Safezone on the same rows, never on ``--rows``,
    and its lines say so. Both outputs are checked to hold the same rows in the same
    classes, and pycanon's k of each is asserted.

Each candidate runs in this process: ``--repeat`` untraced runs (best time kept), then one
more for the peak memory (Python heap via tracemalloc, which sees NumPy and pandas buffers,
plus Arrow's pool, as in checks_vs_acro.py). Times are not taken under tracemalloc: it slows
pandas' per-object work about threefold and Arrow's vectorised work hardly at all, so traced
times would flatter Safezone.

    .cache/bench-venv/bin/pip install --only-binary=:all: pycanon anjana   # once
    .cache/bench-venv/bin/python benchmarks/deid_vs_pycanon.py            # 10 M rows
    .cache/bench-venv/bin/python benchmarks/deid_vs_pycanon.py --rows 1000000 --repeat 3
    .cache/bench-venv/bin/python benchmarks/deid_vs_pycanon.py --anjana-rows 100000 300000
    .cache/bench-venv/bin/python benchmarks/deid_vs_pycanon.py --anjana-rows   # no anjana

Measured here (engine of commit 7f59c80), 10 M rows, best of 1, on
2 cores (a test run shared them during anjana's traced run only):
  k, CSV          safezone 4.7 s, 61 MB; pycanon 26.3 s with read_csv, 2,721 MB: 5.7× the
                  time (4.0× without its read), 45× the memory; pyarrow read alone 3.0 s.
  k, Parquet      safezone 2.3 s, 99 MB; pycanon 26.0 s with read_parquet, 3,233 MB:
                  11.3× the time, 33× the memory. This is the check `deid verify` runs.
  full recipe     safezone 38 s, 62 MB with the identifier deleted; 99 s, 66 MB
                  pseudonymised (HMAC per value in Python). At 300 k rows: safezone 0.88 s,
                  28 MB; anjana 107 s, 405 MB: 122× the time, 14× the memory, same output.
  Earlier engine (one group-by and one semi-join per 1 MiB block): k on CSV 2.6-3.7×,
  full recipe 62 s at 10 M.
A full run takes about 16 minutes and at most 4.8 GB resident (pycanon's traced runs).
The ≥ 10× target holds for verifying the stored Parquet and for the full recipe (anjana),
not for k on a CSV file, where reading the CSV alone is 3.0 of Safezone's 4.7 s.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from measuring import measure
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from safezone.deid import engine
from safezone.deid.recipe import Recipe, load_recipe

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "bench"
CHUNK = 1_000_000  # rows generated and written at a time
K = 5
REFERENCE_YEAR = 2024
SIDO = ["서울", "부산", "대구", "인천", "광주", "대전", "울산", "세종", "경기", "강원", "충북",
        "충남", "전북", "전남", "경북", "경남", "제주"]
POPULATION = [9.4, 3.3, 2.4, 3.0, 1.4, 1.4, 1.1, 0.39, 13.6, 1.5, 1.6, 2.1, 1.75, 1.8, 2.6, 3.3,
              0.67]  # millions, 2024: where the patients live
DISTRICTS = [25, 16, 8, 10, 5, 5, 5, 1, 31, 18, 11, 15, 14, 22, 22, 18, 2]  # 시군구 per 시도
INSURANCE = ["직장", "지역", "의료급여"]
DIAGNOSES = [f"{letter}{number:02d}" for letter in "EIJKM" for number in range(10, 18)]

RECIPE = f"""\
version: 1
k: {K}
columns:
  patient_id: {{technique: pseudonymise}}
  birth_year: {{technique: generalise, to: age_band, reference_year: {REFERENCE_YEAR}, width: 10,
               role: quasi_identifier}}
  sex: {{technique: keep, role: quasi_identifier}}
  address: {{technique: generalise, to: sido, role: quasi_identifier}}
  visit_date: {{technique: generalise, to: month, role: quasi_identifier}}
  income_manwon: {{technique: generalise, to: range, width: 5000, role: quasi_identifier}}
  height_cm: {{technique: generalise, to: range, width: 20, role: quasi_identifier}}
  household_size: {{technique: topcode, at: 4, role: quasi_identifier}}
  insurance: {{technique: keep, role: quasi_identifier}}
  diagnosis: {{technique: keep}}
"""
QIS = ["birth_year", "sex", "address", "visit_date", "income_manwon", "height_cm",
       "household_size", "insurance"]


def _bands(low: np.ndarray, width: int) -> np.ndarray:
    return np.array([f"{v}-{v + width - 1}" for v in low], dtype=object)


def generalise(column: str, values: np.ndarray) -> np.ndarray | None:
    """The recipe's generalisation of ``column``, in NumPy (independent of Safezone's
    pyarrow code); None for the quasi-identifiers the recipe keeps as they are."""
    if column == "birth_year":
        return _bands((REFERENCE_YEAR - values.astype(int)) // 10 * 10, 10)
    if column == "address":
        return np.array([v.split(" ")[0] for v in values], dtype=object)
    if column == "visit_date":
        return np.array([v[:7] for v in values], dtype=object)
    if column == "income_manwon":
        return _bands(values.astype(int) // 5000 * 5000, 5000)
    if column == "height_cm":
        return _bands(values.astype(int) // 20 * 20, 20)
    if column == "household_size":
        return np.minimum(values, 4)
    return None


def domains() -> dict[str, np.ndarray]:
    """Every raw value each quasi-identifier can take (the generator draws indices into
    these; anjana's hierarchies list them)."""
    days = np.datetime64(f"{REFERENCE_YEAR}-01-01") + np.arange(366)
    return {
        "birth_year": np.arange(1940, 2010),
        "sex": np.array(["F", "M"], dtype=object),
        "address": np.array([f"{s} 구{d + 1:02d}" for s, n in zip(SIDO, DISTRICTS, strict=True)
                             for d in range(n)], dtype=object),
        "visit_date": days.astype(str).astype(object),
        "income_manwon": np.arange(0, 15000, 10),
        "height_cm": np.arange(140, 200),
        "household_size": np.arange(1, 9),
        "insurance": np.array(INSURANCE, dtype=object),
    }


def draw(rng: np.random.Generator, rows: int) -> dict[str, np.ndarray]:
    """Indices into ``domains()``, skewed so that rare combinations exist at any size."""
    population = np.array(POPULATION) / sum(POPULATION)
    sido = rng.choice(len(SIDO), rows, p=population)
    first = np.cumsum([0, *DISTRICTS[:-1]])
    district = (rng.random(rows) * np.array(DISTRICTS)[sido]).astype(int)
    year = np.clip(np.rint(rng.normal(1975, 16, rows)), 1940, 2009).astype(int)
    income = np.clip(np.rint(rng.lognormal(np.log(3500), 0.6, rows) / 10), 0, 1499)
    height = np.clip(np.rint(rng.normal(167, 9, rows)), 140, 199).astype(int)
    return {
        "birth_year": year - 1940,
        "sex": rng.integers(0, 2, rows),
        "address": first[sido] + district,
        "visit_date": rng.integers(0, 366, rows),
        "income_manwon": income.astype(int),
        "height_cm": height - 140,
        "household_size": rng.choice(8, rows, p=[.30, .28, .20, .14, .05, .02, .007, .003]),
        "insurance": rng.choice(3, rows, p=[.70, .26, .04]),
    }


def make_data(rows: int, console: Console, seed: int = 7) -> tuple[Path, Path]:
    """``deid-<rows>.csv`` (raw: identifier, 8 quasi-identifiers, diagnosis) and
    ``deid-<rows>-generalised.csv`` (the same rows with the recipe's generalisation applied,
    no identifier), written once under .cache/bench and reused."""
    raw_path, gen_path = CACHE / f"deid-{rows}.csv", CACHE / f"deid-{rows}-generalised.csv"
    if raw_path.exists() and gen_path.exists():
        return raw_path, gen_path
    CACHE.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    values = domains()
    raw_labels = {c: pa.array(v) for c, v in values.items()}
    gen_labels = {c: pa.array(generalise(c, v)) if generalise(c, v) is not None
                  else raw_labels[c] for c, v in values.items()}
    diagnoses = pa.array(DIAGNOSES)
    options = pacsv.WriteOptions(quoting_style="none")
    raw_tmp, gen_tmp = raw_path.with_suffix(".tmp"), gen_path.with_suffix(".tmp")
    raw_writer = gen_writer = None
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(f"writing {rows:,} rows", total=rows)
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            codes = draw(rng, n)
            ids = pa.array(np.arange(start + 1, start + n + 1))
            patient = pc.binary_join_element_wise(
                "P", pc.utf8_lpad(ids.cast(pa.string()), 9, "0"), "")
            diagnosis = diagnoses.take(pa.array(rng.integers(0, len(DIAGNOSES), n)))
            raw = pa.table({"patient_id": patient,
                            **{c: raw_labels[c].take(pa.array(codes[c])) for c in QIS},
                            "diagnosis": diagnosis})
            gen = pa.table({**{c: gen_labels[c].take(pa.array(codes[c])) for c in QIS},
                            "diagnosis": diagnosis})
            if raw_writer is None:
                raw_writer = pacsv.CSVWriter(raw_tmp, raw.schema, write_options=options)
                gen_writer = pacsv.CSVWriter(gen_tmp, gen.schema, write_options=options)
            raw_writer.write_table(raw)
            gen_writer.write_table(gen)
            bar.advance(task, n)
    raw_writer.close()
    gen_writer.close()
    os.replace(raw_tmp, raw_path)
    os.replace(gen_tmp, gen_path)
    return raw_path, gen_path


def class_sizes(gen_path: Path) -> pd.Series:
    """Rows per class of the generalised quasi-identifiers, counted by pandas: the expected
    answers, independent of all three candidates."""
    return pd.read_csv(gen_path, usecols=QIS).value_counts()


def hierarchies() -> dict[str, dict[int, np.ndarray]]:
    """anjana's hierarchies for the recipe: level 0 lists every raw value, level 1 its
    generalisation at the same position; kept quasi-identifiers have level 0 only."""
    out = {}
    for column, values in domains().items():
        coarse = generalise(column, values)
        out[column] = {0: values} if coarse is None else {0: values, 1: coarse}
    return out


Candidate = tuple[str, int, Callable[[], dict]]  # name, rows, run


def run_all(candidates: list[Candidate], repeat: int, console: Console
            ) -> dict[tuple[str, int], tuple[float, int, dict]]:
    results = {}
    with Progress(console=console) as bar:
        task = bar.add_task("measuring", total=len(candidates))
        for name, rows, fn in candidates:
            bar.update(task, description=f"{name}, {rows:,} rows")
            results[name, rows] = measure(fn, repeat)
            seconds, peak, _ = results[name, rows]
            bar.console.print(f"  {name}, {rows:,} rows: {seconds:.1f} s, {peak / 1e6:,.0f} MB")
            bar.advance(task)
    return results


def versus(theirs: tuple, ours: tuple, note: str) -> str:
    """"N× the time …; peak X MB vs Y MB" for two measure() results."""
    return (f"{theirs[0] / ours[0]:.1f}× the time {note}".rstrip() + "; "
            f"peak {theirs[1] / 1e6:,.0f} MB vs {ours[1] / 1e6:,.0f} MB")


def show(console: Console, title: str, results: dict, reference: dict[int, str]) -> None:
    """One row per candidate; ratios against ``reference[rows]`` measured on as many rows."""
    table = Table(title=title, caption="× = this / Safezone on as many rows")
    for column in ("candidate", "rows", "seconds", "read s", "µs/row", "peak MB", "time ×",
                   "memory ×"):
        table.add_column(column, justify="right")
    for (name, rows), (seconds, peak, answer) in results.items():
        ours_t, ours_m, _ = results[reference[rows], rows]
        read = f"{answer['read']:.2f}" if "read" in answer else "streamed"
        table.add_row(name, f"{rows:,}", f"{seconds:.2f}", read, f"{seconds / rows * 1e6:.2f}",
                      f"{peak / 1e6:,.0f}", f"{seconds / ours_t:.1f}×", f"{peak / ours_m:.2f}×")
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="untraced runs (best is kept)")
    parser.add_argument("--anjana-rows", type=int, nargs="*", default=[300_000],
                        help="sizes anjana is run on, beside Safezone (none: skip anjana)")
    args = parser.parse_args()
    console = Console()
    try:
        from pycanon.anonymity import k_anonymity as pycanon_k
    except ImportError:
        pycanon_k = None
    try:
        from anjana.anonymity import k_anonymity as anjana_k
    except ImportError:
        anjana_k = None
    if pycanon_k is None or anjana_k is None:
        console.print("[yellow]pycanon or anjana is not installed in this environment: "
                      ".cache/bench-venv/bin/pip install --only-binary=:all: pycanon anjana"
                      "[/yellow]")
    sizes = sorted({args.rows, *(args.anjana_rows if anjana_k else [])})
    paths, expected = {}, {}
    for rows in sizes:
        paths[rows] = make_data(rows, console)
        sizes_by_class = class_sizes(paths[rows][1])
        kept = sizes_by_class[sizes_by_class >= K]
        expected[rows] = {"classes": len(sizes_by_class), "k": int(sizes_by_class.min()),
                          "rows_out": int(kept.sum()), "k_out": int(kept.min()),
                          "suppressed": rows - int(kept.sum())}
        del sizes_by_class, kept
        console.print(f"{rows:,} rows: {paths[rows][0].stat().st_size / 1e6:,.0f} MB raw CSV, "
                      f"{expected[rows]['classes']:,} classes over {len(QIS)} generalised "
                      f"quasi-identifiers, {expected[rows]['suppressed']:,} rows in classes "
                      f"under k={K}")
    recipe, key = load_recipe(RECIPE), b"benchmark key, not a secret"
    deleting = load_recipe(RECIPE.replace("patient_id: {technique: pseudonymise}",
                                          "patient_id: {technique: delete}"))

    # 1. k verification of the generalised table
    gen = paths[args.rows][1]

    def arrow_read() -> dict:
        start = time.perf_counter()
        rows = pacsv.read_csv(gen).num_rows
        return {"read": time.perf_counter() - start, "rows": rows}

    def safezone_k() -> dict:
        return {"k": engine.min_class_size(engine.csv_batches(gen), QIS)}

    def pycanon_read_k() -> dict:
        start = time.perf_counter()
        frame = pd.read_csv(gen)
        read = time.perf_counter() - start
        return {"read": read, "k": pycanon_k(frame, QIS)}

    checks: list[Candidate] = [("pyarrow read (floor)", args.rows, arrow_read),
                               ("safezone", args.rows, safezone_k)]
    if pycanon_k:
        checks.append(("pycanon", args.rows, pycanon_read_k))
    console.print(f"[bold]1. k of the generalised table ({args.rows:,} rows)[/bold]")
    verified = run_all(checks, args.repeat, console)
    ours = verified["safezone", args.rows][2]["k"]
    assert ours == expected[args.rows]["k"], (ours, expected[args.rows])
    if pycanon_k:
        theirs = verified["pycanon", args.rows][2]["k"]
        assert theirs == ours, f"pycanon k={theirs}, safezone k={ours}"
        console.print(f"k = {ours} by both (and by pandas value_counts)")

    # 1b. k verification of the same table stored as Parquet, the form `safezone deid
    # verify` re-counts (strings read as dictionary codes and grouped on them)
    stored = gen.with_suffix(".parquet")
    if not stored.exists():
        pq.write_table(pacsv.read_csv(gen), stored)

    def safezone_k_parquet() -> dict:
        return {"k": engine.min_class_size(engine.parquet_batches(stored, QIS, as_codes=True),
                                           QIS)}

    def pycanon_parquet_k() -> dict:
        start = time.perf_counter()
        frame = pd.read_parquet(stored, columns=QIS)
        read = time.perf_counter() - start
        return {"read": read, "k": pycanon_k(frame, QIS)}

    stored_checks: list[Candidate] = [("safezone", args.rows, safezone_k_parquet)]
    if pycanon_k:
        stored_checks.append(("pycanon", args.rows, pycanon_parquet_k))
    console.print(f"[bold]1b. k of the same table stored as Parquet ({args.rows:,} rows)"
                  "[/bold]")
    verified_stored = run_all(stored_checks, args.repeat, console)
    assert {r[2]["k"] for r in verified_stored.values()} == {ours}

    # 2. the full recipe: raw CSV in, generalised, identifier removed, classes under k
    # suppressed, Parquet out
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        out_dir = Path(tmp)

        def safezone_recipe(rows: int, chosen: Recipe, tag: str) -> Callable[[], dict]:
            def run() -> dict:
                result = engine.deidentify(lambda: engine.csv_batches(paths[rows][0]), chosen,
                                           key, out_dir / f"safezone-{tag}-{rows}.parquet")
                return {"rows_out": result.rows_out, "k": result.k_achieved}
            return run

        def anjana_recipe(rows: int) -> Callable[[], dict]:
            # the suppression anjana may use is exactly the recipe's, so that its greedy
            # search ends where the recipe does: every quasi-identifier at level 1
            level = expected[rows]["suppressed"] * 100 / rows

            def run() -> dict:
                start = time.perf_counter()
                frame = pd.read_csv(paths[rows][0])
                read = time.perf_counter() - start
                with contextlib.redirect_stdout(io.StringIO()):  # anjana prints its progress
                    anon = anjana_k(frame, ["patient_id"], list(QIS), K, level, hierarchies())
                anon.drop(columns=["index"], errors="ignore").to_parquet(
                    out_dir / f"anjana-{rows}.parquet", index=False)
                return {"read": read, "rows_out": len(anon)}
            return run

        recipes: list[Candidate] = [
            ("safezone, id deleted", args.rows,
             safezone_recipe(args.rows, deleting, "delete")),
            ("safezone, id pseudonymised", args.rows,
             safezone_recipe(args.rows, recipe, "pseudonymise"))]
        for rows in sorted(set(args.anjana_rows) if anjana_k else []):
            if rows != args.rows:
                recipes.append(("safezone, id deleted", rows,
                                safezone_recipe(rows, deleting, "delete")))
            recipes.append(("anjana", rows, anjana_recipe(rows)))
        console.print(f"[bold]2. the full recipe (k={K}): {len(QIS)} quasi-identifiers "
                      "generalised, identifier removed, small classes suppressed[/bold]")
        done = run_all(recipes, args.repeat, console)
        for (name, rows), (_, _, answer) in done.items():
            want = expected[rows]
            assert answer["rows_out"] == want["rows_out"], (name, rows, answer, want)
            if name.startswith("safezone"):
                assert answer["k"] == want["k_out"], (name, rows, answer, want)
                continue
            by_us = pd.read_parquet(out_dir / f"safezone-delete-{rows}.parquet", columns=QIS)
            by_anjana = pd.read_parquet(out_dir / f"anjana-{rows}.parquet", columns=QIS)
            by_anjana["household_size"] = by_anjana["household_size"].astype("int64")
            same = by_us.value_counts().sort_index().equals(
                by_anjana.value_counts().sort_index())
            assert same, f"anjana's classes differ from safezone's at {rows:,} rows"
            assert pycanon_k(by_anjana, QIS) == pycanon_k(by_us, QIS) == want["k_out"]
            console.print(f"{rows:,} rows: anjana and safezone output the same "
                          f"{want['rows_out']:,} rows in the same classes, k = {want['k_out']}"
                          " (pycanon agrees)")

    show(console, f"1. k-anonymity verification, {len(QIS)} generalised quasi-identifiers "
         f"(best of {args.repeat}; memory from one traced run)", verified,
         {args.rows: "safezone"})
    show(console, f"1b. k-anonymity verification of the same table stored as Parquet (what "
         f"deid verify re-counts; best of {args.repeat})", verified_stored,
         {args.rows: "safezone"})
    show(console, f"2. Full recipe, raw CSV to Parquet (best of {args.repeat}; memory from one "
         "traced run)", done, dict.fromkeys(sizes, "safezone, id deleted"))
    if pycanon_k:
        theirs, ours = verified["pycanon", args.rows], verified["safezone", args.rows]
        without_read = (theirs[0] - theirs[2]["read"]) / ours[0]
        note = f"with read_csv, {without_read:.1f}× without (target ≥ 10×)"
        console.print(f"k verification, {args.rows:,} rows: pycanon / safezone "
                      + versus(theirs, ours, note))
        console.print(f"k verification of the stored Parquet, {args.rows:,} rows: pycanon / "
                      "safezone " + versus(verified_stored["pycanon", args.rows],
                                           verified_stored["safezone", args.rows],
                                           "(read included on both sides; target ≥ 10×)"))
    for rows in sorted(set(args.anjana_rows) if anjana_k else []):
        console.print(f"full recipe, {rows:,} rows: anjana / safezone "
                      + versus(done["anjana", rows], done["safezone, id deleted", rows], "")
                      + ("" if rows == args.rows else
                         f" (anjana measured on {rows:,} rows only, not on {args.rows:,})"))

if __name__ == "__main__":
    main()
