"""Column techniques on pyarrow arrays (one batch at a time)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InvalidInput


def pseudonymise(values: pa.Array, key: bytes) -> pa.Array:
    """Keyed HMAC-SHA256, 32 hex characters: same input and key, same pseudonym."""
    return pa.array([None if v is None else hmac.new(key, v.encode(), hashlib.sha256)
                     .hexdigest()[:32] for v in pc.cast(values, pa.string()).to_pylist()],
                    type=pa.string())


def _bands(numbers: pa.Array, width: float, unit: str = "") -> pa.Array:
    low = pc.multiply(pc.floor(pc.divide(pc.cast(numbers, pa.float64()), width)), width)
    high = pc.subtract(pc.add(low, width), 1 if width >= 1 else 0)
    as_int = lambda a: pc.cast(a, pa.int64())  # noqa: E731
    return pc.binary_join_element_wise(pc.cast(as_int(low), pa.string()),
                                       pc.cast(as_int(high), pa.string()), "-" if not unit
                                       else f"{unit}-")


def generalise(values: pa.Array, spec: dict[str, Any]) -> pa.Array:
    to = spec["to"]
    if to in {"year", "month"}:
        text = pc.cast(values, pa.string())
        return pc.utf8_slice_codeunits(text, 0, 4 if to == "year" else 7)
    if to == "sido":  # first word of a Korean address: 시/도
        return pc.list_element(pc.split_pattern(pc.cast(values, pa.string()), " "), 0)
    if to == "age_band":
        years = pc.cast(pc.utf8_slice_codeunits(pc.cast(values, pa.string()), 0, 4), pa.int64())
        return _bands(pc.subtract(spec["reference_year"], years), spec["width"])
    return _bands(values, spec["width"])  # range


def apply(name: str, values: pa.Array, spec: dict[str, Any], key: bytes) -> pa.Array | None:
    """The transformed column, or None when the column is deleted."""
    technique = spec["technique"]
    if technique == "delete":
        return None
    if technique == "pseudonymise":
        return pseudonymise(values, key)
    if technique == "generalise":
        return generalise(values, spec)
    if technique == "topcode":
        return pc.min_element_wise(values, pa.scalar(spec["at"]).cast(values.type))
    if technique == "bottomcode":
        return pc.max_element_wise(values, pa.scalar(spec["at"]).cast(values.type))
    if technique == "aggregate":  # replaced by class means in the engine's second pass
        try:
            return pc.cast(values, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise InvalidInput(f"column {name}: aggregate needs numbers") from None
    if technique == "mask":
        text = pc.cast(values, pa.string())
        head = pc.utf8_slice_codeunits(text, 0, spec.get("keep", 0))
        stars = pc.utf8_replace_slice(pc.utf8_slice_codeunits(text, spec.get("keep", 0)),
                                      0, 10**6, "*")
        return pc.binary_join_element_wise(head, stars, "")
    return values  # keep
