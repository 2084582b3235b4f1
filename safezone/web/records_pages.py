"""The access records' monthly review (월간 점검) in the pages: the month's totals and its
unusual patterns (reads outside working hours, days far above a user's median, refused
accesses, reads from an unverified source address), with the full report as CSV or
JSON. Reading writes nothing; the administrator marks the month reviewed with a form
(POST, CSRF-checked), through the newest record the page showed."""


from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ..api.actions import action
from ..clock import local
from ..errors import InvalidInput
from ..permissions import Identity
from ..records import report
from .i18n import N_
from .kit import PageKit, said

SHOWN = 200  # rows of each unusual list on the page; the CSV has them all
NOT_A_RECORD = N_("The record number the page sent is not a number; reload the page.")


def routes(kit: PageKit) -> APIRouter:
    router = APIRouter()
    zone = kit.zone

    @router.get("/pages/admin/records")
    @action("records.report")
    def monthly_review(request: Request, month: str = "") -> HTMLResponse:
        me, token = kit.who(request)
        chosen = month or local(zone.now()).strftime("%Y-%m")
        return page(request, me, token, chosen,
                    just_reviewed=request.query_params.get("done") == "reviewed")

    @router.post("/pages/admin/records/reviewed")
    @action("records.review")
    async def mark_reviewed(request: Request) -> Response:
        me, form, token = await kit.posted(request)
        month = str(form.get("month", ""))
        try:
            through = int(str(form.get("through", "")))
        except ValueError:
            return page(request, me, token, month, status=422,
                        error=kit.text(request, NOT_A_RECORD))
        try:
            done = report.mark_reviewed(zone, me, month, through)
        except InvalidInput as exc:
            return page(request, me, token, month, status=exc.status_code,
                        error=said(request, exc.message))
        return kit.go(f"pages/admin/records?month={done['month']}&done=reviewed")

    def page(request: Request, me: Identity, token: str, month: str, status: int = 200, *,
             just_reviewed: bool = False, error: str = "") -> HTMLResponse:
        """The month's page; ``just_reviewed`` (a redirect's ``done``) shows its message
        only if this administrator's review is the month's latest (a link cannot claim
        one)."""
        done = report.read(zone, me, month)
        reviews = report.reviews(zone, me, done["month"])
        unusual = {k: v[:SHOWN] for k, v in done["unusual"].items()}
        return kit.render(request, "admin_records.html", me, token, status=status,
                          month=done["month"], through=done["through"],
                          totals=done["totals"], by_action=done["by_action"],
                          policy=done["policy"], unusual=unusual,
                          counts={k: len(v) for k, v in done["unusual"].items()},
                          reviews=reviews, error=error,
                          reviewed=just_reviewed and bool(reviews) and
                          reviews[-1]["by"] == me.label)

    return router
