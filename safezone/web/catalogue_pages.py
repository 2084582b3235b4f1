"""The data catalogue in the pages: the published de-identified datasets, each with its
entry (title, description, keywords, publisher, period, update cycle, licence), rows and
k/l achieved, the data dictionary and a link to the report's public part — in the page's
language — and the way to apply for access."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ..api.actions import action
from ..catalogue import service as catalogue
from ..catalogue.metadata import texts, words
from ..errors import NotFound
from .i18n import N_
from .kit import PageKit, page_language


def pick(value: Any, language: str) -> str:
    """A catalogue text in ``language``: its own, else the untagged one, else any."""
    found = texts(value) if isinstance(value, str | dict) else {}
    return found.get(language) or found.get(None) or next(iter(found.values()), "") or ""


def pick_words(value: Any, language: str) -> list[str]:
    found = words(value) if isinstance(value, list | dict) else {}
    return found.get(language) or found.get(None) or next(iter(found.values()), []) or []


def localised(entry: dict[str, Any], language: str) -> dict[str, Any]:
    """One catalogue entry (``catalogue.service.entry``) with its texts in ``language``."""
    licence = entry.get("licence") or {}
    temporal = entry.get("temporal") or {}
    return {
        "name": entry["name"], "title": pick(entry.get("title"), language) or entry["name"],
        "description": pick(entry.get("description"), language),
        "keywords": pick_words(entry.get("keywords"), language),
        "publisher": pick(entry.get("publisher"), language),
        "start": temporal.get("start"), "end": temporal.get("end"),
        "cycle": entry.get("accrual_periodicity"),
        "licence": pick(licence.get("title"), language), "licence_url": licence.get("url"),
        "rows": entry.get("rows"), "k": entry.get("k"), "k_achieved": entry.get("k_achieved"),
        "l": entry.get("l"), "l_achieved": entry.get("l_achieved"),
        "published_at": entry.get("published_at"), "report": entry.get("report"),
        "columns": [{**c, "description": pick(c.get("description"), language)}
                    for c in entry.get("data_dictionary", [])],
        "columns_removed": entry.get("columns_removed", []),
    }


def titles(datasets: list[Any], language: str) -> dict[str, str]:
    """Dataset name → its catalogue title in ``language`` (the name when it has none)."""
    return {d.name: pick((d.catalogue or {}).get("title"), language) or d.name
            for d in datasets}


def routes(kit: PageKit) -> APIRouter:
    router = APIRouter()
    zone = kit.zone

    def entries(request: Request, me: Any) -> list[dict[str, Any]]:
        # the report link is the API's public part, reached with the page cookie
        listed = catalogue.list_catalogue(zone, me, kit.prefix.rstrip("/"))
        return [localised(e, page_language(request)) for e in listed]

    @router.get("/pages/catalogue")
    @action("catalogue.read")
    def index(request: Request) -> HTMLResponse:
        me, token = kit.who(request)
        return kit.render(request, "catalogue.html", me, token, datasets=entries(request, me))

    @router.get("/pages/catalogue/{name}")
    @action("catalogue.read")
    def dataset(request: Request, name: str) -> HTMLResponse:
        me, token = kit.who(request)
        found = [d for d in entries(request, me) if d["name"] == name]
        if not found:
            raise NotFound(kit.text(request, N_("No published dataset has this name.")))
        return kit.render(request, "catalogue_dataset.html", me, token, d=found[0])

    return router
