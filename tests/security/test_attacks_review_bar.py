"""The review bar cannot be lowered by the requester: kinds that may not leave are refused
at submit, evasions are flagged (two approvals, override needed), and what is released is
what the reviewer saw. Each through the real API, checks in the real worker."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import struct
import zlib

import pytest

from ..support import submit_and_wait
from .attack import nothing_changes, refused


def put(world, name: str, data: bytes) -> None:
    world.stack.minio.root_s3().put_object(Bucket="outbox",
                                           Key=f"{world.project}/alice/{name}", Body=data)


def checked(world, *names: str) -> dict:
    rid = world.stack.api("alice").post("/api/exports", json={
        "project": world.project, "files": [{"path": n} for n in names]}).json()["id"]
    return submit_and_wait(world.stack.api("alice"), rid)


def rules_of(view: dict, name: str) -> dict[str, str]:
    entry = next(f for f in view["check_record"]["files"] if f["path"] == name)
    return {x["rule"]: x["severity"] for x in entry["findings"]}


def refused_at_submit(world, name: str, data: bytes, *words: str) -> None:
    put(world, name, data)
    rid = world.draft(name)["id"]
    with nothing_changes(world, rid):
        refused(world.stack.api("alice").post(f"/api/exports/{rid}/submit"), 422, *words)
    frozen = world.stack.minio.root_s3().list_objects_v2(Bucket="egress-quarantine",
                                                         Prefix=f"{rid}/")
    assert frozen.get("KeyCount", 0) == 0


@pytest.mark.parametrize(("name", "data"), [
    ("model.csv", b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94."),      # pickle 4
    ("proto0.csv", b"(dp0\nS'rrn'\np1\nS'900101-1234568'\np2\ns."),             # pickle 0
    ("tool.csv", b"\x7fELF\x02\x01\x01" + b"\0" * 64),                          # ELF
    ("bundle.csv", b"PK\x03\x04" + b"\0" * 60),                                 # zip
])
def test_kinds_that_may_not_leave_are_refused_at_submit(world, name, data):
    refused_at_submit(world, name, data, name)


def test_unknown_binary_is_refused_at_submit(world):
    refused_at_submit(world, "blob.dat", bytes(range(256)) * 8, "blob.dat")


def test_renamed_count_column_still_fails_small_cells(world):
    put(world, "people.csv", b"region,sex,people\nSeoul,M,120\nSeoul,F,3\nBusan,M,88\n")
    view = checked(world, "people.csv")
    assert rules_of(view, "people.csv").get("T001") == "fail"
    assert view["required_approvals"] == 2


def test_whole_record_level_dataset_is_flagged_whatever_its_size(world):
    rows = "\n".join(f"{i},{40 + i % 7}" for i in range(1, 301))
    put(world, "copy.csv", f"id,age\n{rows}\n".encode())
    view = checked(world, "copy.csv")
    assert "fail" in rules_of(view, "copy.csv").values()
    assert view["required_approvals"] == 2


@pytest.mark.parametrize("cell", ["900101 1234568", "900101.1234568", "9001011234568",
                                  "９００１０１－１２３４５６８"])
def test_identifiers_in_other_written_forms_fail(world, cell):
    put(world, "ids.csv", f"region,note\nSeoul,{cell}\n".encode())
    view = checked(world, "ids.csv")
    assert "fail" in {s for r, s in rules_of(view, "ids.csv").items() if r.startswith("I")}


def test_identifier_split_across_two_columns_fails(world):
    put(world, "split.csv", b"region,a,b\nSeoul,900101,1234568\n")
    view = checked(world, "split.csv")
    assert any(r.startswith("I") and s == "fail" for r, s in rules_of(view, "split.csv").items())


def test_base64_of_identifiers_is_caught(world):
    blob = base64.b64encode(b"900101-1234568\n850505-2345671\n010-1234-5678\n").decode()
    put(world, "notes.txt", f"appendix: {blob}\n".encode())
    view = checked(world, "notes.txt")
    assert any(s in {"fail", "warn"} for s in rules_of(view, "notes.txt").values())
    assert view["required_approvals"] == 2


def test_forged_evidence_sidecar_does_not_switch_off_dominance(world):
    table = b"region,total_cost\nSeoul,1000\nBusan,900\n"
    forged = {"cells": [{"key": {"region": "Seoul"}, "count": 50, "total": 1,
                         "top": [0.1, 0.1]},
                        {"key": {"region": "Busan"}, "count": 50, "total": 1,
                         "top": [0.1, 0.1]}]}
    put(world, "cost.csv", table)
    put(world, "cost.csv.evidence.json", json.dumps(forged).encode())
    view = checked(world, "cost.csv", "cost.csv.evidence.json")
    assert "warn" in rules_of(view, "cost.csv").values() or \
        "fail" in rules_of(view, "cost.csv").values()
    assert view["required_approvals"] == 2


def _png(extra_chunk: bytes = b"") -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    raw = b"".join(b"\0" + b"\xff\x00\x00" * 4 for _ in range(4))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
            + extra_chunk + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_private_png_chunk_is_flagged_and_never_released(world):
    secret = b"900101-1234568 Hong Gildong"
    crc = struct.pack(">I", zlib.crc32(b"prVt" + secret) & 0xFFFFFFFF)
    body = struct.pack(">I", len(secret)) + b"prVt" + secret + crc
    image = _png(body)
    put(world, "plot.png", image)
    view = checked(world, "plot.png")
    assert view["required_approvals"] == 2
    entry = view["files"][0]
    assert entry["release_sha256"] != hashlib.sha256(image).hexdigest()
    for reviewer in ("reviewer", "erin"):  # flagged: two independent approvals
        world.stack.api(reviewer).post(f"/api/exports/{view['id']}/votes", json={
            "file_id": entry["id"], "decision": "approve", "override_reason": "chart only"}
        ).raise_for_status()
    released = world.stack.minio.root_s3().get_object(
        Bucket="released", Key=f"{view['id']}/{entry['id']}/plot.png")["Body"].read()
    assert secret not in released and released != image
    assert hashlib.sha256(released).hexdigest() == entry["release_sha256"]


def test_jpeg_payload_ending_in_its_own_eoi_is_flagged(world):
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), "white").save(out, "JPEG")
    payload = b"PK\x03\x04 secret rows \xff\xd9"
    put(world, "photo.jpg", out.getvalue() + payload)
    view = checked(world, "photo.jpg")
    assert "fail" in rules_of(view, "photo.jpg").values()
    assert view["files"][0]["release_sha256"] != hashlib.sha256(
        out.getvalue() + payload).hexdigest()


def test_numeric_column_of_phone_numbers_fails(world):
    put(world, "phones.csv", b"region,contact\nSeoul,1012345678\nBusan,1098765432\n")
    view = checked(world, "phones.csv")
    assert any(r.startswith("I") and s == "fail" for r, s in rules_of(view, "phones.csv").items())


@pytest.mark.parametrize("path", [" ../x.csv", "../x.csv", "a/ ../b.csv", "x.csv ",
                                  "/abs.csv", "a\\b.csv", "ok/\u202e.csv"])
def test_every_bad_path_is_a_4xx_and_writes_nothing(world, path):
    with nothing_changes(world):
        response = world.stack.api("alice").post("/api/exports", json={
            "project": world.project, "files": [{"path": path}]})
        refused(response, 422)


def test_over_long_title_or_justification_is_refused_not_cut(world):
    with nothing_changes(world):
        refused(world.stack.api("alice").post("/api/exports", json={
            "project": world.project, "title": "t" * 201, "files": [{"path": "t.csv"}]}), 422)
        refused(world.stack.api("alice").post("/api/exports", json={
            "project": world.project,
            "files": [{"path": "t.csv", "justification": "j" * 4001}]}), 422)
