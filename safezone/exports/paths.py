"""File names inside an outbox: relative, plain, no way out of ``outbox/<project>/<user>/``."""

from __future__ import annotations

import unicodedata

from ..errors import InvalidInput

MAX_PATH = 512


def check_outbox_path(path: str) -> str:
    """A safe relative key; refuses traversal, absolute paths and look-alike separators."""
    if not isinstance(path, str) or not path or len(path.encode()) > MAX_PATH:
        raise InvalidInput(f"file path must be 1-{MAX_PATH} bytes")
    if any(unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} for ch in path):
        raise InvalidInput(f"file path {path!r} contains control characters")
    if path.startswith("/") or "\\" in path or "//" in path or path.endswith("/"):
        raise InvalidInput(f"file path {path!r} must be relative to your outbox, like "
                           "'tables/result.csv' (경로 형식 오류)")
    if any(part != part.strip() for part in path.split("/")):
        raise InvalidInput(f"file path {path!r} has a name that starts or ends with a space "
                           "(이름 앞뒤 공백 불가)")
    if any(part in {".", ".."} for part in path.split("/")):
        raise InvalidInput(f"file path {path!r} may not contain '.' or '..' segments "
                           "(상위 경로 접근 불가)")
    if unicodedata.normalize("NFKC", path) != path:
        raise InvalidInput(f"file path {path!r} uses look-alike characters; rename the file")
    return path
