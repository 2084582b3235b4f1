"""The researcher's helper inside a notebook server.

    from safezone.notebook import crosstab, dry_run, save_table, submit_export
    table, evidence = crosstab(df, "sido", "sex", values="visits")
    save_table(table, "tables/visits_by_sido.csv", evidence=evidence)
    dry_run(["tables/visits_by_sido.csv"])   # the checks now, no request: fix, then submit
    submit_export(["tables/visits_by_sido.csv"], title="Visits by region",
                  justification="aggregate table for the paper")

Credentials come from the server's environment (the session grant and the server's own
hub token); nothing here can read another project's data or download a release.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pandas as pd

from .checks.sidecars import EVIDENCE_SUFFIX, attach_evidence, sidecar_of


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
    present = set()
    if include_evidence:
        for name in files:
            _, key = outbox_key(sidecar_of(name))
            try:
                _s3().head_object(Bucket=bucket, Key=key)
                present.add(sidecar_of(name))
            except Exception:  # no evidence for this file
                continue
    entries = attach_evidence([{"path": name, "justification": justification}
                               for name in files], present)
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


def dry_run(files: list[str], language: str | None = None, show: bool = True
            ) -> dict[str, Any]:
    """Run the export checks on ``files`` of your outbox now, without making a request
    (their evidence is attached as on submit). Prints each problem with what it means and
    how to fix it (``show=False``: quiet); returns the findings, grouped per file and
    rule, and the approvals a submit would need."""
    language = language or _language()
    result = _api("POST", "/api/exports/dry-run", {
        "project": os.environ["SAFEZONE_PROJECT"], "files": list(files),
        "language": language})
    if show:
        print(explain_dry_run(result, language))
    return result


def _language() -> str:
    """The researcher's language: SAFEZONE_LANGUAGE, else the locale, else Korean."""
    chosen = os.environ.get("SAFEZONE_LANGUAGE") or os.environ.get("LANG", "")
    return "en" if chosen.lower().startswith("en") else "ko"


SEVERITY_WORDS = {"ko": {"fail": "실패", "warn": "경고", "info": "참고", "pass": "통과"},
                  "en": {"fail": "fail", "warn": "warning", "info": "note", "pass": "pass"}}


def explain_dry_run(result: dict[str, Any], language: str = "ko") -> str:
    """A dry run's findings as plain text: per file, per rule, with the fix."""
    ko = language == "ko"
    words = SEVERITY_WORDS["ko" if ko else "en"]
    explained = result.get("explained") or {}
    lines = []
    for entry in explained.get("files", []):
        if entry.get("evidence"):
            continue
        lines.append(f"{entry['path']}: {words.get(entry['worst'], entry['worst'])}")
        for group in entry["rules"]:
            rows = ", ".join(str(r) for r in group["rows"])
            where = f" ({'행' if ko else 'rows'} {rows})" if rows else ""
            lines.append(f"  [{words.get(group['severity'], group['severity'])}] "
                         f"{group['title']} × {group['count']}{where}")
            lines.append(f"    {group['means']}")
            lines.append(f"    → {group['fix']}")
    for group in explained.get("request", []):
        lines.append(f"[{words.get(group['severity'], group['severity'])}] "
                     f"{group['title']}: {group['fix']}")
    needed = result.get("approvals_needed")
    lines.append(f"제출하면 검토자 {needed}명의 승인이 필요합니다." if ko else
                 f"If you submit, {needed} reviewer approval(s) will be needed.")
    return "\n".join(lines)


def my_exports() -> list[dict[str, Any]]:
    return _api("GET", "/api/exports")
