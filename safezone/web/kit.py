"""What every page module shares: who the caller is, CSRF-checked forms, rendering in the
page's language, redirects. Pages decide nothing about who may do what: each route names
its permission-table action (``@action``) and the services behind it apply the table."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from ..api.origin import placed
from ..clock import local
from ..config import UNISOLATED_DEMO_WARNING_EN, UNISOLATED_DEMO_WARNING_KO
from ..errors import NotAuthenticated, PermissionDenied
from ..permissions import Identity
from ..zone import Zone
from .i18n import LANGUAGE_COOKIE, LANGUAGES, choose_language, language_name, translations
from .labels import label
from .session import COOKIE, HubOAuthClient, csrf_ok, csrf_token, logged_out

TEMPLATE_DIR = Path(__file__).parent / "templates"
NOBODY = Identity("", "user", frozenset())


class LoginRequired(Exception):
    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


def human_size(size: int | None, language: str) -> str:
    """1,234,567 → "1.2 MB" (decimal units, the page's number format)."""
    if size is None:
        return "—"
    value, unit = float(size), "B"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            break
        value /= 1000
    pattern = "#,##0" if unit == "B" else "#,##0.0"
    return f"{format_decimal(value, pattern, locale=language)} {unit}"


def when(moment: datetime | str | None, language: str, *, time: bool = True) -> str:
    """A date (and time, on the zone's clock, with its zone) in the page's language; blank
    for none."""
    if not moment or isinstance(moment, jinja2.Undefined):
        return ""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if not isinstance(moment, datetime):  # a calendar day (an application's period)
        return format_date(moment, "medium", locale=language)
    moment = local(moment)
    if not time:
        return format_date(moment, "medium", locale=language)
    shown = format_datetime(moment, "medium", tzinfo=moment.tzinfo, locale=language)
    return f"{shown} {moment.tzname()}"


@cache
def environment(language: str) -> jinja2.Environment:
    """One Jinja environment per language, with that language's catalogue installed."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE_DIR), autoescape=True,
                             undefined=jinja2.ChainableUndefined,
                             extensions=["jinja2.ext.i18n"])
    gettext = translations(language)
    env.install_gettext_translations(gettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters["label"] = lambda code, kind: gettext.gettext(label(code, kind))
    env.filters["size"] = lambda size: human_size(size, language)
    env.filters["when"] = lambda moment: when(moment, language)
    env.filters["day"] = lambda moment: when(moment, language, time=False)
    env.globals.update(lang=language, languages=[(code, language_name(code))
                                                 for code in LANGUAGES])
    return env


def page_language(request: Request) -> str:
    return choose_language(request.cookies.get(LANGUAGE_COOKIE),
                           request.headers.get("accept-language"))


def demo_warning(zone: Zone, language: str) -> str:
    """The banner every page shows when notebooks run unsandboxed (else empty)."""
    if not zone.settings.unisolated_demo:
        return ""
    return UNISOLATED_DEMO_WARNING_KO if language == "ko" else UNISOLATED_DEMO_WARNING_EN


HANGUL_ASIDE = re.compile(r"\s*\([^()]*[\uac00-\ud7a3][^()]*\)")


def said(request: Request, message: str) -> str:
    """A service's message on a page: English pages drop its Korean asides."""
    return HANGUL_ASIDE.sub("", message) if page_language(request) == "en" else message


def secure_request(request: Request) -> bool:
    """Served over https (directly, or behind the hub's proxy that says so)."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip()
    return request.url.scheme == "https" or forwarded == "https"


@dataclass
class PageKit:
    zone: Zone
    oauth: HubOAuthClient

    @property
    def prefix(self) -> str:
        return self.oauth.prefix

    def here(self, request: Request) -> str:
        return self.prefix + request.url.path.lstrip("/")

    def who(self, request: Request) -> tuple[Identity, str]:
        """The page session's caller and token; a login redirect without one."""
        token = request.cookies.get(COOKIE)
        if not token or logged_out(self.zone, token):
            raise LoginRequired(self.here(request))
        try:
            return placed(self.zone.hub.identify(token), self.zone.settings, request), token
        except NotAuthenticated:
            raise LoginRequired(self.here(request)) from None

    async def posted(self, request: Request) -> tuple[Identity, Any, str]:
        """The caller of a form POST, its fields and session token, after the CSRF check."""
        me, token = self.who(request)
        form = await request.form()
        if not csrf_ok(token, form.get("_csrf")):
            raise PermissionDenied("the form expired or came from elsewhere; reload the page")
        return me, form, token

    def text(self, request: Request, message: str) -> str:
        """One English page string in the caller's language (for flashes and errors)."""
        return translations(page_language(request)).gettext(message)

    def html(self, request: Request, name: str, me: Identity, token: str, **context: Any
             ) -> str:
        language = page_language(request)
        return environment(language).get_template(name).render(
            me=me, csrf=csrf_token(token) if token else "", prefix=self.prefix,
            here=self.here(request) + (f"?{request.url.query}" if request.url.query else ""),
            demo_warning=demo_warning(self.zone, language), **context)

    def render(self, request: Request, name: str, me: Identity, token: str,
               status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(self.html(request, name, me, token, **context),
                            status_code=status, headers={"Cache-Control": "no-store"})

    def go(self, path: str) -> RedirectResponse:
        return RedirectResponse(f"{self.prefix}{path}", status_code=303)
