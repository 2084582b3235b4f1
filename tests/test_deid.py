"""De-identification runs on real MinIO: known answers for k, identifiers left in, the
pseudonymisation key, tampering after attestation, and bad recipes."""

from __future__ import annotations

import io
import logging
import subprocess
import sys

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from safezone import datasets
from safezone.config import POLICIES_DIR
from safezone.deid import pipeline
from safezone.deid.recipe import load_recipe
from safezone.errors import InvalidInput
from safezone.local.demo import raw_records
from safezone.permissions import STEWARD_SCOPE, Identity

from .support import steward_env, unique

STEWARD = Identity("steward", "user", frozenset({STEWARD_SCOPE}))
KEY = b"k" * 8 + b"this-key-lives-outside-the-zone"

# 10 rows; classes over (age_band, sex): 30-39/M ×4, 40-49/F ×3, 50-59/M ×2, 60-69/F ×1
SMALL = (
    "id,name,birth,sex,dx\n"
    "1,가,1990-01-01,M,I10\n2,나,1992-05-05,M,E11\n3,다,1991-03-03,M,I10\n"
    "4,라,1993-07-07,M,J45\n5,마,1980-01-01,F,I10\n6,바,1982-02-02,F,E11\n"
    "7,사,1983-03-03,F,E11\n8,아,1970-04-04,M,I10\n9,자,1972-06-06,M,K21\n"
    "10,차,1960-09-09,F,I10\n"
)
SMALL_RECIPE = """
version: 1
k: 3
columns:
  id: {technique: pseudonymise}
  name: {technique: delete}
  birth: {technique: generalise, to: age_band, reference_year: 2024, width: 10,
          role: quasi_identifier}
  sex: {technique: keep, role: quasi_identifier}
  dx: {technique: keep, role: sensitive}
"""


def raw_object(zone, body: bytes, name: str = "in.csv") -> tuple[str, str]:
    bucket = unique("raw-d")
    datasets.register_dataset(zone, STEWARD, bucket, "raw")
    zone.broker.write_object(bucket, name, body)
    return bucket, name


def output_table(zone, dataset: str):
    return pq.read_table(io.BytesIO(zone.broker.read_object(dataset, "data.parquet", 1 << 30)))


def test_known_answer_k_anonymity(zone):
    bucket, key = raw_object(zone, SMALL.encode())
    dataset = unique("deid-d")
    facts = pipeline.run(zone, STEWARD, load_recipe(SMALL_RECIPE), bucket, key, dataset, KEY)
    assert facts["rows_in"] == 10 and facts["rows_out"] == 7 and facts["rows_suppressed"] == 3
    assert facts["k_achieved"] == 3 and facts["classes"] == 2
    assert facts["input"]["sha256"] == __import__("hashlib").sha256(SMALL.encode()).hexdigest()
    assert facts["input"]["bytes"] == len(SMALL.encode())
    table = output_table(zone, dataset)
    assert table.num_rows == 7 and "name" not in table.column_names
    assert sorted(set(zip(table["birth"].to_pylist(), table["sex"].to_pylist(),
                          strict=True))) == [("30-39", "M"), ("40-49", "F")]
    assert pipeline.verify(zone, STEWARD, dataset) == []


def test_direct_identifier_left_in_fails_and_writes_nothing(zone):
    body = "name,phone,sido\n홍길동,010-2345-6789,서울\n".encode() * 6
    bucket, key = raw_object(zone, body)
    dataset = unique("deid-d")
    recipe = load_recipe("version: 1\nk: 2\ncolumns:\n  name: {technique: delete}\n"
                         "  phone: {technique: keep}\n  sido: {technique: keep, role: "
                         "quasi_identifier}\n")
    with pytest.raises(InvalidInput, match="phone"):
        pipeline.run(zone, STEWARD, recipe, bucket, key, dataset, KEY)
    assert not zone.broker.bucket_exists(dataset)
    unhandled = load_recipe("version: 1\ncolumns:\n  name: {technique: delete}\n"
                            "  sido: {technique: keep}\n")
    with pytest.raises(InvalidInput, match="column phone is not handled"):
        pipeline.run(zone, STEWARD, unhandled, bucket, key, dataset, KEY)
    assert not zone.broker.bucket_exists(dataset)


def test_key_never_leaves_and_pseudonyms_are_stable(zone, caplog):
    caplog.set_level(logging.DEBUG)
    bucket, key = raw_object(zone, SMALL.encode())
    first, second, other = unique("deid-a"), unique("deid-b"), unique("deid-c")
    recipe = load_recipe(SMALL_RECIPE)
    pipeline.run(zone, STEWARD, recipe, bucket, key, first, KEY)
    pipeline.run(zone, STEWARD, recipe, bucket, key, second, KEY)
    pipeline.run(zone, STEWARD, recipe, bucket, key, other, KEY[::-1])
    ids = {name: output_table(zone, name)["id"].to_pylist() for name in (first, second, other)}
    assert ids[first] == ids[second] and ids[first] != ids[other]
    for name in (first, second, other):
        for obj in ("data.parquet", "_attestation.json", "_report.md", "_report.html"):
            assert KEY not in zone.broker.read_object(name, obj, 1 << 30)
            assert KEY[::-1] not in zone.broker.read_object(name, obj, 1 << 30)
    assert KEY.decode() not in caplog.text


def test_tampered_output_fails_verification(zone):
    bucket, key = raw_object(zone, SMALL.encode())
    dataset = unique("deid-t")
    pipeline.run(zone, STEWARD, load_recipe(SMALL_RECIPE), bucket, key, dataset, KEY)
    zone.broker.write_object(dataset, "data.parquet", b"PAR1 not the attested bytes")
    assert any("replaced" in p for p in pipeline.verify(zone, STEWARD, dataset))


@pytest.mark.parametrize(("text", "words"), [
    ("version: 1\ncolumns:\n  x: {technique: shred}\n", "shred"),
    ("version: 1\nk: 1\ncolumns:\n  x: {technique: keep}\n", "k"),
    ("version: 1\ncolumns: [unclosed\n", "YAML"),
    ("version: 1\ncolumns:\n  x: {technique: generalise}\n", "needs 'to'"),
    ("version: 2\ncolumns:\n  x: {technique: keep}\n", "version"),
])
def test_bad_recipes_are_refused(text, words):
    with pytest.raises(InvalidInput, match=words):
        load_recipe(text)


def test_recipe_naming_a_missing_column_writes_nothing(zone):
    bucket, key = raw_object(zone, SMALL.encode())
    dataset = unique("deid-m")
    recipe = load_recipe(SMALL_RECIPE + "  nonexistent: {technique: keep}\n")
    with pytest.raises(InvalidInput, match="nonexistent"):
        pipeline.run(zone, STEWARD, recipe, bucket, key, dataset, KEY)
    assert not zone.broker.bucket_exists(dataset)


def test_example_recipe_on_the_demo_raw_data(zone):
    body = raw_records(3000).to_csv(index=False).encode()
    bucket, key = raw_object(zone, body)
    dataset = unique("deid-demo")
    recipe = load_recipe((POLICIES_DIR / "deid" / "example-health.yaml").read_text())
    facts = pipeline.run(zone, STEWARD, recipe, bucket, key, dataset, KEY)
    assert facts["k_achieved"] >= 5 and facts["l_achieved"] >= 2
    assert facts["rows_out"] + facts["rows_suppressed"] == 3000
    assert {"name", "phone"} <= set(facts["columns_dropped"])
    assert pipeline.verify(zone, STEWARD, dataset) == []
    report = zone.broker.read_object(dataset, "_report.md", 1 << 20).decode()
    assert "k-익명성 / k-anonymity: required 5" in report
    assert "## birth_date: 억제 후 / after suppression" in report and "범주화" in report
    assert KEY.decode() not in report
    raw = raw_records(3000)
    for value in raw["birth_date"].head(50).tolist() + raw["name"].head(50).tolist():
        assert value not in report  # no raw value in a file sessions can read


def steward_cli(zone):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "safezone.cli", "deid", *args],
                              env=steward_env(zone), capture_output=True, text=True, timeout=120)
    return cli


def test_cli_run_and_verify(zone, tmp_path):
    bucket, key = raw_object(zone, SMALL.encode())
    (tmp_path / "recipe.yaml").write_text(SMALL_RECIPE)
    (tmp_path / "key").write_bytes(KEY)
    dataset = unique("deid-cli")
    cli = steward_cli(zone)

    done = cli("run", "--recipe", str(tmp_path / "recipe.yaml"), "--input", f"{bucket}/{key}",
               "--dataset", dataset, "--key-file", str(tmp_path / "key"))
    assert done.returncode == 0, done.stderr
    assert '"rows_out": 7' in done.stdout and KEY.decode() not in done.stdout + done.stderr
    assert cli("verify", dataset).returncode == 0
    zone.broker.write_object(dataset, "data.parquet", b"tampered")
    failed = cli("verify", dataset)
    assert failed.returncode == 1 and "replaced" in failed.stdout
    bad = cli("run", "--recipe", str(tmp_path / "nope.yaml"), "--input", f"{bucket}/{key}",
              "--dataset", unique("deid-x"), "--key-file", str(tmp_path / "key"))
    assert bad.returncode == 1 and bad.stderr.startswith("error:") and bad.stderr.count("\n") == 1


def test_steward_uploads_parquet_and_the_run_matches_the_csv_run(zone, tmp_path):
    table = pacsv.read_csv(io.BytesIO(SMALL.encode()))
    pq.write_table(table, tmp_path / "small.parquet")
    cli = steward_cli(zone)
    raw = unique("raw-pq")
    done = cli("upload", str(tmp_path / "small.parquet"), "--to", f"{raw}/small.parquet")
    assert done.returncode == 0, done.stderr
    facts = pipeline.run(zone, STEWARD, load_recipe(SMALL_RECIPE), raw, "small.parquet",
                         unique("deid-pq"), KEY)
    bucket, key = raw_object(zone, SMALL.encode())
    from_csv = pipeline.run(zone, STEWARD, load_recipe(SMALL_RECIPE), bucket, key,
                            unique("deid-csv"), KEY)
    assert facts["rows_out"] == from_csv["rows_out"] == 7
    assert output_table(zone, facts["dataset"]).to_pylist() == \
        output_table(zone, from_csv["dataset"]).to_pylist()
    for target in ("deid-x/a.csv", f"{raw}/a.exe", f"{raw}/a*.csv"):
        refused = cli("upload", str(tmp_path / "small.parquet"), "--to", target)
        assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr


def test_aggregate_replaces_values_with_their_class_mean(zone):
    body = ("birth,sex,cost\n"
            "1990-01-01,M,100\n1991-01-01,M,200\n1992-01-01,M,600\n"
            "1980-01-01,F,10\n1981-01-01,F,20\n1982-01-01,F,40\n1970-01-01,M,999\n")
    bucket, key = raw_object(zone, body.encode())
    recipe = load_recipe("version: 1\nk: 3\ncolumns:\n"
                         "  birth: {technique: generalise, to: age_band, reference_year: 2024,"
                         " width: 10, role: quasi_identifier}\n"
                         "  sex: {technique: keep, role: quasi_identifier}\n"
                         "  cost: {technique: aggregate, digits: 1}\n")
    dataset = unique("deid-agg")
    facts = pipeline.run(zone, STEWARD, recipe, bucket, key, dataset, KEY)
    assert facts["rows_out"] == 6  # the 50-59/M row is alone: suppressed
    rows = output_table(zone, dataset).to_pylist()
    assert sorted((r["birth"], r["sex"], r["cost"]) for r in rows) == \
        [("30-39", "M", 300.0)] * 3 + [("40-49", "F", 23.3)] * 3
    whole = load_recipe("version: 1\ncolumns:\n  birth: {technique: delete}\n"
                        "  sex: {technique: keep}\n  cost: {technique: aggregate}\n")
    total = unique("deid-agg")
    pipeline.run(zone, STEWARD, whole, bucket, key, total, KEY)
    assert set(output_table(zone, total)["cost"].to_pylist()) == {281.0}  # 1969 / 7
    with pytest.raises(InvalidInput, match="cannot be a quasi-identifier"):
        load_recipe("version: 1\ncolumns:\n  cost: {technique: aggregate, "
                    "role: quasi_identifier}\n")
    with pytest.raises(InvalidInput, match="aggregate needs numbers"):
        pipeline.run(zone, STEWARD, load_recipe("version: 1\ncolumns:\n  birth: {technique: "
                                              "aggregate}\n  sex: {technique: keep}\n"
                                              "  cost: {technique: keep}\n"),
                     bucket, key, unique("deid-agg"), KEY)
