"""What an export request with many large files costs: the submit call, the time until the
review opens, and one view of the review page — on a real stack (MinIO, control plane,
JupyterHub + proxy) started here.

    .venv/bin/python -m benchmarks.review_load [--files 50] [--mib 4]

The same script runs unchanged against an older checkout (its ``tests/support`` has the
same helpers), which is how the before/after figures in the closing note of issue 9 were
taken: there, submit froze, hashed and checked every file inside the HTTP call and every
page view re-read and re-previewed every frozen file.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tests.support import browser_session, launch_minio, launch_stack, provision


def table(mib: int) -> bytes:
    row = b"Seoul,M,120\n"
    return b"region,sex,count\n" + row * ((mib << 20) // len(row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--mib", type=int, default=4)
    args = parser.parse_args()
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
            while alice.get(f"/api/exports/{rid}").json()["status"] != "in_review":
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


if __name__ == "__main__":
    main()
