"""Checks of non-table content: archives and notebooks (text, PNG, JPEG, PDF have their
own modules)."""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import zipfile
from collections.abc import Iterator

from .findings import Finding, RuleBook
from .images import jpeg_findings, png_findings
from .text import text_findings

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


def _joined(value: object) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _image_findings(where: str, mime: str, value: object, rules: RuleBook
                    ) -> Iterator[Finding]:
    """An embedded notebook image: flagged, and its own chunks/segments checked."""
    yield rules.finding("F008", where, what=f"an embedded {mime} image")
    try:
        data = base64.b64decode(_joined(value), validate=False)
    except (binascii.Error, ValueError):
        return
    if mime == "image/png" and data.startswith(b"\x89PNG"):
        yield from png_findings(where, data, rules)
    elif mime == "image/jpeg" and data.startswith(b"\xff\xd8"):
        yield from jpeg_findings(where, data, rules)


def notebook_findings(name: str, data: bytes, rules: RuleBook) -> Iterator[Finding]:
    """Every output is scanned like text; images, widgets and attachments are flagged."""
    doc = json.loads(data.decode("utf-8-sig"))
    if doc.get("metadata", {}).get("widgets"):
        yield rules.finding("F008", name, what="widget state")
        yield from text_findings(f"{name}#widgets", json.dumps(doc["metadata"]["widgets"]),
                                 rules)
    for index, cell in enumerate(doc.get("cells", []), start=1):
        where = f"{name}#cell{index}"
        if cell.get("attachments"):
            yield rules.finding("F008", where, what="attachments")
        yield from text_findings(where, _joined(cell.get("source", "")), rules)
        for output in cell.get("outputs", []):
            texts = [_joined(output.get("text", ""))]
            for mime, value in (output.get("data") or {}).items():
                if mime.startswith("image/"):
                    yield from _image_findings(where, mime, value, rules)
                elif mime.startswith("text/") or mime.endswith("json"):
                    value = _joined(value) if not isinstance(value, dict) else json.dumps(value)
                    texts.append(TAGS.sub(" ", value) if mime == "text/html" else value)
            if output.get("traceback"):
                texts.append("\n".join(map(str, output["traceback"])))
            for text in texts:
                yield from text_findings(where, text, rules)
