"""Identifiers in table cells, whatever their written form: text normalised (NFKC, dashes,
invisible characters), numbers read as digit strings and zero-padded where leading zeros
were lost, and a number split across two adjacent columns."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from itertools import pairwise

import pyarrow as pa
import pyarrow.compute as pc

from .findings import MAX_CELL_FINDINGS, Finding, RuleBook, mask
from .identifiers import DASHES_RE2, INVISIBLE_RE2, PREFILTER, normalise, scan_text

SHORTEST_IDENTIFIER = 6  # "a@b.kr"; every other pattern is longer
SMALLEST_NUMERIC_ID = 10**8  # numbers below this cannot hold a phone, card or RRN
GATE_SAMPLE = 20000  # distinct values looked at to decide whether a padded reading holds
JUNCTION_TRIM = " -./_"
TRIM_RE = r" \-./_"
# Identifiers looked for across a cell boundary: those with a fixed structure. A card number
# (13-19 digits, Luhn) would be matched by one in ten pairs of large adjacent numbers.
JUNCTION_RULES = {"I001", "I002", "I003", "I004", "I005", "I009"}


def _nonzero(mask_array: pa.Array) -> list[int]:
    return pc.indices_nonzero(pc.fill_null(mask_array, False)).to_pylist()


def normalise_array(column: pa.Array) -> pa.Array:
    """The vectorised part of ``identifiers.normalise`` (NFKC, dashes, invisible chars)."""
    if len(column) == 0 or pc.all(pc.fill_null(pc.string_is_ascii(column), True)).as_py():
        return column
    column = pc.utf8_normalize(column, "NFKC")
    column = pc.replace_substring_regex(column, INVISIBLE_RE2, "")
    return pc.replace_substring_regex(column, DASHES_RE2, "-")


def _candidate_rows(column: pa.Array) -> list[int]:
    """Rows whose text may hold an identifier: length and distinct-value shortcuts first,
    then the RE2 pre-filter (over distinct values when the column repeats itself)."""
    if len(column) == 0 or (pc.max(pc.utf8_length(column)).as_py() or 0) < SHORTEST_IDENTIFIER:
        return []
    distinct = pc.unique(column)
    if len(distinct) * 2 < len(column):
        suspicious = distinct.filter(pc.fill_null(
            pc.match_substring_regex(distinct, PREFILTER), False))
        if len(suspicious) == 0:
            return []
        return _nonzero(pc.is_in(column, value_set=suspicious))
    return _nonzero(pc.match_substring_regex(column, PREFILTER))


def _as_integers(column: pa.Array) -> pa.Array | None:
    """Integer columns, and float columns holding only whole numbers, as int64."""
    if pa.types.is_integer(column.type):
        return column
    if not pa.types.is_floating(column.type) or column.null_count == len(column):
        return None
    finite = pc.all(pc.fill_null(pc.is_finite(column), True)).as_py()
    if not finite or (pc.max(pc.abs(column)).as_py() or 0) >= 2**62:
        return None
    whole = pc.all(pc.fill_null(pc.equal(pc.floor(column), column), True)).as_py()
    return pc.cast(column, pa.int64()) if whole else None


def _plain(column: pa.Array) -> pa.Array:
    """Dictionary-encoded and large strings as plain strings (one kernel type)."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_large_string(column.type):
        column = column.cast(pa.string())
    return column


def _text_of(column: pa.Array) -> pa.Array | None:
    """The column as normalised text to scan, or None when it cannot hold an identifier."""
    column = _plain(column)
    if pa.types.is_string(column.type):
        return normalise_array(column)
    integers = _as_integers(column)
    if integers is not None:
        largest = pc.max(pc.abs(integers)).as_py() if len(integers) else None
        if largest is None or largest < SMALLEST_NUMERIC_ID:
            return None
        return pc.cast(integers, pa.string())
    if pa.types.is_floating(column.type) and (pc.max(pc.abs(column)).as_py() or 0) >= 10**5:
        return pc.cast(column, pa.string())  # "900101.1234568" read as a float
    return None


def _padded_forms(digits: pa.Array) -> list[pa.Array]:
    """Readings of digit strings whose leading zeros were lost: RRNs of people born
    2000-2009 (13 digits) and phone numbers (a leading 0)."""
    lengths = pc.utf8_length(digits)
    rrn = pc.if_else(pc.and_(pc.greater_equal(lengths, 10), pc.less_equal(lengths, 12)),
                     pc.utf8_lpad(digits, 13, "0"), pa.scalar(None, pa.string()))
    phone = pc.if_else(pc.and_(pc.greater_equal(lengths, 9), pc.less_equal(lengths, 10)),
                       pc.binary_join_element_wise(pa.scalar("0"), digits, ""),
                       pa.scalar(None, pa.string()))
    return [rrn, phone]


def _gate(form: pa.Array, share: float) -> bool:
    """Whether at least ``share`` of the column's values read this way ARE identifiers."""
    present = len(form) - form.null_count
    if present == 0:
        return False
    distinct = pc.unique(form.drop_null())[:GATE_SAMPLE]
    hits = [v for v in distinct.to_pylist() if any(True for _ in scan_text(v))]
    if not hits:
        return False
    sample = pc.is_in(form, value_set=distinct)
    looked = pc.sum(pc.cast(sample, pa.int64())).as_py() or 0
    found = pc.sum(pc.cast(pc.is_in(form, value_set=pa.array(hits)), pa.int64())).as_py() or 0
    return looked > 0 and found / looked >= share


SCAN_ROWS = MAX_CELL_FINDINGS * 4  # candidate rows of one column examined one by one


def _scan_rows(name: str, column: str, text: pa.Array, rows: list[int], rules: RuleBook
               ) -> Iterator[Finding]:
    found: Counter[str] = Counter()
    for row in rows[:SCAN_ROWS]:
        value = text[row].as_py()
        for match in scan_text(value) if value else ():
            found[match.rule] += 1
            yield rules.finding(match.rule, name, row=row + 1, column=column,
                                excerpt=mask(match.text))
    yield from _unexamined(rules, name, column, found, len(rows) - SCAN_ROWS)


def _unexamined(rules: RuleBook, name: str, column: str, found: Counter[str], rest: int
                ) -> Iterator[Finding]:
    """Candidate rows past the bound, said under the rule found most in the column (rows
    that matched the pre-filter, not known hits); none when nothing was found."""
    if rest > 0 and found:
        yield rules.tally(found.most_common(1)[0][0], name, rest, column, unexamined=True)


# column name, its text (string columns) or its integers (numeric columns)
Part = tuple[str, pa.Array | None, pa.Array | None]


def _matching(column: pa.Array, pattern: str) -> pa.Array:
    """match_substring_regex, over the distinct values when the column repeats itself."""
    distinct = pc.unique(column)
    if len(distinct) * 2 >= len(column):
        return pc.fill_null(pc.match_substring_regex(column, pattern), False)
    hits = distinct.filter(pc.fill_null(pc.match_substring_regex(distinct, pattern), False))
    return pc.is_in(column, value_set=hits)


def _between(values: pa.Array, low: int, high: int) -> pa.Array:
    return pc.and_(pc.greater_equal(values, low), pc.less_equal(values, high))


def _junction_rows(left: Part, right: Part) -> pa.Array | None:
    """Rows where an identifier could straddle the two cells: the left cell ends with a
    digit and the right one starts with one; two integers must have the shape of the two
    halves of an RRN (6 and 7 digits, a month and a day). None when no row can."""
    a, b = left[2], right[2]
    if a is not None and b is not None:
        a, b = pc.cast(a, pa.int64()), pc.cast(b, pa.int64())
        month = pc.subtract(pc.divide(a, 100), pc.multiply(pc.divide(a, 10000), 100))
        day = pc.subtract(a, pc.multiply(pc.divide(a, 100), 100))
        mask = pc.and_(pc.and_(pc.less(a, 10**6), _between(b, 10**6, 10**7 - 1)),
                       pc.and_(_between(month, 1, 12), _between(day, 1, 31)))
    else:
        ends = pc.is_valid(a) if a is not None else \
            _matching(left[1], f"\\p{{Nd}}[{TRIM_RE}]*$")
        starts = pc.is_valid(b) if b is not None else \
            _matching(right[1], f"^[{TRIM_RE}]*\\p{{Nd}}")
        mask = pc.and_(ends, starts)
    rows = pc.indices_nonzero(pc.fill_null(mask, False))
    return rows if len(rows) else None


def _part_text(part: Part, rows: pa.Array, as_left: bool) -> pa.Array:
    """The cells of ``rows`` as text; integers as a left part zero-padded to 6 digits (the
    birth date of an RRN that lost its leading zero)."""
    if part[2] is None:
        return part[1].take(rows)
    text = pc.cast(part[2].take(rows), pa.string())
    if as_left:
        text = pc.if_else(pc.less(pc.utf8_length(text), 6), pc.utf8_lpad(text, 6, "0"), text)
    return text


def _junction_findings(name: str, left: Part, right: Part, rules: RuleBook
                       ) -> Iterator[Finding]:
    """An identifier whose parts sit in two adjacent cells of a row."""
    rows = _junction_rows(left, right)
    if rows is None:
        return
    a = pc.utf8_rtrim(_part_text(left, rows, True), characters=JUNCTION_TRIM)
    b = pc.utf8_ltrim(_part_text(right, rows, False), characters=JUNCTION_TRIM)
    joined = pc.binary_join_element_wise(a, b, "-")
    candidates = _candidate_rows(joined)
    found: Counter[str] = Counter()
    column = f"{left[0]}|{right[0]}"
    for i in candidates[:SCAN_ROWS]:
        head = normalise(a[i].as_py())
        text = head + "-" + normalise(b[i].as_py())
        for match in scan_text(text):
            if match.rule in JUNCTION_RULES and match.start < len(head) < match.end - 1:
                found[match.rule] += 1
                yield rules.finding(match.rule, name, row=rows[i].as_py() + 1,
                                    column=column, excerpt=mask(match.text))
    yield from _unexamined(rules, name, column, found, len(candidates) - SCAN_ROWS)


def _junction_part(name: str, column: pa.Array) -> Part | None:
    """A column that may hold part of an identifier: text with digits, or integers >= 0."""
    column = _plain(column)
    if pa.types.is_string(column.type):
        text = normalise_array(column)
        return (name, text, None) if pc.any(_matching(text, r"\p{Nd}")).as_py() else None
    integers = _as_integers(column)
    if integers is None or len(integers) == integers.null_count or \
            pc.min(integers).as_py() < 0:
        return None
    return name, None, integers


def identifier_findings(name: str, table: pa.Table, rules: RuleBook) -> Iterator[Finding]:
    """Scan text cells, numbers (also zero-padded), adjacent cell pairs and headers."""
    share = rules.identifiers.get("numeric_padding_min_share", 0.5)
    parts: list[Part | None] = []
    for field in table.schema:
        column = table[field.name].combine_chunks()
        text = _text_of(column)
        if text is not None:
            yield from _scan_rows(name, field.name, text, _candidate_rows(text), rules)
            if _as_integers(column) is not None:
                for form in _padded_forms(text):
                    if _gate(form, share):
                        yield from _scan_rows(name, field.name, form,
                                              _nonzero(pc.is_valid(form)), rules)
        parts.append(_junction_part(field.name, column))
    for left, right in pairwise(parts):
        if left is not None and right is not None:
            yield from _junction_findings(name, left, right, rules)
    for field in table.schema:  # a header can be an identifier too
        for match in scan_text(field.name):
            yield rules.finding(match.rule, name, row=0, column=field.name,
                                excerpt=mask(match.text))
