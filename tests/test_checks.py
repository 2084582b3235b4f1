"""Disclosure checks on crafted files: table rules, sidecar dominance, differencing and the
file traps (notebook outputs, PNG text chunks and appended bytes, hidden XLSX sheets)."""

from __future__ import annotations

import io
import json
import zlib

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, PngImagePlugin

from safezone.checks.findings import load_rules
from safezone.checks.runner import CheckContext, FileInput, check_request, table_index


def rules_of(record: dict, path: str) -> list[str]:
    entry = next(f for f in record["files"] if f["path"] == path)
    return [x["rule"] for x in entry["findings"]]


def run(*files: tuple[str, bytes], released=()) -> dict:
    return check_request("r", [FileInput(p, d, "h") for p, d in files],
                         CheckContext(released=tuple(released))).record


def test_frequency_zero_and_record_level_rules():
    table = b"region,count\nA,120\nB,4\nC,0\n"
    found = rules_of(run(("t.csv", table)), "t.csv")
    assert found.count("T001") == 1 and found.count("T002") == 1
    assert "T008" not in found  # counts only: no magnitude cell needs evidence
    means = rules_of(run(("m.csv", b"region,mean_income\nA,120.5\nB,98.25\n")), "m.csv")
    assert "T008" in means  # a magnitude without a sidecar cannot pass dominance unseen
    rows = "id,value\n" + "".join(f"{i},{i}\n" for i in range(6000))
    assert "T004" in rules_of(run(("r.csv", rows.encode())), "r.csv")


def test_parquet_and_tsv_are_tables_too():
    buffer = io.BytesIO()
    pq.write_table(pa.table({"sido": ["서울", "부산"], "n": [3, 200]}), buffer)
    assert "T001" in rules_of(run(("t.parquet", buffer.getvalue())), "t.parquet")
    assert "T001" in rules_of(run(("t.tsv", b"g\tcount\nx\t2\n")), "t.tsv")


def test_sidecar_dominance_and_p_percent():
    table = b"industry,total_sales,count\nsteel,1000,12\n"
    evidence = {"table": "sales.csv", "cells": [
        {"row": 1, "column": "total_sales", "count": 12, "total": 1000, "top": [950, 30]}]}
    record = run(("sales.csv", table), ("sales.csv.evidence.json", json.dumps(evidence).encode()))
    found = rules_of(record, "sales.csv")
    assert "T006" in found and "T007" in found and "T008" not in found
    assert next(f for f in record["files"] if f["path"].endswith(".evidence.json"))["evidence"]


def test_differencing_against_an_earlier_release():
    earlier = b"region,count\nSeoul,120\nBusan,200\n"
    now = b"region,count\nSeoul,123\nBusan,200\n"  # Seoul grew by 3: a cell of 3 is revealed
    released = table_index("old.csv", earlier, load_rules())
    found = rules_of(run(("new.csv", now), released=released), "new.csv")
    assert found.count("T009") == 1


def test_identifiers_inside_cells_and_headers():
    table = "name,phone,count\n홍길동,010-2345-6789,120\n".encode()
    found = rules_of(run(("p.csv", table)), "p.csv")
    assert "I005" in found
    record = run(("p.csv", table))
    excerpt = next(x for x in record["files"][0]["findings"] if x["rule"] == "I005")["excerpt"]
    assert "2345" not in excerpt  # the record never copies the identifier itself


def test_notebook_outputs_are_scanned_in_every_mime_type():
    notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": {"widgets": {"state": {}}},
                "cells": [{"cell_type": "code", "source": "df.head()", "metadata": {},
                           "outputs": [{"output_type": "execute_result", "data": {
                               "text/html": "<td>kim@example.com</td>",
                               "image/png": "iVBORw0KGgo="}}]}]}
    found = rules_of(run(("a.ipynb", json.dumps(notebook).encode())), "a.ipynb")
    assert "I007" in found and "F008" in found


def test_png_text_chunks_and_appended_zip_are_flagged():
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "홍길동 900101-1234568")
    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, "PNG", pnginfo=info)
    data = out.getvalue() + b"PK\x03\x04" + zlib.compress(b"hidden")
    found = rules_of(run(("plot.png", data)), "plot.png")
    assert "F006" in found and "F007" in found and "I001" in found


def test_hidden_xlsx_sheet_is_flagged():
    book = openpyxl.Workbook()
    book.active.append(["region", "count"])
    book.active.append(["A", 100])
    raw = book.create_sheet("raw")
    raw.append(["name", "rrn"])
    raw.sheet_state = "hidden"
    out = io.BytesIO()
    book.save(out)
    assert "T011" in rules_of(run(("t.xlsx", out.getvalue())), "t.xlsx")


def test_files_are_typed_by_content_not_name():
    assert "F005" in rules_of(run(("m.csv", b"\x80\x05\x95abc")), "m.csv")
    assert "F002" in rules_of(run(("doc.pdf", b"a,b\n1,2\n")), "doc.pdf")
    assert "F001" not in rules_of(run(("doc.pdf", b"%PDF-1.7\n")), "doc.pdf")
    assert "F005" in rules_of(run(("x.txt", b"\x7fELF\x02\x01")), "x.txt")


def test_records_follow_the_published_schema():
    import jsonschema

    from safezone.config import POLICIES_DIR

    schema = json.loads((POLICIES_DIR / "disclosure" / "check-record.schema.json").read_text())
    record = run(("t.csv", b"region,count\nA,4\n"), ("n.txt", "전화 010-2345-6789".encode()),
                 ("x.bin", b"\x7fELF"))
    jsonschema.validate(record, schema)
    assert record["summary"]["fail"] >= 3


def test_every_rule_has_both_languages_and_a_known_severity():
    rules = load_rules()
    for rule, spec in rules.messages.items():
        assert spec["en"] and spec["ko"], rule
        assert spec["severity"] in {"fail", "warn", "info"}


def test_size_limits_per_file_and_request():
    import dataclasses

    from safezone.checks.runner import check_file

    small = dataclasses.replace(load_rules(), files={**load_rules().files,
                                                     "max_file_bytes": 100,
                                                     "max_request_bytes": 150})
    result = check_file(FileInput("big.csv", b"a,count\n" + b"x,100\n" * 50, "h"), small)
    assert [f.rule for f in result.findings] == ["F003"]
    record = check_request("r", [FileInput(f"{i}.txt", b"x" * 80, "h") for i in range(2)],
                           rules=small).record
    assert [f["rule"] for f in record["request_findings"]] == ["F003"]
