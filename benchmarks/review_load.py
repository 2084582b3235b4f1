"""What an export request with many large files costs: the submit call, the time until the
review opens, and one view of the review page — on a real stack (MinIO, control plane,
JupyterHub + proxy) started here.

    .venv/bin/python -m benchmarks.review_load [--files 50] [--mib 4]

The same script runs unchanged against an older checkout (its ``tests/support`` has the
same helpers), which is how the before/after figures in the closing note of issue 9 were
taken: there, submit froze, hashed and checked every file inside the HTTP call and every
page view re-read and re-previewed every frozen file.

Measured here (2 cores, one run each, same machine, same day; the old request limit of
200 MiB bounds the size):

    before (c1271d7)  50 x 4 MiB: submit 2.33 s (HTTP 200), review page 0.80 s
    after             50 x 4 MiB: submit 0.90 s (HTTP 202), review open 5.7 s later,
                      review page 0.36 s (stored previews of up to 1,000 rows each)
    before            50 x 1 MiB: submit 0.94 s, review page 0.48 s
    after             50 x 1 MiB: submit 0.52 s, review page 0.37 s

What differs: "after" checks more (shape, encodings, evidence, previews cut at 1,000 rows
instead of 200), so its review opens later; its page no longer grows with the files.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tests.support import ZONE_NET, browser_session, launch_minio, launch_stack, provision


def table(mib: int) -> bytes:
    """Just under ``mib`` MiB, so 50 x 4 MiB stays within the 200 MiB request limit."""
    row = b"Seoul,M,120\n"
    return b"region,sex,count\n" + row * (((mib << 20) - 64) // len(row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--mib", type=int, default=4)
    args = parser.parse_args()
    ZONE_NET.up()  # the zone bridge the services listen on (root)
    with tempfile.TemporaryDirectory() as tmp:
        minio = launch_minio(Path(tmp))
        stack = launch_stack(Path(tmp), minio)
        try:
            setup = provision(stack, member="alice")
            body = table(args.mib)
            names = [f"part{i:02d}.csv" for i in range(args.files)]
            root = minio.root_s3()
            for name in names:
                root.put_object(Bucket="outbox", Key=f"{setup.project}/alice/{name}", Body=body)
            alice = stack.api("alice")
            rid = alice.post("/api/exports", json={
                "project": setup.project, "files": [{"path": n} for n in names]}).json()["id"]
            start = time.monotonic()
            submitted = alice.post(f"/api/exports/{rid}/submit")
            submit_s = time.monotonic() - start
            if submitted.status_code >= 400:
                raise SystemExit(f"submit refused: {submitted.text}")
            while alice.get(f"/api/exports/{rid}").json()["status"] != "in_review":
                if time.monotonic() - start > 600:
                    raise SystemExit("the review did not open within 10 minutes")
                time.sleep(0.2)
            open_s = time.monotonic() - start
            reviewer = browser_session(stack, "reviewer")
            views = []
            for _ in range(3):
                start = time.monotonic()
                page = reviewer.get(f"pages/review/{rid}")
                views.append(time.monotonic() - start)
            print(f"{args.files} files x {args.mib} MiB: submit call {submit_s:.2f} s "
                  f"(HTTP {submitted.status_code}), review open after {open_s:.2f} s, "
                  f"review page {min(views):.2f} s best of 3 (HTTP {page.status_code}, "
                  f"{len(page.content) / 1024:.0f} KiB)")
        finally:
            stack.hub.stop(timeout=20)
            stack.control_plane.stop()
            minio.process.stop()
            ZONE_NET.down()


if __name__ == "__main__":
    main()
