"""The data catalogue in the pages: every published dataset with its entry in the page's
language, the data dictionary, the report's public part, and the way to apply; nothing
that is not published."""

from __future__ import annotations

import re

from safezone.api.actions import routes_of
from safezone.web import application_pages, catalogue_pages
from safezone.web.kit import PageKit
from safezone.web.session import HubOAuthClient

from .support import attested_dataset, browser_session, register_published_dataset, unique


def pages_mounted(stack) -> None:
    """The catalogue and application pages on the stack's control plane. A no-op once
    ``safezone/web/pages.py`` includes their routers (it then already has the routes)."""
    app = stack.control_plane.server.config.app
    if "/pages/catalogue" in {r.path for r in routes_of(app)}:
        return
    settings = stack.zone.settings
    kit = PageKit(stack.zone, HubOAuthClient(settings.hub_api_url, settings.service_name,
                                             settings.service_token, settings.base_url))
    app.include_router(catalogue_pages.routes(kit))
    app.include_router(application_pages.routes(kit))


def in_language(stack, user: str, language: str):
    browser = browser_session(stack, user)
    browser.cookies.set("safezone-lang", language)
    return browser


def test_catalogue_lists_published_datasets_in_the_page_language(stack):
    pages_mounted(stack)
    shown, hidden = unique("deid-cp"), unique("deid-cp")
    register_published_dataset(stack, shown, b"id,age\n" + b"".join(
        f"{i},{30 + i % 5}\n".encode() for i in range(40)))
    attested_dataset(stack.zone, hidden)  # attested but not published

    english = in_language(stack, "bob", "en").get("pages/catalogue")
    assert english.status_code == 200, english.text
    page = english.text
    for fact in ("Test data", "De-identified test data", "test", "Test institution",
                 "Safezone terms of use", "Irregularly", "k-anonymity", "Jan 1, 2024",
                 "Dec 31, 2024"):
        assert fact in page, fact
    assert f'href="/services/safezone/pages/catalogue/{shown}"' in page
    assert f"pages/apply?dataset={shown}" in page
    assert hidden not in page
    assert not re.search("[\uac00-\ud7a3]", page.split('lang="ko"')[0]), "Korean on an " \
        "English page"

    korean = in_language(stack, "bob", "ko").get("pages/catalogue").text
    for fact in ("시험 데이터", "시험용 가명 데이터", "수시", "제공기관"):
        assert fact in korean, fact


def test_dataset_page_has_dictionary_report_link_and_apply(stack):
    pages_mounted(stack)
    name = unique("deid-cp")
    register_published_dataset(stack, name)
    browser = in_language(stack, "bob", "en")
    page = browser.get(f"pages/catalogue/{name}")
    assert page.status_code == 200, page.text
    html = page.text
    dictionary = html.split('id="dictionary"')[1].split("</table>")[0]
    assert "row number" in dictionary and "age in years" in dictionary
    assert "Kept as is" in dictionary and "<code>id</code>" in dictionary
    assert re.search(r"<td>(int|integer|int64)", dictionary), dictionary
    # at 390 px the table scrolls, and its region takes the keyboard focus (axe)
    assert '<div class="scroll" tabindex="0"><table id="dictionary">' in html
    assert f"pages/apply?dataset={name}" in html
    report = re.search(r'href="([^"]+/api/catalogue/[^"]+/report)"', html).group(1)
    public = browser.get(report.removeprefix("/services/safezone/"))
    assert public.status_code == 200 and "text/html" in public.headers["content-type"]
    assert "k" in public.text

    korean = in_language(stack, "bob", "ko").get(f"pages/catalogue/{name}").text
    assert "데이터 사전" in korean and "유지" in korean and "시험 데이터" in korean


def test_unpublished_or_unknown_dataset_page_is_not_found(stack):
    pages_mounted(stack)
    draft = unique("deid-cp")
    attested_dataset(stack.zone, draft)
    browser = in_language(stack, "bob", "en")
    for name in (draft, "deid-no-such-thing"):
        missing = browser.get(f"pages/catalogue/{name}")
        assert missing.status_code == 404
        assert "No published dataset has this name." in missing.text


def test_catalogue_needs_a_login(stack):
    pages_mounted(stack)
    import httpx

    anonymous = httpx.get(f"{stack.hub_url}/services/safezone/pages/catalogue",
                          follow_redirects=False, timeout=30)
    assert anonymous.status_code == 302 and "oauth2/authorize" in anonymous.headers["location"]
