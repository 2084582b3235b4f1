"""Korean personal identifiers and other direct identifiers in free text.

Formats and check digits (see docs): resident registration numbers (RRN) carry a check
digit only if issued before October 2020, so a well-formed number with a real birth date
and a wrong check digit is still reported, as a *possible* RRN.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import phonenumbers

WEIGHTS = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
CENTURY = {"1": 1900, "2": 1900, "5": 1900, "6": 1900, "3": 2000, "4": 2000, "7": 2000,
           "8": 2000, "9": 1800, "0": 1800}

# Boundaries exclude ASCII letters too: a hex digest or an ID code is not a phone number.
RRN = re.compile(r"(?<![0-9A-Za-z-])(\d{6})-?([0-9])(\d{6})(?![0-9A-Za-z-])")
BRN = re.compile(r"(?<![0-9A-Za-z-])(\d{3})-(\d{2})-(\d{5})(?![0-9A-Za-z-])")
PHONE = re.compile(
    r"(?<![0-9A-Za-z+])(?:\+82[-\s]?|0)(?:1[016789]|2|[3-6][1-5])[-\s.)]?\d{3,4}[-\s.]?\d{4}"
    r"(?![0-9A-Za-z])")
PASSPORT = re.compile(r"(?<![A-Z0-9])[MSROD](?:\d{3}[A-Z]\d{4}|\d{8})(?![A-Z0-9])")
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
CARD = re.compile(r"(?<![0-9A-Za-z])(?:\d[ -]?){12,18}\d(?![0-9A-Za-z])")
LICENCE = re.compile(r"(?<![0-9A-Za-z])(1[1-9]|2[0-6]|28)-(\d{2})-(\d{6})-(\d{2})(?![0-9A-Za-z])")
# One cheap pre-filter for vectorised scans (RE2 syntax: no look-arounds).
PREFILTER = (r"\d{6}-?\d{7}|\d{3}-\d{2}-\d{5}|(\+82|0)[-\s]?\d{1,2}[-\s.)]?\d{3,4}[-\s.]?\d{4}"
             r"|[MSROD]\d{3}[A-Z0-9]\d{4}|@[A-Za-z0-9.-]+\.[A-Za-z]{2}|(\d[ -]?){12,18}\d"
             r"|\d{2}-\d{2}-\d{6}-\d{2}")


@dataclass(frozen=True)
class Match:
    rule: str  # rule id in rules.yaml
    text: str
    confidence: float


def _weighted(digits: str) -> int:
    return sum(int(d) * w for d, w in zip(digits[:12], WEIGHTS, strict=False))


def _birth_date_exists(yymmdd: str, gender_digit: str) -> bool:
    try:
        date(CENTURY[gender_digit] + int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:6]))
    except ValueError:
        return False
    return True


def classify_rrn(front: str, gender: str, tail: str) -> Match | None:
    """RRN (I001), possible RRN (I002), foreign registration number (I003), or nothing."""
    if not _birth_date_exists(front, gender):
        return None
    digits = front + gender + tail
    total = _weighted(digits)
    text = f"{front}-{gender}{tail}"
    if gender in "5678":
        if (13 - total % 11) % 10 == int(digits[12]):
            return Match("I003", text, 0.95)
        return Match("I002", text, 0.6)
    if (11 - total % 11) % 10 == int(digits[12]):
        return Match("I001", text, 0.97)
    return Match("I002", text, 0.6)


def brn_valid(digits: str) -> bool:
    weights = (1, 3, 7, 1, 3, 7, 1, 3)
    s = sum(int(d) * w for d, w in zip(digits[:8], weights, strict=True))
    s += int(digits[8]) * 5 // 10 + int(digits[8]) * 5
    return (10 - s % 10) % 10 == int(digits[9])


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _phone_valid(text: str) -> bool:
    try:
        number = phonenumbers.parse(text, "KR")
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number)


def scan_text(text: str) -> Iterator[Match]:
    """Every identifier in ``text``; card numbers need Luhn, BRNs their check digit."""
    claimed: list[tuple[int, int]] = []

    def free(span: tuple[int, int]) -> bool:
        return all(span[1] <= a or span[0] >= b for a, b in claimed)

    for m in RRN.finditer(text):
        found = classify_rrn(*m.groups())
        if found:
            claimed.append(m.span())
            yield found
    for m in LICENCE.finditer(text):
        if free(m.span()):
            claimed.append(m.span())
            yield Match("I009", m.group(), 0.8)
    for m in BRN.finditer(text):
        if free(m.span()) and brn_valid("".join(m.groups())):
            claimed.append(m.span())
            yield Match("I004", m.group(), 0.9)
    for m in PHONE.finditer(text):
        if free(m.span()) and _phone_valid(m.group()):
            claimed.append(m.span())
            yield Match("I005", m.group(), 0.9)
    for m in PASSPORT.finditer(text):
        if free(m.span()):
            claimed.append(m.span())
            yield Match("I006", m.group(), 0.7)
    for m in EMAIL.finditer(text):
        claimed.append(m.span())
        yield Match("I007", m.group(), 0.95)
    for m in CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if free(m.span()) and 13 <= len(digits) <= 19 and luhn_valid(digits):
            claimed.append(m.span())
            yield Match("I008", m.group(), 0.85)
