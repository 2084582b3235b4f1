"""Assertions every attack makes: refused with the right status and a readable message,
and nothing written, read or moved meanwhile."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from botocore.exceptions import ClientError

from .world import World


def refused(response: httpx.Response, status: int, *words: str) -> None:
    """The status, and a message naming why (JSON error or the error page)."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    text = response.text
    if response.headers.get("content-type", "").startswith("application/json"):
        text = response.json().get("error", "")
        assert text, "a refusal must say why"
    for word in words:
        assert word in text, (word, text[:300])


@contextmanager
def nothing_changes(world: World, request_id: str | None = None, *,
                    audited: int = 0) -> Iterator[None]:
    """The request keeps its state and the audit trail grows by exactly ``audited``."""
    state = world.status_of(request_id) if request_id else None
    events = world.audit_count()
    yield
    if request_id:
        assert world.status_of(request_id) == state
    assert world.audit_count() - events == audited


def access_denied(call, *args, **kwargs) -> None:
    """An S3 call that MinIO must refuse."""
    try:
        call(*args, **kwargs)
    except ClientError as exc:
        assert exc.response["Error"]["Code"] in {"AccessDenied", "InvalidAccessKeyId",
                                                 "SignatureDoesNotMatch"}, exc.response
        return
    raise AssertionError(f"{call.__name__} was not refused")
