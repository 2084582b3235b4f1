"""Each way a requester could lower the review bar, and the finding that now stops it.

Every test names the evasion, asserts the rule and severity that catch it, and checks that a
clean control case next to it is not flagged."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import pickle
import struct
import time
import zipfile
import zlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from safezone.checks.findings import load_rules
from safezone.checks.runner import (
    CheckContext,
    DatasetShape,
    FileInput,
    admissible,
    check_request,
    table_index,
)

from .support import report_measure
from .test_identifiers import rrn_with_check

RRN = rrn_with_check("900101", "1", "23456")          # a valid pre-2020 number


def check(*files: tuple[str, bytes], context: CheckContext | None = None):
    return check_request("r", [FileInput(p, d, hashlib.sha256(d).hexdigest())
                               for p, d in files], context or CheckContext())


def entry(outcome, path: str) -> dict:
    return next(f for f in outcome.record["files"] if f["path"] == path)


def hits(outcome, path: str, rule: str) -> list[dict]:
    return [x for x in entry(outcome, path)["findings"] if x["rule"] == rule]


def severity(outcome, path: str, rule: str) -> str:
    found = hits(outcome, path, rule)
    assert found, f"{rule} not found in {path}: {entry(outcome, path)['findings']}"
    return found[0]["severity"]


def assert_clean(outcome, path: str) -> None:
    findings = entry(outcome, path)["findings"]
    assert entry(outcome, path)["worst"] in {"pass", "info"}, findings


# -- counts found by content ------------------------------------------------------------

def test_renamed_count_column_small_cells_fail():
    out = check(("t.csv", b"region,people\nSeoul,120\nBusan,3\n"),
                ("ok.csv", b"region,people\nSeoul,120\nBusan,130\n"))
    assert severity(out, "t.csv", "T001") == "fail"
    assert hits(out, "t.csv", "T001")[0]["column"] == "people"
    assert_clean(out, "ok.csv")


def test_count_renamed_as_a_key_still_counts_in_an_ordinary_table():
    out = check(("t.csv", b"region,month\nSeoul,120\nBusan,3\n"),
                ("ok.csv", b"region,month,count\nSeoul,1,120\nSeoul,2,130\nBusan,1,140\n"))
    assert severity(out, "t.csv", "T001") == "fail"
    assert_clean(out, "ok.csv")  # a real month key is a label, not a small count


# -- exportable kinds: an allow-list; PDFs only when fully inspectable --------------------

def make_pdf(text: str | None, image: bool = False) -> bytes:
    """A one-page PDF written by hand (Helvetica text, optionally an image XObject)."""
    content = f"BT /F1 12 Tf 72 712 Td ({text}) Tj ET".encode() if text else b""
    if image:
        content += b" q 10 0 0 10 100 100 cm /Im1 Do Q"
    resources = b"/Font << /F1 5 0 R >>" + (b" /XObject << /Im1 6 0 R >>" if image else b"")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << " + resources + b" >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    if image:
        objects.append(b"<< /Type /XObject /Subtype /Image /Width 1 /Height 1 /ColorSpace "
                       b"/DeviceGray /BitsPerComponent 8 /Length 1 >>\nstream\n\x00\nendstream")
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    return out + b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)


def test_pdf_text_is_extracted_and_scanned():
    out = check(("id.pdf", make_pdf(f"patient {RRN}")), ("ok.pdf", make_pdf("Table 1 n=120")))
    assert severity(out, "id.pdf", "I001") == "fail"
    assert_clean(out, "ok.pdf")
    assert "Table 1" in out.previews["ok.pdf"]["text"]


def test_pdf_that_cannot_be_fully_inspected_fails():
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf("Table 1"))))
    writer.add_attachment("records.csv", b"name,rrn\n")
    attached = io.BytesIO()
    writer.write(attached)
    out = check(("img.pdf", make_pdf("Figure 1", image=True)), ("blank.pdf", make_pdf(None)),
                ("att.pdf", attached.getvalue()), ("ok.pdf", make_pdf("Figure 1")),
                ("upd.pdf", make_pdf("Figure 1") + b"1 0 obj\n<<>>\nendobj\n%%EOF\n"))
    for path, why in (("img.pdf", "images"), ("blank.pdf", "no extractable text"),
                      ("att.pdf", "attachments"), ("upd.pdf", "revisions")):
        assert severity(out, path, "F009") == "fail"
        assert why in hits(out, path, "F009")[0]["message_en"]
    assert out.record["flagged"]
    assert_clean(out, "ok.pdf")


def test_unknown_binary_and_other_kinds_are_refused_at_submit_and_at_check():
    blob = bytes(range(256)) * 4
    assert admissible("x.bin", b"\x7fELF\x02\x01") == \
        "x.bin: files of kind elf cannot be exported (반출 불가 형식: elf)"
    assert admissible("x.dat", blob) is not None
    assert admissible("t.csv", b"region,count\nA,120\n") is None
    assert admissible("p.pdf", b"%PDF-1.7\n") is None
    out = check(("x.dat", blob), ("ok.csv", b"region,count\nA,120\n"))
    assert severity(out, "x.dat", "F001") == "fail"
    assert_clean(out, "ok.csv")
    assert set(load_rules().files["exportable"]) == {
        "csv", "tsv", "txt", "md", "json", "png", "jpeg", "ipynb", "parquet", "xlsx", "pdf"}


# -- encoded blobs ------------------------------------------------------------------------

def test_base64_and_hex_blobs_are_decoded_and_scanned():
    listing = f"{RRN}\n{rrn_with_check('851231', '2', '99999')}\n".encode()
    b64, hexed = base64.b64encode(listing).decode(), listing.hex()
    noise = base64.b64encode(bytes(range(7, 100))).decode()
    out = check(("b.txt", f"appendix: {b64}\n".encode()), ("h.md", f"x {hexed}\n".encode()),
                ("c.csv", f"region,note,count\nA,{b64},120\n".encode()),
                ("n.txt", f"blob {noise}\n".encode()),
                ("p.txt", f"model {base64.b64encode(pickle.dumps([1, 2], 0)).decode()}"
                          .encode()),
                ("ok.txt", b"internationalization, commit 3f2a9c1d, see table 2\n"))
    for path in ("b.txt", "h.md", "c.csv"):
        assert severity(out, path, "I001") == "fail", path
    assert hits(out, "b.txt", "I001")[0]["excerpt"].startswith("base64:")
    assert severity(out, "n.txt", "E002") == "warn"
    assert severity(out, "p.txt", "F005") == "fail"
    assert_clean(out, "ok.txt")


# -- pickles that are text ----------------------------------------------------------------

@pytest.mark.parametrize("protocol", [0, 1])
def test_text_protocol_pickle_named_csv_is_refused(protocol):
    data = pickle.dumps({"rows": [[1, "a"], [2, "b"]]}, protocol=protocol)
    out = check(("model.csv", data), ("ok.csv", b"(a),count\nx,120\n"))
    assert severity(out, "model.csv", "F005") == "fail"
    assert admissible("model.csv", data) is not None
    assert_clean(out, "ok.csv")
    assert admissible("ok.csv", b"(a),count\nx,120\n") is None


# -- record-level data by shape -----------------------------------------------------------

def records(rows: int) -> pa.Table:
    return pa.table({
        "pid": [hashlib.sha256(str(i).encode()).hexdigest() for i in range(rows)],
        "sex": ["MF"[i % 2] for i in range(rows)],
        "sido": [f"sido{i % 17}" for i in range(rows)],
        "age_band": [f"{10 * (i % 8)}s" for i in range(rows)],
        "visits": [i % 13 + 10 for i in range(rows)]})


def crosstab() -> bytes:
    lines = ["sido,sex,age_band,count"] + [
        f"sido{s},{x},{10 * a}s,{100 + s + a}" for s in range(17) for x in "MF" for a in range(8)]
    return ("\n".join(lines) + "\n").encode()


def parquet(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def test_record_level_dataset_under_the_row_threshold_fails():
    dataset = DatasetShape("deid-health", 3000, ("pid", "sex", "sido", "age_band", "visits"))
    context = CheckContext(datasets=(dataset,))
    whole = records(3000)
    out = check(("all.parquet", parquet(whole)),
                ("renamed.parquet", parquet(whole.rename_columns(
                    ["c1", "c2", "c3", "c4", "c5"]).drop_columns(["c1"]))),
                ("tokens.csv", b"token,count\n" + b"".join(
                    hashlib.sha256(bytes([i])).hexdigest().encode() + b",120\n"
                    for i in range(10))),
                ("ok.csv", crosstab()), context=context)
    assert out.record["files"][0]["size"] < 5_000_000
    for path in ("all.parquet", "renamed.parquet", "tokens.csv"):
        assert severity(out, path, "T012") == "fail", path
    why = hits(out, "all.parquet", "T012")[0]["message_en"]
    assert "like dataset deid-health" in why
    assert_clean(out, "ok.csv")


def test_each_shape_tell_alone():
    rows = 40
    keyed = "pid,sex,count\n" + "".join(f"P{i:04d},{'MF'[i % 2]},{100 + 3 * i}\n"
                                         for i in range(rows))
    numbered = "n,label,count\n" + "".join(f"{i + 1},{'ab'[i % 2]},{200 + 3 * i}\n"
                                           for i in range(rows))
    one_way = "district,count\n" + "".join(f"district{i},{100 + 3 * i}\n"
                                            for i in range(rows))
    dataset = DatasetShape("d", rows, ("whatever",))
    out = check(("keyed.csv", keyed.encode()), ("numbered.csv", numbered.encode()),
                ("sized.csv", one_way.encode()), ("ok.csv", one_way.encode()))
    assert severity(out, "keyed.csv", "T012") == "fail"
    assert severity(out, "numbered.csv", "T012") == "fail"
    assert_clean(out, "ok.csv")  # a one-way table's labels are one per row, legitimately
    sized = check(("sized.csv", one_way.encode()), context=CheckContext(datasets=(dataset,)))
    assert severity(sized, "sized.csv", "T012") == "fail"


# -- evidence sidecars checked against the table ------------------------------------------

SALES = b"industry,total_sales,count\nsteel,1000,12\nships,2000,40\n"


def sidecar(*cells: dict) -> bytes:
    return json.dumps({"table": "s.csv", "cells": list(cells)}).encode()


GOOD = [{"row": 1, "column": "total_sales", "count": 12, "total": 1000, "top": [300, 200]},
        {"row": 2, "column": "total_sales", "count": 40, "total": 2000, "top": [400, 300]}]


@pytest.mark.parametrize(("forged", "rule"), [
    ([], "T008"),                                                     # evidence left out
    ([{**GOOD[0], "count": 50}, GOOD[1]], "T013"),                     # count not the table's
    ([{**GOOD[0], "total": 100000}, GOOD[1]], "T013"),                 # total not the table's
    ([{**GOOD[0], "top": [600, 500]}, GOOD[1]], "T013"),               # top sums past total
    ([{**GOOD[0], "count": 1, "top": [1, 1]}, GOOD[1]], "T013"),       # more tops than count
    ([{**GOOD[0], "row": 9}, GOOD[1]], "T013"),                        # no such cell
])
def test_forged_evidence_sidecar_cannot_switch_off_dominance(forged, rule):
    out = check(("s.csv", SALES), ("s.csv.evidence.json", sidecar(*forged)))
    assert severity(out, "s.csv", rule) == "warn"
    assert out.record["flagged"]
    assert "s.csv.evidence.json" not in out.release_bytes
    assert entry(out, "s.csv.evidence.json")["release_sha256"] is None


def test_evidence_absent_warns_and_consistent_evidence_passes():
    out = check(("s.csv", SALES))
    assert severity(out, "s.csv", "T008") == "warn"
    good = check(("s.csv", SALES), ("s.csv.evidence.json", sidecar(*GOOD)))
    assert_clean(good, "s.csv")
    dominant = check(("s.csv", SALES), ("s.csv.evidence.json", sidecar(
        {**GOOD[0], "top": [950, 30]}, GOOD[1])))
    assert severity(dominant, "s.csv", "T006") == "fail"


# -- identifiers in other written forms ---------------------------------------------------

@pytest.mark.parametrize("form", [
    RRN.replace("-", " "), RRN.replace("-", "."), RRN.replace("-", ""),
    RRN.translate(str.maketrans("0123456789-", "０１２３４５６７８９－")),
    RRN.replace("-", "\u2013"), RRN[:3] + "\u200b" + RRN[3:]])
def test_rrn_in_other_written_forms_is_found(form):
    out = check(("n.txt", f"환자 {form}\n".encode()),
                ("c.csv", f"region,who,count\nA,{form},120\n".encode()))
    assert severity(out, "n.txt", "I001") == "fail"
    assert severity(out, "c.csv", "I001") == "fail"


def test_identifier_split_across_adjacent_columns_is_found():
    front, back = RRN.split("-")
    out = check(("ints.csv", f"region,a,b,count\nA,{front},{back},120\n".encode()),
                ("text.csv", f"region,a,b,count\nA,{front}-,{back},120\n".encode()),
                ("phone.csv", b"region,a,b,count\nA,010-2345,6789,120\n"),
                ("ok.csv", b"region,a,b,count\nA,201,15,120\nB,13,123456,130\n"))
    for path in ("ints.csv", "text.csv"):
        assert severity(out, path, "I001") == "fail", path
    assert severity(out, "phone.csv", "I005") == "fail"
    assert hits(out, "ints.csv", "I001")[0]["column"] == "a|b"
    assert_clean(out, "ok.csv")


def test_identifiers_in_numeric_columns_lost_leading_zeros():
    rrns = [int(rrn_with_check(f"05{m:02d}0{d}", "3", "12345").replace("-", ""))
            for m, d in ((1, 1), (5, 5), (11, 9))]
    phones = [1023456789, 1098765432, 1055556666]
    table = pa.table({"region": ["A", "B", "C"], "rrn": rrns, "tel": phones,
                      "amount": [1_012_345_678, 5_400_000_000, 7_700_000_000],
                      "count": [120, 130, 140]})
    out = check(("n.parquet", parquet(table)))
    assert severity(out, "n.parquet", "I001") == "fail"
    assert "rrn" in {x["column"] for x in hits(out, "n.parquet", "I001")}
    assert severity(out, "n.parquet", "I005") == "fail"
    flagged = {x["column"] for x in entry(out, "n.parquet")["findings"]
               if x["rule"].startswith("I")}
    assert "tel" in flagged and "amount" not in flagged  # sums of money are not phones
    assert len(str(rrns[0])) == 12  # the leading zero really was lost


# -- images: chunk allow-list, segment walk, released re-encoding --------------------------

def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(
        ">I", zlib.crc32(kind + body))


def plain_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(out, "PNG")
    return out.getvalue()


def test_private_png_chunk_is_flagged_and_never_released():
    clean = plain_png()
    secret = b"names and numbers " + RRN.encode()
    tampered = clean[:-12] + png_chunk(b"prVt", secret) + clean[-12:]
    out = check(("plot.png", tampered), ("ok.png", clean))
    assert severity(out, "plot.png", "F011") == "warn"
    released = out.release_bytes["plot.png"]
    assert b"prVt" not in released and secret not in released
    assert Image.open(io.BytesIO(released)).tobytes() == Image.open(io.BytesIO(clean)).tobytes()
    assert entry(out, "plot.png")["release_sha256"] == hashlib.sha256(released).hexdigest()
    assert base64.b64decode(out.previews["plot.png"]["image"]) == released  # what you review
    assert out.previews["plot.png"]["same_as_release"]
    assert_clean(out, "ok.png")


def plain_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 120, 200)).save(out, "JPEG")
    return out.getvalue()


def test_jpeg_payload_ending_in_its_own_eoi_is_found():
    clean = plain_jpeg()
    smuggled = clean + b"PK\x03\x04" + zlib.compress(b"hidden records") + b"\xff\xd9"
    comment = f"who: {RRN}".encode()
    with_com = clean[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + \
        clean[2:]
    app15 = clean[:2] + b"\xff\xef\x00\x06data" + clean[2:]
    out = check(("a.jpg", smuggled), ("b.jpg", with_com), ("c.jpg", app15), ("ok.jpg", clean))
    assert severity(out, "a.jpg", "F007") == "fail"
    assert severity(out, "b.jpg", "F006") == "warn"
    assert severity(out, "b.jpg", "I001") == "fail"
    assert severity(out, "c.jpg", "F011") == "warn"
    assert_clean(out, "ok.jpg")
    released = out.release_bytes["a.jpg"]
    assert released.startswith(b"\x89PNG") and b"hidden" not in released


def huge_png(side: int) -> bytes:
    """A 1-bit greyscale PNG of side x side, all black: a few KiB compressed."""
    packer = zlib.compressobj(9)
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", body) + \
        png_chunk(b"IEND", b"")


def test_huge_image_is_refused_from_its_header_without_decoding():
    data = huge_png(20000)
    assert len(data) < 200_000
    started = time.perf_counter()
    out = check(("big.png", data), ("ok.png", plain_png()))
    assert time.perf_counter() - started < 10  # decoding 400 Mpx would take far longer
    assert severity(out, "big.png", "F012") == "fail"
    assert "big.png" not in out.release_bytes
    assert entry(out, "big.png")["release_sha256"] is None
    assert "error" in out.previews["big.png"]
    assert_clean(out, "ok.png")


def test_large_image_preview_is_a_downscaled_copy_of_the_full_release():
    out_bytes = io.BytesIO()
    Image.new("L", (3000, 100), 7).save(out_bytes, "PNG")
    out = check(("wide.png", out_bytes.getvalue()))
    preview = out.previews["wide.png"]
    assert not preview["same_as_release"] and preview["width"] <= 2048
    assert Image.open(io.BytesIO(out.release_bytes["wide.png"])).size == (3000, 100)


# -- previews are bounded and say so; differencing is fast from indexes --------------------

def test_previews_are_cut_and_say_so():
    rows = "region,count\n" + "".join(f"r{i},{100 + i}\n" for i in range(5000))
    out = check(("big.csv", rows.encode()), ("long.txt", b"x" * 300_000))
    table = out.previews["big.csv"]["tables"][0]
    assert len(table["rows"]) == 1000 and table["note"] == "first 1,000 of 5,000 rows"
    assert out.previews["long.txt"]["note"].startswith("first 200,000 of 300,000 bytes")
    json.dumps(out.previews)
    # what reviewers do not see cannot pass as clean: both files need the flagged count
    assert severity(out, "big.csv", "P001") == "warn"
    assert severity(out, "long.txt", "P001") == "warn"


def test_notebooks_are_released_as_what_reviewers_saw():
    """Outputs of other types, metadata and attachments never leave."""
    doc = {"nbformat": 4, "nbformat_minor": 5, "metadata": {"secret": "900101-1234568"},
           "cells": [{"cell_type": "code", "source": "print(1)", "metadata": {"x": 1},
                      "execution_count": 1, "outputs": [
                          {"output_type": "stream", "name": "stdout", "text": "1\n"},
                          {"output_type": "display_data",
                           "data": {"application/x-payload": "HIDDEN ROWS",
                                    "text/plain": "<summary ok>"}, "metadata": {}}]}]}
    raw = json.dumps(doc).encode()
    out = check(("nb.ipynb", raw))
    released = out.release_bytes["nb.ipynb"]
    assert b"HIDDEN ROWS" not in released and b"900101" not in released
    rebuilt = json.loads(released)
    assert rebuilt["cells"][0]["outputs"][1]["text"] == "<summary ok>"
    entry = out.record["files"][0]
    assert entry["release_sha256"] == hashlib.sha256(released).hexdigest() != entry["sha256"]
    shown = out.previews["nb.ipynb"]["cells"][0]
    assert shown["outputs"] == ["1\n", "<summary ok>"]


def test_differencing_works_from_a_thousand_stored_indexes_quickly():
    rules = load_rules()
    earlier = table_index("old.csv", b"region,count\nSeoul,120\nBusan,200\n", rules)
    regions = "region,count\nSeoul,170\n" + "".join(f"gu{i},{100 + 3 * i}\n"
                                                   for i in range(250))
    filler = table_index("filler.csv", regions.encode(), rules) * 999
    context = CheckContext(released=tuple(json.loads(json.dumps(filler + earlier))))
    started = time.perf_counter()
    out = check(("new.csv", b"region,people\nSeoul,123\nBusan,200\n"),
                ("ok.csv", b"region,count\nSeoul,120\nBusan,200\n"), context=context)
    took = time.perf_counter() - started
    # the figure is printed; the bound only catches a blow-up (a quadratic scan takes
    # minutes), not a busy machine (benchmarks/ measures speed)
    report_measure(f"checks against 1,000 stored indexes of 250 cells: {took:.2f} s")
    assert took < 20
    assert severity(out, "new.csv", "T009") == "fail"  # renamed count column, still compared
    assert_clean(out, "ok.csv")


# -- a table under another name is still a table -----------------------------------------

def test_table_renamed_as_text_or_json_gets_the_table_rules():
    records = json.dumps([{"region": "Seoul", "people": 120}, {"region": "Busan", "people": 3}])
    out = check(("t.txt", b"region,people\nSeoul,120\nBusan,3\n"), ("r.json", records.encode()),
                ("ok.txt", b"Results, as agreed.\nSee the tables.\n"))
    assert severity(out, "t.txt", "T001") == "fail"
    assert severity(out, "r.json", "T001") == "fail"
    assert "tables" in out.previews["t.txt"]  # reviewed as the table it is
    assert_clean(out, "ok.txt")


def test_admissible_decides_from_the_head_alone():
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["region", "count"])
    xlsx = io.BytesIO()
    book.save(xlsx)
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("a.csv", "x")
    assert admissible("t.xlsx", xlsx.getvalue()[:65536]) is None
    assert admissible("t.parquet", parquet(pa.table({"n": [1]}))[:100]) is None
    assert admissible("t.csv", b"region,count\n" + b"A,120\n" * 20000) is None
    assert "zip" in admissible("t.csv", zipped.getvalue())
    assert "pickle" in admissible("m.txt", pickle.dumps(list(range(5000)), 0)[:65536])


def test_a_mixed_request_follows_the_record_schema():
    import jsonschema

    from safezone.config import POLICIES_DIR

    schema = json.loads((POLICIES_DIR / "disclosure" / "check-record.schema.json").read_text())
    out = check(("s.csv", SALES), ("s.csv.evidence.json", sidecar(GOOD[0])),
                ("p.png", plain_png()), ("j.jpg", plain_jpeg()), ("d.pdf", make_pdf(None)),
                ("big.png", huge_png(6000)), ("m.csv", pickle.dumps([1, 2, 3], 0)))
    jsonschema.validate(out.record, schema)
    json.dumps(out.previews)
    assert set(out.release_bytes) == {"s.csv", "p.png", "j.jpg", "d.pdf", "m.csv"}
    for item in out.record["files"]:
        data = out.release_bytes.get(item["path"])
        expected = hashlib.sha256(data).hexdigest() if data is not None else None
        assert item["release_sha256"] == expected
        if item["kind"] not in {"png", "jpeg"} and data is not None:
            assert item["release_sha256"] == item["sha256"]
