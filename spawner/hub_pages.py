"""The hub's own pages speak the Safezone's language and lead back to its pages.

JupyterHub renders its templates without the request, so the language of each request
(the Safezone pages' remembered switch, the ``safezone-lang`` cookie set for path ``/``,
else ``Accept-Language``, else Korean — ``safezone.web.i18n.choose_language``) is noted in
a context variable as tornado starts the request (:class:`LanguageNote`), and the
templates of ``hub_config/templates/`` read it through the Jinja globals of
:class:`HubPages`. The spawner reads the same choice from its spawn request and hands it
to the notebook server as ``SAFEZONE_LANGUAGE``.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from jinja2 import Environment
from jinja2.ext import Extension
from tornado.httputil import HTTPServerRequest
from tornado.web import OutputTransform

from safezone.web.i18n import DEFAULT_LANGUAGE, LANGUAGE_COOKIE, LANGUAGES, choose_language

LANGUAGE: ContextVar[str] = ContextVar("safezone_hub_language", default=DEFAULT_LANGUAGE)
PAGES = "services/safezone/pages/"  # the Safezone pages, under the hub's base URL

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "nav": "Safezone navigation",
        "pages": "Safezone home",
        "catalogue": "Data catalogue",
        "notebooks": "Notebooks",
        "token": "Token",
        "admin": "Hub admin",
        "logout": "Log out",
        "start_heading": "Start a notebook",
        "start": "Start",
        "project": "Project",
        "no_project_heading": "You have no approved project yet",
        "no_project": "A notebook opens on an approved project's data. Find a dataset in "
                      "the data catalogue and apply for access; an administrator decides, "
                      "and your applications page shows where yours stands.",
        "to_catalogue": "Browse the data catalogue",
        "to_apply": "Apply for access",
        "to_applications": "See your applications",
        "refused": "The notebook could not start",
        "choose_project": "choose a project to start a server for",
    },
    "ko": {
        "nav": "안심구역 메뉴",
        "pages": "안심구역 홈",
        "catalogue": "데이터 카탈로그",
        "notebooks": "노트북",
        "token": "토큰",
        "admin": "허브 관리",
        "logout": "로그아웃",
        "start_heading": "노트북 시작",
        "start": "시작",
        "project": "프로젝트",
        "no_project_heading": "아직 승인된 프로젝트가 없습니다",
        "no_project": "노트북은 승인된 프로젝트의 데이터로 열립니다. 데이터 카탈로그에서 "
                      "데이터셋을 찾아 이용 신청을 하세요. 관리자가 결정하며, 신청 상태는 "
                      "내 이용 신청 페이지에서 볼 수 있습니다.",
        "to_catalogue": "데이터 카탈로그 보기",
        "to_apply": "이용 신청하기",
        "to_applications": "내 이용 신청 보기",
        "refused": "노트북을 시작할 수 없습니다",
        "choose_project": "서버를 시작할 프로젝트를 선택하세요",
    },
}
NO_PROJECT_MARK = "data-safezone-no-project"  # the spawn form says: nothing to start
# where someone without a project goes (pages under PAGES, and their TEXT key)
WAY_TO_A_PROJECT = (("catalogue", "to_catalogue"), ("apply", "to_apply"),
                    ("applications", "to_applications"))


def request_language(request: HTTPServerRequest | None) -> str:
    """The language a request asks for, the way the Safezone pages choose it."""
    if request is None:
        return DEFAULT_LANGUAGE
    cookie = request.cookies.get(LANGUAGE_COOKIE)
    return choose_language(cookie.value if cookie else None,
                           request.headers.get("Accept-Language"))


def text(language: str | None = None) -> dict[str, str]:
    """The hub pages' strings in ``language`` (default: the current request's)."""
    chosen = language or LANGUAGE.get()
    return TEXT[chosen if chosen in LANGUAGES else DEFAULT_LANGUAGE]


class LanguageNote(OutputTransform):
    """Tornado builds one per request, just before the request's handler runs (in the
    context the handler's task copies): notes the request's language. Changes no output."""

    def __init__(self, request: HTTPServerRequest) -> None:
        super().__init__(request)
        LANGUAGE.set(request_language(request))


class HubPages(Extension):
    """Jinja globals of the hub templates: ``safezone_lang()``, ``safezone_text()``,
    ``safezone_pages`` (the pages' path under the hub's base URL) and ``safezone_way``."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.globals.update(safezone_lang=lambda: LANGUAGE.get(),
                                   safezone_text=text, safezone_pages=PAGES,
                                   safezone_way=WAY_TO_A_PROJECT)


def hub_settings() -> dict[str, Any]:
    """What ``jupyterhub_config.py`` sets: the per-request note and the Jinja globals."""
    return {"tornado_settings": {"transforms": [LanguageNote]},
            "jinja_environment_options": {"extensions": [f"{__name__}.HubPages"]}}
