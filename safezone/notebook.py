"""The researcher's helper inside a notebook server.

    from safezone.notebook import crosstab, save_table, submit_export
    table, evidence = crosstab(df, "sido", "sex", values="cost_krw")
    save_table(table, "tables/cost_by_sido.csv", evidence=evidence)
    submit_export(["tables/cost_by_sido.csv"], title="Cost by region",
                  justification="aggregate table for the paper")

Credentials come from the server's environment (the session grant and the server's own
hub token); nothing here can read another project's data or download a release.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pandas as pd

EVIDENCE_SUFFIX = ".evidence.json"


def crosstab(data: pd.DataFrame, index: str, columns: str, values: str | None = None,
             top: int = 2) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A frequency table (or, with ``values``, sums) plus the evidence the server needs to
    apply exact rules: per cell the count and, for magnitudes, total and top contributors.
    The evidence stays in the zone; it is never released."""
    grouped = data.groupby([index, columns], observed=True)
    counts = grouped.size().rename("count")
    if values is None:
        table = counts.reset_index()
        return table, {"schema": "safezone.table-evidence/1", "cells": []}
    sums = grouped[values].sum().rename(f"total_{values}")
    tops = grouped[values].apply(lambda s: sorted(s.tolist(), reverse=True)[:top])
    negatives = grouped[values].apply(lambda s: bool((s < 0).any() or s.isna().any()))
    table = pd.concat([sums, counts], axis=1).reset_index()
    cells = []
    for row_number, key in enumerate(table[[index, columns]].itertuples(index=False), start=1):
        cells.append({"row": row_number, "column": f"total_{values}",
                      "count": int(counts[tuple(key)]), "total": float(sums[tuple(key)]),
                      "top": [float(v) for v in tops[tuple(key)]],
                      "negatives": bool(negatives[tuple(key)])})
    return table, {"schema": "safezone.table-evidence/1", "cells": cells}


def _s3():
    import boto3

    return boto3.client("s3")


def outbox_key(name: str) -> tuple[str, str]:
    uri = os.environ["SAFEZONE_OUTBOX_URI"]  # s3://outbox/<project>/<user>/
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return bucket, prefix + name


def save_table(table: pd.DataFrame, name: str, evidence: dict[str, Any] | None = None) -> str:
    """Write ``table`` as CSV into your outbox (and its evidence beside it)."""
    bucket, key = outbox_key(name)
    _s3().put_object(Bucket=bucket, Key=key, Body=table.to_csv(index=False).encode())
    if evidence is not None and evidence.get("cells"):
        evidence = {**evidence, "table": name}
        _s3().put_object(Bucket=bucket, Key=key + EVIDENCE_SUFFIX,
                         Body=json.dumps(evidence).encode())
    return name


def _api(method: str, path: str, body: dict | None = None) -> Any:
    import httpx

    url = os.environ["SAFEZONE_API_URL"].rstrip("/") + path
    headers = {"Authorization": f"token {os.environ['JUPYTERHUB_API_TOKEN']}"}
    response = httpx.request(method, url, json=body, headers=headers, timeout=120)
    if response.status_code >= 400:
        raise RuntimeError(response.json().get("error", response.text))
    return response.json()


def submit_export(files: list[str], title: str, justification: str,
                  include_evidence: bool = True, wait_seconds: float = 300) -> dict[str, Any]:
    """Ask to export ``files`` from your outbox; returns the request with its check record
    once the checks have run (they run in the background; ``wait_seconds=0`` returns at
    once, while the request is still ``checking``)."""
    bucket, _ = outbox_key("")
    listed = set()
    if include_evidence:
        for name in files:
            _, key = outbox_key(name + EVIDENCE_SUFFIX)
            try:
                _s3().head_object(Bucket=bucket, Key=key)
                listed.add(name + EVIDENCE_SUFFIX)
            except Exception:  # no evidence for this file
                continue
    entries = [{"path": name, "justification": justification} for name in files]
    entries += [{"path": name, "justification": "evidence (stays in the zone)"}
                for name in sorted(listed)]
    request = _api("POST", "/api/exports", {"project": os.environ["SAFEZONE_PROJECT"],
                                            "title": title, "files": entries})
    submitted = _api("POST", f"/api/exports/{request['id']}/submit")
    return _wait_for_checks(submitted, wait_seconds)


def _wait_for_checks(request: dict[str, Any], wait_seconds: float) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + wait_seconds
    while request["status"] in {"submitted", "checking"} and time.monotonic() < deadline:
        time.sleep(0.5)
        request = _api("GET", f"/api/exports/{request['id']}")
    return request


def my_exports() -> list[dict[str, Any]]:
    return _api("GET", "/api/exports")
