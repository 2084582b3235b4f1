"""The researcher's export requests: the request form (outbox by folder, evidence attached,
every rule checked on the server, errors inline, nothing typed lost), the dry run, a
request's page (findings, approvals, next step, dates), withdraw with confirmation,
resubmit, and counted download links."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from ..api.actions import action
from ..api.exports_routes import attachment, wants_bom
from ..checks.explain import explain
from ..checks.findings import load_rules
from ..errors import InvalidInput
from ..exports import release, service
from ..exports.service import MAX_JUSTIFICATION, MAX_TITLE, Problem, TooBusy
from ..permissions import Identity
from .i18n import N_
from .kit import PageKit, human_size, page_language

# what each problem of the form says, next to its field (numbers filled in by the page)
MESSAGES = {
    "blank:title": N_("Give the request a title."),
    "too_long:title": N_("The title has %(found)s characters; the limit is %(limit)s. "
                         "Shorten it."),
    "blank:why": N_("Say why this file may leave the zone."),
    "too_long:why": N_("This justification has %(found)s characters; the limit is "
                       "%(limit)s. Shorten it."),
    "none:files": N_("Choose at least one file from your outbox."),
    "too_many:files": N_("%(found)s files, with their evidence, are more than the limit of "
                         "%(limit)s per request. Split them over several requests."),
    "request_too_large:files": N_("The chosen files add up to %(found)s, over the limit of "
                                  "%(limit)s per request."),
    "too_large:file": N_("This file is %(found)s, over the limit of %(limit)s."),
    "missing:file": N_("%(path)s is not in your outbox (any more)."),
    "bad_path:file": N_("%(path)s is not a file name of your outbox."),
    "evidence:file": N_("%(path)s is evidence: it is attached to its table by itself and "
                        "never exported."),
    "duplicate:file": N_("%(path)s is chosen twice."),
    "refused:file": N_("Files of this kind (%(kind)s) cannot leave the zone: save the result "
                       "as a table, text, image or PDF."),
}
SIZES = {"too_large", "request_too_large"}  # problems whose numbers are bytes
ZONE_TEXT_SHOWN = N_("(written inside the zone: shown there and to its reviewers)")


def _plain(value: Any) -> str:
    """A form text as the browser counted it (line breaks as one character), trimmed."""
    return value.replace("\r\n", "\n").strip() if isinstance(value, str) else ""


def _folders(listing: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """The outbox by folder, evidence sidecars left out; each file gets its form id."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in listing:
        if not entry["evidence"]:
            grouped[entry["folder"]].append(entry)
    out = []
    for g, folder in enumerate(sorted(grouped), start=1):
        files = sorted(grouped[folder], key=lambda f: f["path"])
        out.append((folder, [{**f, "key": f"f{g}-{i}"} for i, f in enumerate(files, 1)]))
    return out


def routes(kit: PageKit) -> APIRouter:
    router = APIRouter()
    zone = kit.zone

    def message(request: Request, problem: Problem) -> str:
        kind, _, detail = problem.code.partition(":")
        where = "file" if problem.field.startswith("file:") else (
            "why" if problem.field.startswith("why:") else problem.field)
        template = MESSAGES.get(f"{kind}:{where}", N_("This field is not valid."))
        language = page_language(request)
        found, limit = problem.found, problem.limit
        if kind in SIZES:
            found, limit = human_size(found, language), human_size(limit, language)
        return kit.text(request, template) % {
            "found": found, "limit": limit, "kind": detail,
            "path": problem.field.partition(":")[2]}

    def form_page(request: Request, me: Identity, token: str, project: str,
                  listing: list[dict[str, Any]], *, status: int = 200,
                  values: dict[str, Any] | None = None, problems: Sequence[Problem] = (),
                  failure: str = "", dry: dict[str, Any] | None = None) -> HTMLResponse:
        folders = _folders(listing)
        ids = {f["path"]: f["key"] for _, files in folders for f in files}
        errors: dict[str, list[str]] = defaultdict(list)
        summary: list[tuple[str, str]] = []  # (anchor, message)
        for problem in problems:
            text = message(request, problem)
            kind, _, path = problem.field.partition(":")
            anchor = (f"why-{ids[path]}" if kind == "why" else f"pick-{ids[path]}") \
                if path in ids else ("title" if kind == "title" else "files")
            errors[problem.field].append(text)
            summary.append((anchor, text))
        if failure:
            summary.append(("files", failure))
        return kit.render(
            request, "new_request.html", me, token, status=status, project=project,
            folders=folders, values=values or {"title": "", "chosen": [], "why": {}},
            errors=dict(errors), summary=summary,
            limits={"title": MAX_TITLE, "justification": MAX_JUSTIFICATION,
                    "files": load_rules().files["max_files"]},
            dry=dry, explained=explain(dry["record"], page_language(request)) if dry else None)

    def typed(form: Any) -> tuple[dict[str, Any], list[dict[str, str]]]:
        """What the form holds, as typed, and the chosen files with their reasons."""
        why = {key[4:]: _plain(value) for key, value in form.multi_items()
               if key.startswith("why:")}
        chosen = [p for p in form.getlist("file") if isinstance(p, str)]
        values = {"title": _plain(form.get("title", "")), "chosen": chosen, "why": why}
        return values, [{"path": p, "justification": why.get(p, "")} for p in chosen]

    @router.get("/pages/projects/{name}/requests/new")
    @action("export.outbox")
    def new_request(request: Request, name: str) -> HTMLResponse:
        """The request form: the caller's outbox in this project, by folder."""
        me, token = kit.who(request)
        return form_page(request, me, token, name, service.outbox_listing(zone, me, name))

    @router.post("/pages/requests")
    @action("export.create")
    async def create(request: Request) -> Response:
        """Check every rule first; create and submit only a request that passes them all."""
        me, form, token = await kit.posted(request)
        project = str(form.get("project", ""))
        values, files = typed(form)
        checked = await run_in_threadpool(service.check_draft, zone, me, project,
                                          values["title"], files)
        if checked.problems:
            return form_page(request, me, token, project, checked.listing, status=422,
                             values=values, problems=checked.problems)
        created = await run_in_threadpool(service.create_request, zone, me, project,
                                          values["title"], checked.entries)
        try:
            await run_in_threadpool(service.submit, zone, me, created["id"])
        except InvalidInput as exc:  # the outbox changed since the form's checks: a draft
            return request_page(request, me, token, created["id"], status=422,
                                failure=exc.message)
        return kit.go(f"pages/requests/{created['id']}")

    @router.post("/pages/projects/{name}/requests/dry-run")
    @action("export.dry_run")
    async def dry_run(request: Request, name: str) -> HTMLResponse:
        """The checks on the chosen files, now, with no request made; the form stays."""
        me, form, token = await kit.posted(request)
        values, files = typed(form)
        checked = await run_in_threadpool(service.check_draft, zone, me, name,
                                          values["title"], files, dry_run=True)
        if checked.problems:
            return form_page(request, me, token, name, checked.listing, status=422,
                             values=values, problems=checked.problems)
        try:
            done = await run_in_threadpool(service.dry_run, zone, me, name,
                                           [f["path"] for f in files])
        except (InvalidInput, TooBusy) as exc:
            return form_page(request, me, token, name, checked.listing,
                             status=exc.status_code, values=values, failure=exc.message)
        return form_page(request, me, token, name, checked.listing, values=values, dry=done)

    def request_page(request: Request, me: Identity, token: str, request_id: str, *,
                     status: int = 200, failure: str = "", ask_withdraw: bool = False
                     ) -> HTMLResponse:
        view = service.get_request(zone, me, request_id)
        title = view["title"]
        if title == service.ZONE_TEXT:
            title = kit.text(request, ZONE_TEXT_SHOWN)
        paths = {f["id"]: f["path"] for f in view["files"]}
        return kit.render(
            request, "request.html", me, token, status=status, r=view, shown_title=title,
            progress=service.progress(zone, me, request_id), paths=paths,
            explained=explain(view["check_record"], page_language(request)),
            failure=failure, ask_withdraw=ask_withdraw)

    @router.get("/pages/requests/{request_id}")
    @action("export.view")
    def show(request: Request, request_id: str) -> HTMLResponse:
        me, token = kit.who(request)
        return request_page(request, me, token, request_id)

    @router.post("/pages/requests/{request_id}/submit")
    @action("export.submit")
    async def resubmit(request: Request, request_id: str) -> Response:
        me, _, token = await kit.posted(request)
        try:
            await run_in_threadpool(service.submit, zone, me, request_id)
        except InvalidInput as exc:
            return request_page(request, me, token, request_id, status=422,
                                failure=exc.message)
        return kit.go(f"pages/requests/{request_id}")

    @router.post("/pages/requests/{request_id}/withdraw")
    @action("export.withdraw")
    async def withdraw(request: Request, request_id: str) -> Response:
        """Withdraws only with the confirmation field; without it, asks (if it may)."""
        me, form, token = await kit.posted(request)
        if form.get("confirm") != "yes":
            service.may_withdraw(zone, me, request_id)
            return request_page(request, me, token, request_id, ask_withdraw=True)
        service.withdraw(zone, me, request_id)
        return kit.go(f"pages/requests/{request_id}")

    @router.post("/pages/requests/{request_id}/files/{file_id}/download")
    @action("export.link")
    async def new_link(request: Request, request_id: str, file_id: int) -> HTMLResponse:
        """A counted link; its token goes back only inside a form, posted to download."""
        me, _, token = await kit.posted(request)
        link = release.create_link(zone, me, request_id, file_id)
        return kit.render(request, "download.html", me, token, link=link,
                          request_id=request_id)

    @router.post("/pages/download")
    @action("export.download")
    async def download(request: Request) -> Response:
        me, form, _ = await kit.posted(request)
        return attachment(release.redeem_link(zone, me, str(form.get("token", "")),
                                              bom=wants_bom(form.get("bom"))))

    return router
