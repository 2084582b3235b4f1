"""Safe previews of frozen files for reviewers: escaped text, tables, re-encoded images."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

from ..checks.filetypes import sniff
from ..checks.findings import load_rules
from ..checks.tables import read_tables

MAX_ROWS = 200


def preview(path: str, data: bytes) -> dict[str, Any]:
    """{'kind': …, 'table'|'text'|'image'|'cells': …}; nothing here executes or renders HTML."""
    kind = sniff(path, data)
    try:
        if kind in {"csv", "tsv", "parquet", "xlsx"}:
            tables, _ = read_tables(path, kind, data, load_rules())
            return {"kind": kind, "tables": [
                {"name": name, "columns": table.column_names,
                 "rows": [[("" if v is None else str(v)) for v in row.values()]
                          for row in table.slice(0, MAX_ROWS).to_pylist()],
                 "total": table.num_rows} for name, table in tables]}
        if kind in {"png", "jpeg"}:
            from PIL import Image

            image = Image.open(io.BytesIO(data))
            out = io.BytesIO()
            image.convert("RGB").save(out, "PNG")  # re-encoded: no metadata, nothing appended
            return {"kind": kind, "image": base64.b64encode(out.getvalue()).decode()}
        if kind == "ipynb":
            doc = json.loads(data.decode("utf-8-sig"))
            cells = []
            for cell in doc.get("cells", []):
                source = cell.get("source", "")
                outputs = []
                for output in cell.get("outputs", []):
                    text = output.get("text") or (output.get("data") or {}).get("text/plain", "")
                    outputs.append("".join(text) if isinstance(text, list) else str(text))
                cells.append({"type": cell.get("cell_type", ""),
                              "source": "".join(source) if isinstance(source, list) else source,
                              "outputs": outputs})
            return {"kind": kind, "cells": cells}
        if kind in {"txt", "md", "json"}:
            return {"kind": kind, "text": data.decode("utf-8-sig")[:200_000]}
    except Exception as exc:  # a preview never breaks the review page
        return {"kind": kind, "error": str(exc)[:300]}
    return {"kind": kind, "error": "no preview for this kind of file"}
