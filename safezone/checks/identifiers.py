"""Korean personal identifiers and other direct identifiers in free text.

Formats and check digits (see docs): resident registration numbers (RRN) carry a check
digit only if issued before October 2020, so a well-formed number with a real birth date
and a wrong check digit is still reported, as a *possible* RRN.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import phonenumbers

WEIGHTS = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
CENTURY = {"1": 1900, "2": 1900, "5": 1900, "6": 1900, "3": 2000, "4": 2000, "7": 2000,
           "8": 2000, "9": 1800, "0": 1800}

# Text is normalised first (see normalise): full-width and other Unicode digits become ASCII,
# every dash becomes "-", invisible characters go. Separators: none, "-", space, ".", "/", "_".
SEP = r"[-\s./_·:]?"
# Boundaries exclude ASCII letters too: a hex digest or an ID code is not a phone number.
RRN = re.compile(r"(?<![0-9A-Za-z-])(\d{6})" + SEP + r"([0-9])(\d{6})(?![0-9A-Za-z-])")
BRN = re.compile(r"(?<![0-9A-Za-z-])(\d{3})-(\d{2})-(\d{5})(?![0-9A-Za-z-])")
PHONE = re.compile(
    r"(?<![0-9A-Za-z+])(?:\+82[-\s]?|0)(?:1[016789]|2|[3-6][1-5])[-\s./_)]?\d{3,4}[-\s./_]?\d{4}"
    r"(?![0-9A-Za-z])")
PASSPORT = re.compile(r"(?<![A-Z0-9])[MSROD](?:\d{3}[A-Z]\d{4}|\d{8})(?![A-Z0-9])")
# Starts only where a local part can start and is bounded (RFC 5321: 64), so a long run of
# letters without "@" costs linear time, not quadratic.
EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,255}"
                   r"\.[A-Za-z]{2,}")
CARD = re.compile(r"(?<![0-9A-Za-z])(?:\d[ -]?){12,18}\d(?![0-9A-Za-z])")
LICENCE = re.compile(r"(?<![0-9A-Za-z])(1[1-9]|2[0-6]|28)-(\d{2})-(\d{6})-(\d{2})(?![0-9A-Za-z])")
# One cheap pre-filter for vectorised scans over NORMALISED text (RE2 syntax: no
# look-arounds); \p{Nd} so that digits NFKC leaves alone (Arabic-Indic ...) still pass.
PREFILTER = (r"\d{6}[-\s./_·:]?\d{7}|\d{3}-\d{2}-\d{5}"
             r"|(\+82|0)[-\s]?\d{1,2}[-\s./_)]?\d{3,4}[-\s./_]?\d{4}"
             r"|[MSROD]\d{3}[A-Z0-9]\d{4}|@[A-Za-z0-9.-]+\.[A-Za-z]{2}|(\d[ -]?){12,18}\d"
             r"|\d{2}-\d{2}-\d{6}-\d{2}").replace(r"\d", r"\p{Nd}")
DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"
INVISIBLE = "\u00ad\u200b\u200c\u200d\u2060\ufeff"
# The same normalisation for Arrow arrays (the non-NFKC digit folding happens in Python).
INVISIBLE_RE2 = "[" + "".join(f"\\x{{{ord(c):04x}}}" for c in INVISIBLE) + "]"
DASHES_RE2 = "[" + "".join(f"\\x{{{ord(c):04x}}}" for c in DASHES) + "]"
_FOLD = str.maketrans({**{c: "-" for c in DASHES}, **{c: None for c in INVISIBLE}})


def normalise(text: str) -> str:
    """NFKC (full-width digits and letters), any Unicode decimal digit as ASCII, every dash
    as "-", invisible characters removed: identifiers are matched in this form."""
    text = unicodedata.normalize("NFKC", text).translate(_FOLD)
    if text.isascii():
        return text
    return "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() and not ch.isascii() else ch
                   for ch in text)


@dataclass(frozen=True)
class Match:
    rule: str  # rule id in rules.yaml
    text: str
    confidence: float
    start: int = 0  # span in the normalised text
    end: int = 0


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
    """Every identifier in ``text`` (normalised first); card numbers need Luhn, BRNs their
    check digit. Spans refer to ``normalise(text)``."""
    text = normalise(text)
    claimed: list[tuple[int, int]] = []

    def free(span: tuple[int, int]) -> bool:
        return all(span[1] <= a or span[0] >= b for a, b in claimed)

    for m in RRN.finditer(text):
        found = classify_rrn(*m.groups())
        if found:
            claimed.append(m.span())
            yield Match(found.rule, found.text, found.confidence, *m.span())
    for m in LICENCE.finditer(text):
        if free(m.span()):
            claimed.append(m.span())
            yield Match("I009", m.group(), 0.8, *m.span())
    for m in BRN.finditer(text):
        if free(m.span()) and brn_valid("".join(m.groups())):
            claimed.append(m.span())
            yield Match("I004", m.group(), 0.9, *m.span())
    for m in PHONE.finditer(text):
        if free(m.span()) and _phone_valid(m.group()):
            claimed.append(m.span())
            yield Match("I005", m.group(), 0.9, *m.span())
    for m in PASSPORT.finditer(text):
        if free(m.span()):
            claimed.append(m.span())
            yield Match("I006", m.group(), 0.7, *m.span())
    for m in EMAIL.finditer(text):
        claimed.append(m.span())
        yield Match("I007", m.group(), 0.95, *m.span())
    for m in CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if free(m.span()) and 13 <= len(digits) <= 19 and luhn_valid(digits):
            claimed.append(m.span())
            yield Match("I008", m.group(), 0.85, *m.span())
