"""The reviewer's pages: the queue, the live review (findings by rule with their true
counts, each linked to its cell in the preview; votes), and a request's outcome (the
comments once the review ended, and revoking a release).

Who may do what is the services' business (``review``, ``release``): the pages only show
what they return and the choices those services say this caller has.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup, escape

from ..api.actions import action
from ..checks.findings import SEVERITIES, hits
from ..errors import Conflict, InvalidInput, NotFound
from ..exports import release, review
from .kit import PageKit, page_language

ORDER = {severity: i for i, severity in enumerate(SEVERITIES)}


# -- findings, grouped by rule and placed in the preview -----------------------------------
def table_base(file_id: int, index: int) -> str:
    """The anchor prefix of one preview table: ``f3`` (first table), ``f3-t1`` (others)."""
    return f"f{file_id}" if index == 0 else f"f{file_id}-t{index}"


def _locate(file_id: int, finding: dict[str, Any], tables: list[dict[str, Any]],
            lines: int) -> str | None:
    """The preview anchor of a finding (``f3-r12-c2`` a cell, ``f3-r12`` a row or line,
    ``f3-r0-c2`` a column's header), or None when the preview does not show it."""
    row, column = finding.get("row"), finding.get("column")
    if not tables:
        return f"f{file_id}-r{row}" if row and row <= lines else None
    names = [t.get("name") for t in tables]
    index = names.index(finding.get("file")) if finding.get("file") in names else \
        (0 if len(tables) == 1 else None)
    if index is None:
        return None
    table, base = tables[index], table_base(file_id, index)
    cell = None
    if column is not None:
        columns = table.get("columns") or []
        name = column if column in columns else str(column).split("|")[0]
        if name not in columns:
            return None
        cell = columns.index(name)
    if row is None:
        return f"{base}-r0-c{cell}" if cell is not None else None
    if row > len(table.get("rows") or []):
        return None
    return f"{base}-r{row}" + (f"-c{cell}" if cell is not None else "")


def grouped(file_id: int, findings: list[dict[str, Any]], preview: dict[str, Any] | None,
            language: str) -> tuple[list[dict[str, Any]], dict[str, set[int]]]:
    """Findings by rule (worst first), each rule with its true count (listed hits plus
    tallies), and the flagged preview cells: row anchor → column indexes."""
    preview = preview or {}
    tables = preview.get("tables") or []
    lines = (preview.get("text") or "").count("\n") + 1 if preview.get("text") else 0
    message = "message_ko" if language == "ko" else "message_en"
    groups: dict[str, dict[str, Any]] = {}
    flagged: dict[str, set[int]] = {}
    for finding in findings:
        group = groups.setdefault(finding["rule"], {
            "rule": finding["rule"], "severity": finding["severity"],
            "message": finding.get(message, ""), "total": 0, "listed": [], "more": 0,
            "unexamined": 0})
        group["total"] += hits(finding)
        if finding.get("more") or finding.get("unexamined"):
            group["more"] += finding.get("more") or 0
            group["unexamined"] += finding.get("unexamined") or 0
            continue
        anchor = _locate(file_id, finding, tables, lines)
        group["listed"].append({"row": finding.get("row"), "column": finding.get("column"),
                                "line": not tables and bool(lines), "anchor": anchor,
                                "message": finding.get(message, ""),
                                "excerpt": finding.get("excerpt")})
        if anchor and "-c" in anchor:
            row_anchor, _, cell = anchor.rpartition("-c")
            flagged.setdefault(row_anchor, set()).add(int(cell))
        elif anchor:
            flagged.setdefault(anchor, set())
    for group in groups.values():
        group["same_message"] = all(x["message"] == group["message"] for x in group["listed"])
    ordered = sorted(groups.values(), key=lambda g: (ORDER.get(g["severity"], 9), g["rule"]))
    return ordered, flagged


def preview_rows(base: str, rows: list[list[Any]], flagged: dict[str, set[int]]) -> Markup:
    """The body rows of a preview table, numbered (``<th scope="row" id="f3-r12">``), the
    flagged cells carrying their anchor (``id="f3-r12-c2"``) and ``class="flagged"``.
    Built here rather than in the template: a review can show 50 tables of 1,000 rows."""
    out = []
    for n, row in enumerate(rows, start=1):
        anchor = f"{base}-r{n}"
        marks = flagged.get(anchor)
        cells = "".join(
            f'<td id="{anchor}-c{i}" class="flagged">{escape(v)}</td>'
            if marks and i in marks else f"<td>{escape(v)}</td>"
            for i, v in enumerate(row))
        out.append(f'<tr><th scope="row" id="{anchor}">{n}</th>{cells}</tr>')
    return Markup("\n".join(out))


def preview_lines(file_id: int, lines: list[str], flagged: dict[str, set[int]]) -> Markup:
    """A text preview line by line (``<span id="f3-r12">``, numbered by the style)."""
    out = []
    for n, line in enumerate(lines, start=1):
        anchor = f"f{file_id}-r{n}"
        mark = ' class="flagged"' if anchor in flagged else ""
        out.append(f'<span id="{anchor}"{mark}>{escape(line)}</span>')
    return Markup("".join(out))


def file_views(view: dict[str, Any], previews: dict[int, dict[str, Any]],
               language: str) -> list[dict[str, Any]]:
    """Per file of the request: its check entry, findings by rule, preview, flagged cells."""
    entries = {e.get("path"): e for e in (view.get("check_record") or {}).get("files", [])}
    out = []
    for f in view.get("files", []):
        entry = entries.get(f["path"]) or {}
        preview = previews.get(f["id"])
        preview = preview or {}
        groups, flagged = grouped(f["id"], entry.get("findings", []), preview, language)
        tables = [{**t, "base": table_base(f["id"], i),
                   "body": preview_rows(table_base(f["id"], i), t.get("rows") or [], flagged)}
                  for i, t in enumerate(preview.get("tables") or [])]
        text = preview.get("text")
        out.append({"file": f, "entry": entry, "groups": groups, "preview": preview,
                    "tables": tables, "flagged": flagged,
                    "lines": preview_lines(f["id"], text.split("\n"), flagged) if text
                    else None})
    return out


# -- routes --------------------------------------------------------------------------------
def routes(kit: PageKit) -> APIRouter:
    router = APIRouter()
    zone = kit.zone

    def review_page(request: Request, request_id: str, status: int = 200,
                    problem: dict[str, Any] | None = None) -> HTMLResponse:
        me, token = kit.who(request)
        view = review.review_view(zone, me, request_id)
        return kit.render(request, "review.html", me, token, status=status, r=view,
                          files=file_views(view, view["previews"], page_language(request)),
                          problem=problem or {})

    def outcome_page(request: Request, request_id: str, status: int = 200,
                     problem: dict[str, Any] | None = None) -> HTMLResponse:
        me, token = kit.who(request)
        view = review.outcome(zone, me, request_id)
        paths = {f["id"]: f["path"] for f in view["files"]}
        return kit.render(request, "outcome.html", me, token, status=status, r=view,
                          paths=paths, problem=problem or {},
                          done=request.query_params.get("done", ""))

    @router.get("/pages/review")
    @action("export.queue")
    def queue(request: Request) -> HTMLResponse:
        me, token = kit.who(request)
        return kit.render(request, "queue.html", me, token, requests=review.queue(zone, me),
                          released=release.revocable(zone, me))

    @router.get("/pages/review/{request_id}")
    @action("export.preview")
    def live(request: Request, request_id: str) -> HTMLResponse:
        return review_page(request, request_id)

    @router.post("/pages/review/{request_id}/vote")
    @action("export.vote")
    async def vote(request: Request, request_id: str) -> Response:
        me, form, _ = await kit.posted(request)
        try:
            file_id = int(form.get("file_id", ""))
        except ValueError:
            raise NotFound("no such file in this request") from None
        typed = {"file_id": file_id, "decision": str(form.get("decision", "")),
                 "comment": str(form.get("comment", "")),
                 "override_reason": str(form.get("override_reason", ""))}
        try:
            after = review.vote(zone, me, request_id, file_id, typed["decision"],
                                typed["comment"], typed["override_reason"])
        except (InvalidInput, Conflict) as exc:  # shown at the file's form, nothing lost
            return review_page(request, request_id, exc.status_code,
                               {**typed, "error": kit.text(request, exc.message)})
        if after["status"] == "in_review":
            return kit.go(f"pages/review/{request_id}#file-{file_id}")
        return kit.go(f"pages/review/{request_id}/outcome")  # decided: the files close

    @router.get("/pages/review/{request_id}/outcome")
    @action("export.view")
    def outcome(request: Request, request_id: str) -> HTMLResponse:
        return outcome_page(request, request_id)

    @router.post("/pages/review/{request_id}/revoke")
    @action("export.revoke")
    async def revoke(request: Request, request_id: str) -> Response:
        me, form, _ = await kit.posted(request)
        reason = str(form.get("reason", ""))
        try:
            release.revoke(zone, me, request_id, reason)
        except InvalidInput as exc:
            return outcome_page(request, request_id, exc.status_code,
                                {"reason": reason, "error": kit.text(request, exc.message)})
        return kit.go(f"pages/review/{request_id}/outcome?done=revoked")

    return router
