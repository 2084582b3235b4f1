"""Korean identifier detection on a corpus of true cases and near-misses.

Precision and recall are measured and printed in the test summary."""

from __future__ import annotations

import pytest

from safezone.checks.identifiers import brn_valid, classify_rrn, luhn_valid, scan_text

from .support import report_measure


def rrn_with_check(front: str, gender: str, body: str) -> str:
    weights = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
    digits = front + gender + body
    total = sum(int(d) * w for d, w in zip(digits, weights, strict=False))
    check = (11 - total % 11) % 10 if gender not in "5678" else (13 - total % 11) % 10
    return f"{front}-{gender}{body}{check}"


def wrong_check(number: str) -> str:
    return number[:-1] + str((int(number[-1]) + 1) % 10)


# (text, expected rule or None)
TRUE = [
    (rrn_with_check("900101", "1", "23456"), "I001"),
    (rrn_with_check("040229", "4", "12345"), "I001"),  # 29 February of a leap year
    (rrn_with_check("851231", "2", "99999"), "I001"),
    ("주민번호 " + rrn_with_check("770505", "1", "11111").replace("-", ""), "I001"),
    (wrong_check(rrn_with_check("210315", "3", "54321")), "I002"),  # post-2020 random tail
    (rrn_with_check("880808", "5", "12345"), "I003"),
    (rrn_with_check("950101", "6", "00001"), "I003"),
    ("220-81-62517", "I004"),
    ("연락처 010-1234-5678", "I005"),
    ("+82 10 9876 5432", "I005"),
    ("02-312-4567", "I005"),
    ("051-123-4567", "I005"),
    ("M123A4567", "I006"),
    ("여권 M12345678", "I006"),
    ("kim.minjun@example.co.kr", "I007"),
    ("4111 1111 1111 1111", "I008"),
    ("5500-0000-0000-0004", "I008"),
    ("11-23-456789-01", "I009"),
    # other written forms (matched after normalisation)
    (rrn_with_check("900101", "1", "23456").replace("-", " "), "I001"),
    (rrn_with_check("900101", "1", "23456").replace("-", "."), "I001"),
    (rrn_with_check("900101", "1", "23456").translate(
        str.maketrans("0123456789-", "０１２３４５６７８９－")), "I001"),
    ("연락처 ０１０－１２３４－５６７８", "I005"),
    ("010/1234/5678", "I005"),
]
NEAR_MISSES = [
    "991332-1234567",        # month 13
    "900230-1234567",        # 30 February
    "010229-3123456",        # 2001 is not a leap year
    "220-81-62518",          # business number, wrong check digit
    "4111 1111 1111 1112",   # fails Luhn
    "total 1234567890123",   # 13 digits, no valid birth date
    "order 20240101",        # a date
    "version 10.1234.5678",  # not a phone
    "X12345678",             # not a passport letter
    "12-34",                 # too short for anything
    "99-23-456789-01",       # region 99 is no licence region
    "p = 0.0001234",
    "n = 1,234,567,890",     # thousands separators
    "2024.01.15 12:30:45",   # a timestamp
]


def test_corpus_precision_and_recall():
    tp = fp = fn = 0
    for text, rule in TRUE:
        found = {m.rule for m in scan_text(text)}
        if rule in found:
            tp += 1
        else:
            fn += 1
        fp += len(found - {rule})
    for text in NEAR_MISSES:
        fp += len(list(scan_text(text)))
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    report_measure(f"identifier corpus: precision {precision:.3f}, recall {recall:.3f} "
                   f"({len(TRUE)} true cases, {len(NEAR_MISSES)} near-misses)")
    assert recall == 1.0
    assert precision == 1.0


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_are_not_flagged(text):
    assert list(scan_text(text)) == []


def test_check_digit_helpers():
    assert brn_valid("2208162517") and not brn_valid("2208162518")
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert classify_rrn("900101", "1", "2345678") is not None
    assert classify_rrn("900132", "1", "2345678") is None
