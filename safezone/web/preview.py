"""Safe, bounded previews of frozen files for reviewers, made once at check time (limits in
``rules.yaml: preview``): tables as cells, text escaped by the templates, images as the
sanitised re-encoding that is released, PDFs as their extracted text. Nothing here executes
or renders user HTML, and every preview says when it was cut.

Images: ``image`` is the very PNG that is released when it fits ``max_image_side``; larger
images are shown as a downscaled copy of it (``same_as_release`` false, ``note`` says so),
while the release is always the full-size sanitised re-encoding.
"""

from __future__ import annotations

import base64
import io
import json
from typing import TYPE_CHECKING, Any

from ..checks.findings import RuleBook

if TYPE_CHECKING:
    from ..checks.runner import FileResult


def _cut(text: str, limit: int) -> tuple[str, str | None]:
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text, None
    return raw[:limit].decode("utf-8", "ignore"), f"first {limit:,} of {len(raw):,} bytes"


def _cell(value: Any, limit: int) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _tables(result: FileResult, cfg: dict) -> list[dict]:
    out = []
    for name, table, _roles in result.tables:
        columns = table.column_names[:cfg["max_columns"]]
        part = table.select(columns).slice(0, cfg["max_rows"])
        notes = []
        if table.num_rows > part.num_rows:
            notes.append(f"first {part.num_rows:,} of {table.num_rows:,} rows")
        if table.num_columns > len(columns):
            notes.append(f"first {len(columns)} of {table.num_columns} columns")
        out.append({"name": name, "columns": columns, "total": table.num_rows,
                    "total_columns": table.num_columns,
                    "rows": [[_cell(v, cfg["max_cell_chars"]) for v in row.values()]
                             for row in part.to_pylist()],
                    "note": "; ".join(notes) or None})
    return out


def _image(result: FileResult, cfg: dict) -> dict[str, Any]:
    from PIL import Image

    clean = result.sanitised
    if clean is None or clean.png is None:
        return {"error": "no preview: the image could not be re-encoded (see the findings)"}
    side = cfg["max_image_side"]
    if max(clean.width, clean.height) <= side:
        return {"image": base64.b64encode(clean.png).decode(), "width": clean.width,
                "height": clean.height, "same_as_release": True}
    copy = Image.open(io.BytesIO(clean.png))
    copy.thumbnail((side, side))
    out = io.BytesIO()
    copy.save(out, "PNG")
    return {"image": base64.b64encode(out.getvalue()).decode(), "width": copy.width,
            "height": copy.height, "same_as_release": False,
            "note": f"shown at {copy.width}x{copy.height}; the release is the full-size "
                    f"{clean.width}x{clean.height} re-encoding"}


def _notebook_cells(data: bytes) -> list[dict[str, Any]]:
    """Each cell as reviewers see it: its type, source and text outputs (stream text and
    ``text/plain``); nothing else of the notebook is shown or released."""
    try:
        doc = json.loads(data.decode("utf-8-sig"))
        cells = doc.get("cells", []) if isinstance(doc, dict) else None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"not a readable notebook: {exc}") from exc
    if not isinstance(cells, list):
        raise ValueError("not a readable notebook: no cell list")
    shown = []
    for cell in cells:
        cell = cell if isinstance(cell, dict) else {}
        source = cell.get("source", "")
        outputs = []
        for output in cell.get("outputs", []) or []:
            output = output if isinstance(output, dict) else {}
            text = output.get("text") or (output.get("data") or {}).get("text/plain", "")
            outputs.append("".join(text) if isinstance(text, list) else str(text))
        shown.append({"type": str(cell.get("cell_type", "")),
                      "source": "".join(source) if isinstance(source, list) else str(source),
                      "outputs": outputs})
    return shown


def normalised_notebook(data: bytes) -> bytes:
    """The notebook that is released: rebuilt from the cells reviewers saw."""
    cells = []
    for cell in _notebook_cells(data):
        kind = cell["type"] if cell["type"] in {"code", "markdown", "raw"} else "raw"
        entry: dict[str, Any] = {"cell_type": kind, "metadata": {}, "source": cell["source"]}
        if kind == "code":
            entry["execution_count"] = None
            entry["outputs"] = [{"output_type": "stream", "name": "stdout", "text": text}
                                for text in cell["outputs"]]
        cells.append(entry)
    doc = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}
    return json.dumps(doc, ensure_ascii=False, indent=1).encode()


def _notebook(data: bytes, limit: int) -> dict[str, Any]:
    cells, used = [], 0
    shown = _notebook_cells(data)
    for entry in shown:
        used += len(json.dumps(entry, ensure_ascii=False).encode())
        if used > limit:
            return {"cells": cells, "note": f"first {len(cells)} of {len(shown)} cells"}
        cells.append(entry)
    return {"cells": cells}


def preview_gap(shown: dict[str, Any]) -> str | None:
    """What of a file its preview does not show (cut rows, columns, text or cells, or no
    preview at all); None when reviewers see everything that would be released."""
    if shown.get("error"):
        return "no preview"
    if shown.get("image") is not None:
        return None  # a downscaled copy still shows the whole released image
    notes = [shown.get("note")] + [t.get("note") for t in shown.get("tables") or []]
    notes = [part for note in notes if note for part in note.split("; ")
             if not part.startswith("text extracted")]
    return "; ".join(notes) or None


def make_preview(path: str, data: bytes, result: FileResult, rules: RuleBook
                 ) -> dict[str, Any]:
    """The preview of one checked file: {'kind', 'tables'|'text'|'image'|'cells', 'note'}."""
    cfg, kind = rules.preview, result.kind
    try:
        if result.tables:
            return {"kind": kind, "tables": _tables(result, cfg)}
        if kind in {"png", "jpeg"}:
            return {"kind": kind, **_image(result, cfg)}
        if kind == "ipynb":
            return {"kind": kind, **_notebook(data, cfg["max_text_bytes"])}
        if kind in {"txt", "md", "json"}:
            text, note = _cut(data.decode("utf-8-sig", "replace"), cfg["max_text_bytes"])
            return {"kind": kind, "text": text, "note": note}
        if kind == "pdf" and result.pdf is not None:
            text, note = _cut(result.pdf.text, cfg["max_text_bytes"])
            return {"kind": kind, "text": text,
                    "note": "; ".join(filter(None, ["text extracted from the PDF, which is "
                                                    "not rendered here", note]))}
    except Exception as exc:  # a preview never breaks the review page
        return {"kind": kind, "error": str(exc)[:300]}
    return {"kind": kind, "error": "no preview for this kind of file"}
