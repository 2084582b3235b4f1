"""Checks of non-table content: archives, images, notebooks."""

from __future__ import annotations

import io
import json
import re
import struct
import zipfile
from collections.abc import Iterator

from .findings import Finding, RuleBook, mask
from .identifiers import scan_text

TAGS = re.compile(r"<[^>]+>")


def archive_problem(data: bytes, limits: dict) -> str | None:
    """Why a ZIP container is unsafe to open, reading at most the limits (no bomb expands)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        return f"corrupt archive ({exc})"
    members = archive.infolist()
    if len(members) > limits["max_members"]:
        return f"{len(members)} members (limit {limits['max_members']})"
    budget = limits["max_expanded_bytes"]
    for info in members:
        if info.filename.startswith("/") or ".." in info.filename.split("/"):
            return f"unsafe member path {info.filename!r}"
        if info.file_size > budget or (
                info.compress_size and info.file_size / info.compress_size > limits["max_ratio"]):
            return f"member {info.filename!r} expands too far (zip bomb?)"
        with archive.open(info) as member:  # the declared size can lie: count real bytes
            while chunk := member.read(1 << 16):
                budget -= len(chunk)
                if budget < 0:
                    return "expanded size over the limit (zip bomb?)"
    return None


def png_findings(name: str, data: bytes, rules: RuleBook) -> Iterator[Finding]:
    """Text chunks (tEXt/iTXt/zTXt, eXIf) and bytes after IEND."""
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = kind.decode("latin-1")
        if chunk in {"tEXt", "iTXt", "zTXt", "eXIf"}:
            yield rules.finding("F006", name, chunk=chunk)
            body = data[pos + 8:pos + 8 + length].decode("utf-8", "replace")
            yield from text_findings(name, body, rules)
        pos += 12 + length
        if chunk == "IEND":
            if pos < len(data):
                yield rules.finding("F007", name)
            return


def jpeg_findings(name: str, data: bytes, rules: RuleBook) -> Iterator[Finding]:
    if b"Exif\x00\x00" in data[:65536]:
        yield rules.finding("F006", name, chunk="EXIF")
    end = data.rfind(b"\xff\xd9")
    if end != -1 and end + 2 < len(data):
        yield rules.finding("F007", name)


def text_findings(name: str, text: str, rules: RuleBook, row_offset: int = 0
                  ) -> Iterator[Finding]:
    for line_no, line in enumerate(text.splitlines(), start=1):
        for match in scan_text(line):
            yield rules.finding(match.rule, name, row=row_offset + line_no,
                                excerpt=mask(match.text))


def notebook_findings(name: str, data: bytes, rules: RuleBook) -> Iterator[Finding]:
    """Every output is scanned like text; images, widgets and attachments are flagged."""
    doc = json.loads(data.decode("utf-8-sig"))
    if doc.get("metadata", {}).get("widgets"):
        yield rules.finding("F008", name, what="widget state")
    for index, cell in enumerate(doc.get("cells", []), start=1):
        where = f"{name}#cell{index}"
        if cell.get("attachments"):
            yield rules.finding("F008", where, what="attachments")
        source = cell.get("source", "")
        yield from text_findings(where, "".join(source) if isinstance(source, list) else source,
                                 rules)
        for output in cell.get("outputs", []):
            texts = [output.get("text", "")]
            for mime, value in (output.get("data") or {}).items():
                if mime.startswith("image/"):
                    yield rules.finding("F008", where, what=f"an embedded {mime} image")
                elif mime.startswith("text/") or mime.endswith("json"):
                    value = "".join(value) if isinstance(value, list) else str(value)
                    texts.append(TAGS.sub(" ", value) if mime == "text/html" else value)
            for text in texts:
                text = "".join(text) if isinstance(text, list) else text
                yield from text_findings(where, text, rules)
