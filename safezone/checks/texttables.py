"""Tables hiding in text files: CSV/TSV content under a .txt/.md name, JSON arrays of
records. They get the table rules too, so a renamed table lowers no bar."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.csv as pacsv

SAMPLE_LINES = 50


def _delimiter(text: str) -> str | None:
    """"," or "\\t" when every one of the first lines has the same number (>= 1) of it."""
    lines = [line for line in text.splitlines()[:SAMPLE_LINES] if line.strip()]
    if len(lines) < 2:
        return None
    for delimiter in ("\t", ","):
        counts = {line.count(delimiter) for line in lines}
        if len(counts) == 1 and counts.pop() >= 1:
            return delimiter
    return None


def tables_in_text(name: str, kind: str, text: str) -> list[tuple[str, pa.Table]]:
    """The table a text file holds ([] when it holds none, or cannot be parsed as one)."""
    try:
        if kind == "json":
            doc = json.loads(text)
            if isinstance(doc, dict) and isinstance(doc.get("data"), list):
                doc = doc["data"]
            if isinstance(doc, list) and doc and all(isinstance(r, dict) for r in doc):
                return [(name, pa.Table.from_pylist(doc))]
            return []
        delimiter = _delimiter(text)
        if delimiter is None:
            return []
        table = pacsv.read_csv(io.BytesIO(text.encode()),
                               parse_options=pacsv.ParseOptions(delimiter=delimiter))
        return [(name, table)] if table.num_columns >= 2 else []
    except (ValueError, pa.ArrowException):
        return []
