"""Free text: identifiers line by line (normalised) and encoded runs decoded."""

from __future__ import annotations

from collections.abc import Iterator

from .encoded import text_encoded_findings
from .findings import Finding, RuleBook, mask
from .identifiers import scan_text


def text_findings(name: str, text: str, rules: RuleBook, row_offset: int = 0
                  ) -> Iterator[Finding]:
    """Identifiers (I0xx) and encoded runs (E0xx) in ``text``."""
    for line_no, line in enumerate(text.splitlines(), start=1):
        for match in scan_text(line):
            yield rules.finding(match.rule, name, row=row_offset + line_no,
                                excerpt=mask(match.text))
    yield from text_encoded_findings(name, text, rules)
