"""Cheap denial of service: the cost of a request must not follow what the attacker
controls — file size, image pixels, number of files, number of earlier releases."""

from __future__ import annotations

import struct
import time
import zlib

from safezone.checks.runner import table_index
from safezone.models import ExportRequest, ReleasedIndex

from ..support import report_measure, submit_and_wait, wait_for_checks
from .world import CLEAN_TABLE

MiB = 1 << 20


def put(world, name: str, data: bytes) -> None:
    world.stack.minio.root_s3().put_object(Bucket="outbox",
                                           Key=f"{world.project}/alice/{name}", Body=data)


def timed_submit(world, *names: str) -> tuple[float, str]:
    alice = world.stack.api("alice")
    rid = alice.post("/api/exports", json={
        "project": world.project, "files": [{"path": n} for n in names]}).json()["id"]
    start = time.monotonic()
    response = alice.post(f"/api/exports/{rid}/submit")
    took = time.monotonic() - start
    assert response.status_code == 202 and response.json()["status"] == "checking"
    return took, rid


def big_table(size: int) -> bytes:
    row = b"Seoul,M,120\n"
    return b"region,sex,count\n" + row * (size // len(row))


def test_submit_time_does_not_follow_file_size(world):
    put(world, "small.csv", CLEAN_TABLE)
    put(world, "large.csv", big_table(49 * MiB))
    small, _ = timed_submit(world, "small.csv")
    large, rid = timed_submit(world, "large.csv")
    report_measure(f"submit call: {small * 1000:.0f} ms for 70 B, {large * 1000:.0f} ms for "
                   "49 MiB (checks run afterwards in the worker)")
    assert large < 2.0 and large < small * 5 + 0.5
    view = wait_for_checks(world.stack.api("alice"), rid, timeout=180)
    assert view["status"] == "in_review" and view["files"][0]["size"] > 49 * MiB


def test_review_page_with_fifty_large_files_reads_only_stored_previews(world):
    names = [f"part{i:02d}.csv" for i in range(50)]
    body = big_table(4 * MiB - 64)  # 50 x 4 MiB: the whole 200 MiB request limit
    for name in names:
        put(world, name, body)
    _, rid = timed_submit(world, *names)
    start = time.monotonic()
    view = wait_for_checks(world.stack.api("alice"), rid, timeout=600)
    checks = time.monotonic() - start
    assert view["status"] == "in_review"
    reviewer = world.clients["reviewer-browser"]
    timings = []
    for _ in range(3):
        start = time.monotonic()
        page = reviewer.get(f"/pages/review/{rid}")
        timings.append(time.monotonic() - start)
        assert page.status_code == 200 and "part49.csv" in page.text
    best = min(timings)
    report_measure(f"review page, 50 files x 4 MiB: {best * 1000:.0f} ms (best of 3); "
                   f"checks in the worker took {checks:.1f} s")
    assert best < 3.0
    assert "first 200 of" in page.text or "200" in page.text  # previews say they were cut


def _huge_png(side: int) -> bytes:
    """A valid side x side greyscale PNG of one colour: a few KiB on disk, gigapixels when
    decoded."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    compressor = zlib.compressobj(9)
    row = b"\0" + b"\0" * side
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data)
            + chunk(b"IEND", b""))


def test_gigapixel_image_is_refused_without_being_decoded(world):
    put(world, "huge.png", _huge_png(20000))
    _, rid = timed_submit(world, "huge.png")
    start = time.monotonic()
    view = wait_for_checks(world.stack.api("alice"), rid, timeout=120)
    took = time.monotonic() - start
    entry = view["check_record"]["files"][0]
    assert entry["worst"] == "fail"
    report_measure(f"20000x20000 PNG (400 Mpx): checked in {took:.1f} s, refused")
    assert took < 30
    page = world.clients["reviewer-browser"].get(f"/pages/review/{rid}")
    assert page.status_code == 200


def test_checks_with_a_thousand_earlier_releases_stay_bounded(world):
    stack = world.stack
    index = table_index("old.csv", b"region,count\nSeoul,120\nBusan,130\n")
    old = world.requests.get("released") or world.request_in("released")
    with stack.zone.sessions() as db, db.begin():
        project_id = db.get(ExportRequest, old).project_id
        db.add_all(ReleasedIndex(project_id=project_id, request_id=old, path=f"old{i}.csv",
                                 index=index[0], released_at=stack.zone.now())
                   for i in range(1000))
    put(world, "new.csv", b"region,count\nSeoul,121\nBusan,130\n")
    start = time.monotonic()
    view = submit_and_wait(stack.api("alice"), world.draft("new.csv")["id"])
    took = time.monotonic() - start
    report_measure(f"checks against 1,000 earlier releases: {took:.2f} s from submit to review")
    assert view["status"] == "in_review" and took < 10
    rules = {x["rule"] for x in view["check_record"]["files"][0]["findings"]}
    assert "T009" in rules  # Seoul 121 - 120 = 1: the differencing rule still works
