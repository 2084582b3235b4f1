"""File type by content (magic bytes, pickle opcodes), not by name; the submit-time gate."""

from __future__ import annotations

import io
import json
import pickletools
import zipfile

from .findings import RuleBook, load_rules

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
    (b"\xca\xfe\xba\xbe", "macho"),
    (b"\xcf\xfa\xed\xfe", "macho"),
    (b"\x00asm", "wasm"),
    (b"GIF8", "gif"),
]
EXECUTABLE = {"elf", "exe", "pickle", "macho", "wasm"}
ARCHIVES = {"zip", "gzip", "bzip2", "7z", "rar", "xz"}
SNIFF_BYTES = 1 << 16
# Opcodes that make a pickle run code (or build arbitrary objects) when loaded.
PICKLE_CODE = {"GLOBAL", "STACK_GLOBAL", "REDUCE", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX",
               "BUILD", "EXT1", "EXT2", "EXT4"}
PICKLE_MIN_OPS = 3           # "N." (None) is also valid text; real data takes more opcodes
PICKLE_TRUNCATED_OPS = 16    # a head that parses this far as opcodes is a pickle


def looks_like_pickle(data: bytes, complete: bool = True) -> bool:
    """Whether ``data`` parses as a pickle opcode stream up to STOP (any protocol, also the
    text protocols 0 and 1 that start with "(" or "c"). Parsed with pickletools.genops,
    never loaded. ``complete=False``: ``data`` is a head; running out of bytes after many
    opcodes counts as a pickle too."""
    if not data or pickletools.code2op.get(chr(data[0])) is None:
        return False
    ops, code = 0, False
    try:
        for opcode, _arg, _pos in pickletools.genops(io.BytesIO(data)):
            ops += 1
            code = code or opcode.name in PICKLE_CODE
            if opcode.name == "STOP":
                return ops >= PICKLE_MIN_OPS or code
    except Exception:  # not (or not all) opcodes: text, or a head cut mid-pickle
        return not complete and ops >= PICKLE_TRUNCATED_OPS
    return False


def sniff(name: str, data: bytes, complete: bool = True) -> str:
    """The kind of ``data``: png, jpeg, pdf, parquet, xlsx, zip, pickle, ipynb, csv, … .
    ``complete=False`` when ``data`` is only the head of a file (no full parse)."""
    for magic, kind in SIGNATURES:
        if data.startswith(magic):
            return kind
    if data[:1] == b"\x80" and len(data) > 1 and 2 <= data[1] <= 5:
        return "pickle"
    if data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06"):
        return _zip_kind(data, complete)
    if looks_like_pickle(data if complete else data[:SNIFF_BYTES], complete):
        return "pickle"
    return _text_kind(name, data, complete)


def _zip_kind(data: bytes, complete: bool) -> str:
    if not complete:  # local headers name the members: an XLSX starts with its parts
        head = data[:SNIFF_BYTES]
        return "xlsx" if b"[Content_Types].xml" in head and b"xl/" in head else "zip"
    try:
        names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
    except zipfile.BadZipFile:
        return "zip"
    return "xlsx" if "[Content_Types].xml" in names and "xl/workbook.xml" in names else "zip"


def _head_text(data: bytes) -> str | None:
    """The first 64 KiB as text, or None when it is not UTF-8 (a cut last character is fine)."""
    head = data[:SNIFF_BYTES]
    try:
        return head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if len(head) == SNIFF_BYTES and exc.start >= len(head) - 3:
            return head[:exc.start].decode("utf-8-sig")
        return None


def _text_kind(name: str, data: bytes, complete: bool) -> str:
    text = _head_text(data)
    if text is None or "\x00" in text:
        return "binary"
    ext = extension(name)
    if ext in {"json", "ipynb"} or text.lstrip()[:1] in "{[":
        if not complete:
            return "ipynb" if ext == "ipynb" else "json"
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


def admissible(path: str, head: bytes, rules: RuleBook | None = None) -> str | None:
    """At submit, from the first 64 KiB: None when the kind may be exported, else a one-line
    English + Korean refusal. Fast: no full parse (the check does that)."""
    rules = rules or load_rules()
    kind = sniff(path, head[:SNIFF_BYTES], complete=False)
    if rules.exportable(kind):
        return None
    spec = rules.messages["F001"]
    return f"{path}: {spec['en'].format(kind=kind)} ({spec['ko'].format(kind=kind)})"
