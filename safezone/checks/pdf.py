"""PDF: text extracted with pypdf and scanned; whatever the checks cannot see (images,
attachments, active content, earlier revisions, pages without text, encryption) makes the
file fail (F009), so a reviewer must look and override."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .findings import Finding, RuleBook
from .text import text_findings

ACTIVE = ("/JS", "/JavaScript", "/Launch", "/RichMedia", "/XFA", "/SubmitForm", "/GoToR")
ATTACHED = ("/EmbeddedFile", "/EmbeddedFiles", "/FileAttachment", "/EF")
INLINE_IMAGE = re.compile(rb"(?:^|\s)BI\s+/")


@dataclass
class PdfText:
    """Extracted text per page and the reasons the PDF is not fully inspectable."""

    pages: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.pages)


def extract(data: bytes, rules: RuleBook) -> PdfText:
    """Text of every page (bounded by ``pdf.max_pages``) and what could not be inspected."""
    from pypdf import PdfReader

    out = PdfText()
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    if data.count(b"%%EOF") > 1:
        out.problems.append("earlier revisions (incremental updates)")
    tail = data[data.rfind(b"%%EOF") + 5:] if b"%%EOF" in data else data
    if tail.strip(b"\r\n\t \x00"):
        out.problems.append("bytes after the end of the file")
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            out.problems.append("encrypted")
            return out
        pages = reader.pages
        if len(pages) > rules.pdf["max_pages"]:
            out.problems.append(f"{len(pages)} pages (limit {rules.pdf['max_pages']})")
        for number, page in enumerate(pages[:rules.pdf["max_pages"]], start=1):
            out.pages.append(_page_text(page, number, out.problems))
        out.problems.extend(_object_problems(reader, rules.pdf["max_objects"]))
    except Exception as exc:  # pypdf cannot read it: nothing was inspected
        out.problems.append(f"unreadable ({str(exc)[:120]})")
    return out


def _page_text(page: Any, number: int, problems: list[str]) -> str:
    try:
        text = page.extract_text() or ""
    except Exception:
        problems.append(f"page {number}: text cannot be extracted")
        return ""
    if not text.strip():
        problems.append(f"page {number} has no extractable text")
    contents = page.get_contents()
    if contents is not None and INLINE_IMAGE.search(contents.get_data()):
        problems.append(f"page {number} has an inline image")
    return text


def _object_problems(reader: Any, limit: int) -> list[str]:
    """Every object of the file (also those no page refers to): images, attachments,
    active content."""
    size = int(reader.trailer.get("/Size", 0))
    found: set[str] = set()
    if size > limit:
        found.add(f"{size} objects (limit {limit})")
    for number in range(1, min(size, limit)):
        try:
            obj = reader.get_object(number)
        except Exception:
            continue
        if not hasattr(obj, "keys"):
            continue
        keys = set(obj.keys())
        if obj.get("/Subtype") == "/Image":
            found.add("images")
        if keys & set(ATTACHED) or obj.get("/Type") in ATTACHED or \
                obj.get("/Subtype") in ATTACHED:
            found.add("attachments")
        if keys & set(ACTIVE) or obj.get("/S") in ACTIVE or "/AcroForm" in keys:
            found.add("active content or forms")
    return sorted(found)


def pdf_findings(name: str, extracted: PdfText, rules: RuleBook) -> Iterator[Finding]:
    """Identifiers in the text; F009 when anything could not be inspected."""
    yield from text_findings(name, extracted.text, rules)
    if extracted.problems:
        yield rules.finding("F009", name, kind="PDF", why="; ".join(extracted.problems[:5]))
