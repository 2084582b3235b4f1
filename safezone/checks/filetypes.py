"""File type by content (magic bytes), not by name."""

from __future__ import annotations

import io
import json
import zipfile

TEXT_KINDS = {"csv", "tsv", "txt", "md", "json"}
SIGNATURES: list[tuple[bytes, str]] = [
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"%PDF-", "pdf"),
    (b"PAR1", "parquet"),
    (b"\x7fELF", "elf"),
    (b"MZ", "exe"),
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"Rar!", "rar"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\xd0\xcf\x11\xe0", "ole"),  # legacy Office: macros, hidden content
]
EXECUTABLE = {"elf", "exe", "pickle"}
ARCHIVES = {"zip", "gzip", "bzip2", "7z", "rar", "xz"}


def sniff(name: str, data: bytes) -> str:
    """The kind of ``data``: png, jpeg, pdf, parquet, xlsx, zip, pickle, ipynb, csv, … ."""
    for magic, kind in SIGNATURES:
        if data.startswith(magic):
            return kind
    if data[:1] == b"\x80" and len(data) > 1 and 2 <= data[1] <= 5:
        return "pickle"
    if data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06"):
        return _zip_kind(data)
    return _text_kind(name, data)


def _zip_kind(data: bytes) -> str:
    try:
        names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
    except zipfile.BadZipFile:
        return "zip"
    return "xlsx" if "[Content_Types].xml" in names and "xl/workbook.xml" in names else "zip"


SNIFF_BYTES = 1 << 16


def _head_text(data: bytes) -> str | None:
    """The first 64 KiB as text, or None when it is not UTF-8 (a cut last character is fine)."""
    head = data[:SNIFF_BYTES]
    try:
        return head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if len(data) > SNIFF_BYTES and exc.start >= len(head) - 3:
            return head[:exc.start].decode("utf-8-sig")
        return None


def _text_kind(name: str, data: bytes) -> str:
    text = _head_text(data)
    if text is None or "\x00" in text:
        return "binary"
    ext = extension(name)
    if ext in {"json", "ipynb"} or text.lstrip()[:1] in "{[":
        try:
            doc = json.loads(data.decode("utf-8-sig"))
        except UnicodeDecodeError:
            return "binary"
        except ValueError:
            return "txt" if ext not in {"json", "ipynb"} else "binary"
        if isinstance(doc, dict) and "cells" in doc and "nbformat" in doc:
            return "ipynb"
        return "json"
    if ext in {"csv", "tsv", "md", "txt"}:
        return ext
    return "txt"


def extension(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[-1].lower() if "." in base else ""


def extension_matches(name: str, kind: str) -> bool:
    """Whether the name's extension agrees with the sniffed kind."""
    ext = extension(name)
    aliases = {"jpeg": {"jpg", "jpeg"}, "txt": {"txt", "text", "log", ""}, "md": {"md"},
               "csv": {"csv"}, "tsv": {"tsv", "tab"}}
    if kind in {"txt", "md", "csv", "tsv"}:
        return ext in {"txt", "md", "csv", "tsv", "text", "log", ""}
    return ext in aliases.get(kind, {kind})
