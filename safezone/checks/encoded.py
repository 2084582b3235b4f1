"""Encoded blobs: long base64 / hex runs in text and table cells are decoded and what they
hold is checked (identifiers, pickles, archives, nested encodings); runs that decode to
nothing inspectable, or are too big to decode, are flagged (E002, warn)."""

from __future__ import annotations

import base64
import binascii
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field as default

import pyarrow as pa
import pyarrow.compute as pc

from .filetypes import ARCHIVES, EXECUTABLE, sniff
from .findings import MAX_CELL_FINDINGS, Finding, RuleBook, mask
from .identifiers import scan_text

MAX_WARNINGS = 5  # E002 per column (or per text file): the reviewer needs the where, not all
RUN = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
HEX = re.compile(r"[0-9A-Fa-f]+")
PRINTABLE_SHARE = 0.9


@dataclass
class Budget:
    """Runs decoded so far in one file (``encoded.max_runs`` bounds the work)."""

    runs: int = 0
    decoded_bytes: int = 0
    exhausted: bool = False
    warnings: Counter = default(default_factory=Counter)

    def warn(self, column: str | None) -> bool:
        """Whether one more E002 for ``column`` is worth reporting."""
        self.warnings[column] += 1
        return self.warnings[column] <= MAX_WARNINGS


def _decode(run: str, rules: RuleBook) -> tuple[str, bytes | None]:
    """(encoding, bytes) of a run; bytes None when it does not decode."""
    cfg = rules.encoded
    body = run.rstrip("=")
    if HEX.fullmatch(run) and len(run) % 2 == 0 and len(run) >= cfg["min_hex_chars"]:
        return "hex", binascii.unhexlify(run)
    if len(body) < cfg["min_base64_chars"] or len(body) % 4 == 1:
        return "base64", None
    alphabet = "-_" if ("-" in body or "_" in body) else "+/"
    if ("-" in body or "_" in body) and ("+" in body or "/" in body):
        return "base64", None
    padded = body + "=" * (-len(body) % 4)
    try:
        return "base64", base64.b64decode(padded, altchars=alphabet.encode(), validate=True)
    except (binascii.Error, ValueError):
        return "base64", None


def _looks_encoded(run: str) -> bool:
    """Mixed case and digits (random-looking), or all hex: words and paths are not runs."""
    if HEX.fullmatch(run):
        return True
    return any(c.isupper() for c in run) and any(c.islower() for c in run) \
        and any(c.isdigit() for c in run)


def _as_text(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return text if text and printable >= PRINTABLE_SHARE * len(text) else None


def decoded_findings(where: str, data: bytes, encoding: str, rules: RuleBook, budget: Budget,
                     depth: int, row: int | None = None, column: str | None = None
                     ) -> Iterator[Finding]:
    """What decoded bytes hold: identifiers, pickles, archives, further encodings."""
    kind = sniff("decoded", data)
    if kind in EXECUTABLE:
        yield rules.finding("F005", where, row=row, column=column, kind=f"{encoding} {kind}")
        return
    if kind in ARCHIVES or kind == "xlsx":
        yield rules.finding("F004", where, row=row, column=column,
                            why=f"{kind} hidden in {encoding} text")
        return
    text = _as_text(data)
    if text is None:
        if len(data) >= rules.encoded["binary_warn_bytes"] and budget.warn(column):
            yield rules.finding("E002", where, row=row, column=column,
                                why=f"{encoding} of {len(data)} bytes of {kind} data")
        return
    for match in scan_text(text):
        yield rules.finding(match.rule, where, row=row, column=column,
                            excerpt=f"{encoding}: {mask(match.text)}")
    if depth + 1 < rules.encoded["max_depth"]:
        yield from text_runs(where, text, rules, budget, depth + 1, row, column)


def text_runs(where: str, text: str, rules: RuleBook, budget: Budget, depth: int = 0,
              row: int | None = None, column: str | None = None) -> Iterator[Finding]:
    """Every encoded run in ``text``, decoded and checked."""
    cfg = rules.encoded
    for found in RUN.finditer(text):
        run = found.group()
        if not _looks_encoded(run):
            continue
        if budget.exhausted:
            return
        budget.runs += 1
        if budget.runs > cfg["max_runs"]:
            budget.exhausted = True
            yield rules.finding("E002", where, why=f"more than {cfg['max_runs']} encoded runs")
            return
        if len(run) * 3 // 4 > cfg["max_decoded_bytes"]:
            if budget.warn(column):
                yield rules.finding("E002", where, row=row, column=column,
                                    why=f"a run of {len(run)} characters is too big to decode")
            continue
        encoding, data = _decode(run, rules)
        if data is None:
            if len(run) * 3 // 4 >= cfg["binary_warn_bytes"] and budget.warn(column):
                yield rules.finding("E002", where, row=row, column=column,
                                    why=f"a {len(run)}-character run that does not decode")
            continue
        budget.decoded_bytes += len(data)
        yield from decoded_findings(where, data, encoding, rules, budget, depth, row, column)


def text_encoded_findings(name: str, text: str, rules: RuleBook) -> Iterator[Finding]:
    """Encoded runs in a text file, line by line; one E001 note when any decoded."""
    budget = Budget()
    for line_no, line in enumerate(text.splitlines(), start=1):
        if len(line) >= rules.encoded["min_base64_chars"]:
            yield from text_runs(name, line, rules, budget, row=line_no)
    if budget.decoded_bytes:
        yield rules.finding("E001", name, runs=budget.runs, size=budget.decoded_bytes)


def table_encoded_findings(name: str, table: pa.Table, rules: RuleBook) -> Iterator[Finding]:
    """Encoded runs in text cells (distinct values pre-filtered with RE2)."""
    budget = Budget()
    shortest = rules.encoded["min_base64_chars"]
    for field in table.schema:
        if not (pa.types.is_string(field.type) or pa.types.is_large_string(field.type)):
            continue
        column = table[field.name].combine_chunks()
        if len(column) == 0 or (pc.max(pc.utf8_length(column)).as_py() or 0) < shortest:
            continue
        pattern = f"[A-Za-z0-9+/_-]{{{shortest},}}"
        distinct = pc.unique(column)
        if len(distinct) * 2 < len(column):
            runs = distinct.filter(pc.fill_null(pc.match_substring_regex(distinct, pattern),
                                                False))
            hits = pc.is_in(column, value_set=runs)
        else:
            hits = pc.match_substring_regex(column, pattern)
        reported = 0
        rows = pc.indices_nonzero(pc.fill_null(hits, False)).to_pylist()
        for done, row in enumerate(rows, start=1):
            for finding in text_runs(name, column[row].as_py(), rules, budget, row=row + 1,
                                     column=field.name):
                reported += 1
                yield finding
            if budget.exhausted:
                break
            if reported >= MAX_CELL_FINDINGS:  # the rest are said, not decoded
                if len(rows) > done:
                    yield rules.tally("E002", name, len(rows) - done, field.name,
                                      unexamined=True)
                break
        if budget.exhausted:
            break
    if budget.decoded_bytes:
        yield rules.finding("E001", name, runs=budget.runs, size=budget.decoded_bytes)
