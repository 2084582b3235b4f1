"""Images: the PNG chunk list against an allow-list, the JPEG segment structure walked to
the real end of image, and the sanitised re-encoding that is what gets released.

What you review is what is released: the reviewer's preview and the released bytes are the
same Pillow re-encoding (PNG, no metadata, nothing appended), never the submitted bytes.
"""

from __future__ import annotations

import io
import re
import struct
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from .findings import Finding, RuleBook
from .text import text_findings

PNG_TEXT = {"tEXt", "iTXt", "zTXt", "eXIf"}
MAX_TEXT_CHUNK = 1 << 20
JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM, RST0-7: no length field
JPEG_STRUCTURE = {*range(0xC0, 0xD0), 0xDB, 0xDC, 0xDD, 0xDE, 0xDF, 0xDA}


def png_findings(name: str, data: bytes, rules: RuleBook) -> Iterator[Finding]:
    """Chunks outside the allow-list (F011), text chunks (F006, scanned), bytes after IEND
    (F007), a broken chunk list (F013)."""
    allowed = set(rules.images["png_chunks"])
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = kind.decode("latin-1")
        if pos + 12 + length > len(data):
            yield rules.finding("F013", name, why=f"chunk {chunk!r} runs past the end")
            return
        body = data[pos + 8:pos + 8 + length]
        if chunk in PNG_TEXT:
            yield rules.finding("F006", name, chunk=f"PNG {chunk}")
            yield from text_findings(name, _png_text(chunk, body), rules)
        elif chunk not in allowed:
            yield rules.finding("F011", name, part=f"PNG chunk {chunk!r}")
        pos += 12 + length
        if chunk == "IEND":
            if pos < len(data):
                yield rules.finding("F007", name)
            return
    yield rules.finding("F013", name, why="no IEND chunk")


def _png_text(chunk: str, body: bytes) -> str:
    """The readable text of a tEXt/zTXt/iTXt chunk (compressed text inflated, bounded)."""
    try:
        if chunk == "zTXt":
            key, _, rest = body.partition(b"\x00")
            body = key + b" " + _inflate(rest[1:])
        elif chunk == "iTXt":
            key, _, rest = body.partition(b"\x00")
            compressed, rest = rest[:1] == b"\x01", rest[2:]
            lang, _, rest = rest.partition(b"\x00")
            translated, _, text = rest.partition(b"\x00")
            body = b" ".join([key, lang, translated, _inflate(text) if compressed else text])
    except zlib.error:
        pass
    return body.decode("utf-8", "replace").replace("\x00", " ")


def _inflate(data: bytes) -> bytes:
    return zlib.decompressobj().decompress(data, MAX_TEXT_CHUNK)


def jpeg_findings(name: str, data: bytes, rules: RuleBook) -> Iterator[Finding]:
    """Walk the segments (SOS entropy data up to the real EOI): APPn/COM segments (F006 for
    Exif/XMP/comments, scanned; F011 otherwise), bytes after the first EOI (F007)."""
    pos, end = 2, len(data)
    while True:
        if pos >= end or data[pos] != 0xFF:
            yield rules.finding("F013", name, why=f"no marker at byte {pos}")
            return
        while pos < end and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= end:
            yield rules.finding("F013", name, why="no end-of-image marker")
            return
        marker = data[pos]
        pos += 1
        if marker == 0xD9:
            if pos < end:
                yield rules.finding("F007", name)
            return
        if marker in JPEG_STANDALONE:
            continue
        if marker == 0xD8 or pos + 2 > end:
            yield rules.finding("F013", name, why=f"unexpected marker FF{marker:02X}")
            return
        length = struct.unpack(">H", data[pos:pos + 2])[0]
        if length < 2 or pos + length > end:
            yield rules.finding("F013", name, why=f"segment FF{marker:02X} runs past the end")
            return
        yield from _segment_findings(name, marker, data[pos + 2:pos + length], rules)
        pos += length
        if marker == 0xDA:
            pos = _end_of_scan(data, pos)


def _end_of_scan(data: bytes, pos: int) -> int:
    """The position of the first real marker after entropy-coded data (FF00 is a stuffed
    byte, FFD0-FFD7 restart markers, FFFF fill)."""
    while (pos := data.find(b"\xff", pos)) != -1 and pos + 1 < len(data):
        following = data[pos + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
            pos += 1 if following == 0xFF else 2
            continue
        return pos
    return len(data)


def _segment_findings(name: str, marker: int, body: bytes, rules: RuleBook
                      ) -> Iterator[Finding]:
    if marker in JPEG_STRUCTURE:
        return
    if marker == 0xE0 and body.startswith(b"JFIF\x00") and len(body) == 14:
        return  # JFIF header without a thumbnail
    if (marker == 0xE2 and body.startswith(b"ICC_PROFILE\x00")) or \
            (marker == 0xEE and body.startswith(b"Adobe")):
        return
    label = {0xFE: "JPEG comment"}.get(marker)
    if marker == 0xE1 and body.startswith(b"Exif\x00\x00"):
        label = "EXIF"
    elif marker == 0xE1 and body.startswith(b"http://ns.adobe.com/xap/"):
        label = "XMP"
    if label:
        yield rules.finding("F006", name, chunk=label)
        yield from text_findings(name, body.decode("latin-1").replace("\x00", " "), rules)
        return
    part = f"JPEG APP{marker - 0xE0} segment" if 0xE0 <= marker <= 0xEF \
        else f"JPEG segment FF{marker:02X}"
    yield rules.finding("F011", name, part=part)


@dataclass(frozen=True)
class Sanitised:
    """The re-encoding of an image, or why there is none."""

    png: bytes | None
    width: int
    height: int
    findings: tuple[Finding, ...] = ()


def sanitise(name: str, data: bytes, rules: RuleBook) -> Sanitised:
    """Decode (only after the header says the size is within ``images.max_pixels``) and
    re-encode as PNG without any metadata: the bytes the reviewer sees and that are released.
    """
    from PIL import Image, ImageOps

    limit = rules.images["max_pixels"]
    Image.MAX_IMAGE_PIXELS = limit  # Pillow's own guard, behind the header check below
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # lazy: reads the header only
            width, height = image.size
            if width * height > limit:
                return Sanitised(None, width, height, (rules.finding(
                    "F012", name, pixels=width * height, limit=limit),))
            image.load()
            image = ImageOps.exif_transpose(image)
            mode = image.mode
            if mode == "P":
                mode = "RGBA" if "transparency" in image.info else "RGB"
            elif mode not in {"1", "L", "LA", "RGB", "RGBA"}:
                mode = "RGBA" if "A" in mode else "RGB"
            clean = Image.new(mode, image.size)
            clean.paste(image.convert(mode))  # pixels only: no info, no chunks, no profile
            out = io.BytesIO()
            clean.save(out, "PNG", compress_level=6)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        pixels = re.search(r"\((\d+) pixels\)", str(exc))
        return Sanitised(None, 0, 0, (rules.finding(
            "F012", name, pixels=pixels.group(1) if pixels else "?", limit=limit),))
    except Exception as exc:  # an image Pillow cannot decode cannot be re-encoded
        return Sanitised(None, 0, 0, (rules.finding("F010", name, kind="image",
                                                    why=str(exc)[:200]),))
    return Sanitised(out.getvalue(), clean.width, clean.height)
