"""A raw file larger than the memory the run is allowed goes through in bounded memory.

The run is the real CLI in a child process, reading from and writing to real MinIO; its
peak resident memory is the kernel's high-water mark of that process (VmHWM).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time

import numpy as np

from safezone import datasets
from safezone.permissions import STEWARD_SCOPE, Identity

from .support import PIPELINE_KEY, report_measure, steward_env, unique

STEWARD = Identity("steward", "user", frozenset({STEWARD_SCOPE}))
BUDGET = 448 << 20  # peak RSS the run may use (≈150 MiB of it is the imports; measured
# 300-370 MiB, the spread coming from allocator and thread timing)
ROWS_PER_CHUNK = 200_000
# The CLI, reporting its own high-water RSS at exit. (A parent's rusage of the child would
# include the parent's pages from before the exec.)
MEASURED_CLI = """
import atexit, os, sys
def peak():
    with open("/proc/self/status") as status, open(os.environ["PEAK_FILE"], "w") as out:
        out.write(next(line for line in status if line.startswith("VmHWM")))
atexit.register(peak)
sys.argv[0] = "safezone"
from safezone.cli import main
main()
"""
SIDO = np.array(["서울특별시", "부산광역시", "대구광역시", "인천광역시", "경기도",
                 "강원특별자치도"])
RECIPE = """
version: 1
k: 5
columns:
  record_id: {technique: delete}
  birth_date: {technique: generalise, to: age_band, reference_year: 2024, width: 10,
               role: quasi_identifier}
  sido: {technique: keep, role: quasi_identifier}
  sex: {technique: keep, role: quasi_identifier}
  diagnosis: {technique: keep, role: sensitive}
  cost_krw: {technique: generalise, to: range, width: 500000}
  note: {technique: delete}
"""


class GeneratedCsv(io.RawIOBase):
    """A synthetic raw CSV of ``chunks`` × ROWS_PER_CHUNK rows, made as it is read."""

    def __init__(self, chunks: int) -> None:
        self.chunks, self.made, self.buffer, self.size = chunks, 0, b"", 0
        self.buffer = b"record_id,birth_date,sido,sex,diagnosis,cost_krw,note\n"

    def readable(self) -> bool:
        return True

    def _chunk(self) -> bytes:
        rng = np.random.default_rng(self.made)
        n, start = ROWS_PER_CHUNK, self.made * ROWS_PER_CHUNK
        years = rng.integers(1940, 2005, n).astype(str)
        lines = [f"R{start + i:012d},{y}-0{i % 9 + 1}-1{i % 9},{s},{'MF'[i % 2]},D{d:02d},{c},"
                 "free text written at the visit desk"
                 for i, (y, s, d, c) in enumerate(zip(years, rng.choice(SIDO, n),
                                                      rng.integers(0, 12, n),
                                                      rng.integers(0, 9_000_000, n),
                                                      strict=True))]
        self.made += 1
        return ("\n".join(lines) + "\n").encode()

    def readinto(self, target) -> int:
        while len(self.buffer) < len(target) and self.made < self.chunks:
            self.buffer += self._chunk()
        count = min(len(target), len(self.buffer))
        target[:count], self.buffer = self.buffer[:count], self.buffer[count:]
        self.size += count
        return count


def test_file_larger_than_the_allowed_memory_runs_in_bounded_memory(zone, tmp_path):
    raw = unique("raw-big")
    datasets.register_dataset(zone, STEWARD, raw, "raw")
    source = GeneratedCsv(chunks=36)  # 7.2 M rows, 624 MiB
    zone.broker.s3.put_object(raw, "big.csv", source, length=-1, part_size=32 << 20)
    assert source.size > BUDGET * 1.25, source.size
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    (tmp_path / "key").write_bytes(PIPELINE_KEY)
    env = steward_env(zone)
    dataset = unique("deid-big")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", MEASURED_CLI, "deid", "run", "--recipe",
         str(tmp_path / "recipe.yaml"), "--input", f"{raw}/big.csv", "--dataset", dataset,
         "--key-file", str(tmp_path / "key")],
        env={**env, "PEAK_FILE": str(tmp_path / "peak")}, capture_output=True, text=True,
        timeout=600)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-2000:]
    facts = json.loads(done.stdout)
    assert facts["rows_in"] == 36 * ROWS_PER_CHUNK and facts["k_achieved"] >= 5
    peak = int((tmp_path / "peak").read_text().split()[1]) * 1024  # "VmHWM: N kB"
    report_measure(f"deid run on a {source.size / 2**20:.0f} MiB raw CSV "
                   f"({facts['rows_in']:,} rows): peak RSS {peak / 2**20:.0f} MiB "
                   f"(budget {BUDGET / 2**20:.0f} MiB), {elapsed:.1f} s, "
                   f"{source.size / 2**20 / elapsed:.0f} MiB/s over two passes")
    assert peak < BUDGET < source.size
