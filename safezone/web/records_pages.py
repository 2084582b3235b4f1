"""The access records' monthly review (월간 점검) in the pages: the month's totals and its
unusual patterns (reads outside working hours, days far above a user's median, refused
accesses, reads from an unverified source address), with the full report as CSV or
JSON. Opening it is a review, and recorded."""


from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ..api.actions import action
from ..clock import local
from ..records import report
from .kit import PageKit

SHOWN = 200  # rows of each unusual list on the page; the CSV has them all


def routes(kit: PageKit) -> APIRouter:
    router = APIRouter()
    zone = kit.zone

    @router.get("/pages/admin/records")
    @action("records.report")
    def monthly_review(request: Request, month: str = "") -> HTMLResponse:
        me, token = kit.who(request)
        chosen = month or local(zone.now()).strftime("%Y-%m")
        done = report.review(zone, me, chosen)
        unusual = {k: v[:SHOWN] for k, v in done["unusual"].items()}
        return kit.render(request, "admin_records.html", me, token, month=done["month"],
                          totals=done["totals"], by_action=done["by_action"],
                          policy=done["policy"], unusual=unusual,
                          counts={k: len(v) for k, v in done["unusual"].items()})

    return router
