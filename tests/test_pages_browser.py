"""The whole journey in Debian's Chromium (Playwright), on the real stack, in Korean and in
English, at 1280 px and 390 px wide:

bob finds a dataset in the catalogue and applies → an administrator approves with an
expiry → bob starts his notebook, runs the welcome notebook and saves tables → a dry run
flags one table, bob drops it and submits the other → a reviewer asks for changes, bob
submits again, a second reviewer approves → bob downloads → the administrator revokes
the release and bob's access.

Every step is a screenshot under ``.artifacts/journey/<language>-<width>/`` (git
ignores it; CI keeps it), every page is checked with axe-core (no serious or critical
violation) and for horizontal scrolling.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from safezone.config import REPO_ROOT as REPO
from safezone.local import demo
from safezone.web.i18n import translations

from .support import PIPELINE_KEY, report_measure, unique

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
SHOTS = REPO / ".artifacts" / "journey"
WIDTHS = {1280: 900, 390: 844}
HANGUL = re.compile(r"[\uac00-\ud7a3]")
RARE = "tables/rare.csv"
RARE_CELL = ("from safezone.notebook import crosstab, save_table\n"
             "rare, rare_evidence = crosstab(df[df.visits > 11], 'sido', 'sex')\n"
             f"save_table(rare, {RARE!r}, evidence=rare_evidence)\n")
AXE_SEEN: list[tuple[str, list[tuple[str, str]]]] = []


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.fail("Debian's chromium is missing: scripts/setup.sh installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-background-networking", "--disable-component-update",
            "--disable-gpu", "--no-first-run", "--disable-sync"])
        yield browser
        browser.close()


@pytest.fixture(scope="module", autouse=True)
def axe_summary():
    """The journeys' axe-core results in one line of the summary, once they all ran."""
    yield
    found = Counter(f"{rule} ({impact})" for _, seen in AXE_SEEN for rule, impact in seen)
    report_measure(f"axe-core: {len(AXE_SEEN)} page checks; violations by rule: "
                   f"{dict(found) or 'none'}")


@pytest.fixture(scope="module")
def demo_zone(stack):
    """The demo's de-identified health records, published with their catalogue entry."""
    demo.seed(stack.zone, PIPELINE_KEY)
    return demo.DEID_DATASET


class Person:
    """One person's browser at the journey's language and width, taking screenshots."""

    def __init__(self, browser, stack, user: str, language: str, width: int, folder: Path):
        self.stack, self.user, self.language, self.folder = stack, user, language, folder
        self.context = browser.new_context(
            accept_downloads=True, locale={"ko": "ko-KR", "en": "en-US"}[language],
            viewport={"width": width, "height": WIDTHS[width]})
        self.context.set_default_timeout(60_000)
        self.page = self.context.new_page()
        self.page.goto(f"{stack.hub_url}/hub/login")
        self.page.fill("#username_input", user)
        self.page.fill("#password_input", stack.passwords[user])
        self.page.click("#login_submit")
        self.page.wait_for_load_state()

    def _(self, message: str, **values: str) -> str:
        text = translations(self.language).gettext(message)
        return text % values if values else text

    def pages(self, path: str = "") -> None:
        self.page.goto(f"{self.stack.hub_url}/services/safezone/pages/{path}")
        self.page.wait_for_load_state()

    def shot(self, step: str, *, check: bool = True) -> None:
        """A full-page screenshot; on Safezone pages also the language, width and axe."""
        self.page.screenshot(path=str(self.folder / f"{step}.png"), full_page=True)
        if not check:
            return
        assert self.page.locator("html").get_attribute("lang") == self.language, step
        if self.language == "en":
            mine = self.page.locator("main").inner_text()
            for value in demo.SIDO:  # the data's own values (previews) are not our text
                mine = mine.replace(value, "")
            assert not HANGUL.search(mine), f"{step}: Korean on an English page: " \
                f"{HANGUL.findall(mine)[:20]} in {mine[:300]}"
        overflow = self.page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{step}: the page scrolls sideways by {overflow} px"
        from axe_playwright_python.sync_playwright import Axe

        results = Axe().run(self.page)
        serious = [v for v in results.response["violations"]
                   if v["impact"] in ("serious", "critical")]
        AXE_SEEN.append((f"{self.folder.name}/{step}", [
            (v["id"], v["impact"]) for v in results.response["violations"]]))
        assert not serious, f"{step}: " + "; ".join(
            f"{v['id']}: {v['help']} ({len(v['nodes'])} nodes: "
            f"{v['nodes'][0]['target']})" for v in serious)

    def button(self, name: str) -> None:
        self.page.get_by_role("button", name=name, exact=True).first.click()
        self.page.wait_for_load_state()

    def close(self) -> None:
        self.context.close()


@pytest.mark.parametrize("width", [1280, 390])
@pytest.mark.parametrize("language", ["ko", "en"])
def test_journey(stack, browser, demo_zone, language, width):
    folder = SHOTS / f"{language}-{width}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    project = unique("journey")[:30]
    bob = Person(browser, stack, "bob", language, width, folder)
    admin = Person(browser, stack, "admin", language, width, folder)
    try:
        _apply(bob, demo_zone)
        _approve(admin, project)
        _analyse(bob, project)
        request_url = _request(bob, project)
        _review(Person(browser, stack, "reviewer", language, width, folder), request_url,
                "request_changes")
        _resubmit(bob, request_url)
        _review(Person(browser, stack, "dave", language, width, folder), request_url,
                "approve")
        _download(bob, request_url)
        _revoke(admin, bob, project, request_url)
    except Exception:
        for person in (bob, admin):  # what each saw when it failed, for the CI artifact
            person.page.screenshot(path=str(folder / f"failed-{person.user}.png"),
                                   full_page=True)
        raise
    finally:
        bob.close()
        admin.close()
        stack.hub_api("bob").delete("/users/bob/server")  # the next journey spawns anew
    report_measure(f"journey {language} {width}px: {len(list(folder.glob('*.png')))} "
                   f"screenshots in {folder.relative_to(REPO)}")


def _apply(bob: Person, dataset: str) -> None:
    bob.pages()
    bob.shot("01-bob-home")
    _switch_language_and_back(bob)
    bob.page.get_by_role("link", name=bob._("Data catalogue"), exact=True).first.click()
    bob.page.wait_for_load_state()
    bob.shot("02-catalogue")
    bob.page.locator(f"a[href$='pages/catalogue/{dataset}']").first.click()
    bob.page.wait_for_load_state()
    assert "sido" in bob.page.content()  # the data dictionary
    bob.shot("03-dataset")
    bob.page.get_by_role("link", name=bob._("Apply for access")).first.click()
    bob.page.wait_for_load_state()
    assert bob.page.locator(f"input[name=datasets][value='{dataset}']").is_checked()
    bob.page.fill("#purpose", "Visits by province and sex in 2024, for a regional "
                              "health-service planning study.")
    until = (bob.stack.zone.now() + timedelta(days=90)).date().isoformat()
    bob.page.fill("#until", until)
    bob.page.check("#pledge")
    bob.shot("04-apply-form")
    bob.button(bob._("Submit the application"))
    assert bob.page.locator("#status").inner_text() == bob._("Waiting for a decision")
    bob.shot("05-applied-pending")
    bob.pages()
    assert bob._("Waiting for a decision") in bob.page.locator("#applications").inner_text()


def _switch_language_and_back(bob: Person) -> None:
    """The switch beats the browser's language and is remembered from page to page."""
    other = {"ko": "en", "en": "ko"}[bob.language]
    names = {"ko": "한국어", "en": "English"}
    html = bob.page.locator("html")
    bob.page.get_by_role("link", name=names[other], exact=True).click()
    bob.page.wait_for_load_state()
    assert html.get_attribute("lang") == other
    bob.pages("catalogue")
    assert html.get_attribute("lang") == other  # remembered (a cookie), not the header
    bob.page.get_by_role("link", name=names[bob.language], exact=True).click()
    bob.page.wait_for_load_state()
    assert html.get_attribute("lang") == bob.language
    assert bob.page.url.endswith("/pages/catalogue")  # back on the page it was chosen on


def _approve(admin: Person, project: str) -> None:
    admin.pages()
    admin.shot("06-admin-home")
    admin.pages("admin/applications")
    admin.shot("07-application-queue")
    row = admin.page.locator("#queue tr", has_text="bob").last
    row.get_by_role("link").first.click()
    admin.page.wait_for_load_state()
    admin.page.check("#t-new")
    admin.page.fill("#new_project", project)
    admin.page.fill("#title", "Regional health-service planning")
    expiry = (admin.stack.zone.now() + timedelta(days=60)).date().isoformat()
    admin.page.fill("#expires_at", expiry)
    admin.shot("08-approve-form")
    admin.button(admin._("Approve"))
    assert admin.page.locator("#status").inner_text() == admin._("Approved")
    admin.shot("09-approved")


def _analyse(bob: Person, project: str) -> None:
    """Start the notebook, run the welcome notebook's cells and one more that saves a table
    with small counts."""
    page = bob.page
    page.goto(f"{bob.stack.hub_url}/hub/spawn")
    page.select_option("#sz-project", project)
    bob.shot("10-spawn", check=False)
    page.locator("form input[type=submit], form button[type=submit]").first.click()
    page.wait_for_url(re.compile(r"/user/bob/lab"), timeout=120_000)
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=120_000)
    if page.viewport_size["width"] < 600:
        page.locator(".jp-Notebook").click()
        page.keyboard.press("Control+b")  # fold the file browser away on a phone's width
    outputs = page.locator(".jp-Notebook .jp-Cell.jp-CodeCell .jp-OutputArea-output")
    for _ in range(6):  # keys pressed before the kernel is connected only move the cursor
        page.locator(".jp-Notebook .jp-Cell").first.click()
        cells = page.locator(".jp-Notebook .jp-Cell").count()
        for _ in range(cells):
            page.keyboard.press("Shift+Enter")
        try:
            outputs.nth(1).wait_for(timeout=20_000)
            break
        except PlaywrightTimeout:
            continue
    outputs.nth(1).wait_for(timeout=60_000)
    page.keyboard.press("Escape")
    page.keyboard.press("b")  # a new cell below, in command mode
    page.keyboard.press("Enter")
    page.keyboard.insert_text(RARE_CELL)
    page.keyboard.press("Shift+Enter")
    outbox = bob.stack.minio.root_s3()
    prefix = f"{project}/bob/"

    def saved() -> set[str]:
        listed = outbox.list_objects_v2(Bucket="outbox", Prefix=prefix).get("Contents", [])
        return {o["Key"].removeprefix(prefix) for o in listed}

    for _ in range(120):
        if {"tables/first-table.csv", RARE} <= saved():
            break
        page.wait_for_timeout(500)
    assert {"tables/first-table.csv", RARE} <= saved(), saved()
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    assert errors.count() == 0 or "Error" not in errors.first.inner_text()
    bob.shot("11-lab-welcome", check=False)


def _request(bob: Person, project: str) -> str:
    bob.pages(f"projects/{project}/requests/new")
    form = bob.page
    for path in ("tables/first-table.csv", RARE):
        form.locator(f"input[name=file][value='{path}']").check()
        form.locator(f"[name='why:{path}']").fill("Counts by province and sex (n >= 10)")
    form.fill("#title", "Visits by province and sex")
    bob.shot("12-request-form")
    bob.button(bob._("Check my files first (dry run)"))
    dry = form.locator("#dry-run")
    assert RARE in dry.inner_text()
    assert bob._("Fail") in dry.inner_text()
    bob.shot("13-dry-run-flags-rare")
    form.locator(f"input[name=file][value='{RARE}']").uncheck()  # the fix: drop that table
    bob.button(bob._("Check my files first (dry run)"))
    assert RARE not in form.locator("#dry-run").inner_text()
    bob.shot("14-dry-run-clean")
    bob.button(bob._("Submit for review"))
    _wait_in_review(bob)
    bob.shot("15-submitted")
    return form.url


def _review(reviewer: Person, request_url: str, decision: str) -> None:
    """One reviewer's vote on the (only) file, with a comment."""
    request_id = request_url.rstrip("/").rsplit("/", 1)[-1]
    try:
        reviewer.pages("review")
        reviewer.shot(f"16-queue-{reviewer.user}")
        reviewer.page.locator(f"a[href$='pages/review/{request_id}']").first.click()
        reviewer.page.wait_for_load_state()
        assert reviewer.page.locator("input[name=decision]:checked").count() == 0
        reviewer.shot(f"17-review-{reviewer.user}")
        vote = reviewer.page.locator("form.vote").first
        vote.locator(f"input[name=decision][value={decision}]").check()
        vote.locator("textarea[name=comment]").fill(f"{reviewer.user}: {decision}")
        vote.locator("button[type=submit]").click()
        reviewer.page.wait_for_load_state()
        reviewer.shot(f"18-voted-{reviewer.user}")
    finally:
        reviewer.close()


def _resubmit(bob: Person, request_url: str) -> None:
    """Returned with a comment tied to the file, reviewer and time: bob submits again."""
    bob.page.goto(request_url)
    assert bob.page.locator("#status").inner_text() == bob._("Returned for changes")
    assert "reviewer: request_changes" in bob.page.content()
    bob.shot("19-returned")
    bob.button(bob._("Submit again"))
    _wait_in_review(bob)


def _wait_in_review(bob: Person) -> None:
    for _ in range(120):  # the page refreshes itself while the checks run
        if bob.page.locator("#status").inner_text() == bob._("In review"):
            break
        bob.page.wait_for_timeout(500)
        bob.page.reload()
    assert bob.page.locator("#status").inner_text() == bob._("In review")


def _download(bob: Person, request_url: str) -> None:
    bob.page.goto(request_url)
    assert bob.page.locator("#status").inner_text() == bob._("Released")
    bob.shot("20-released")
    bob.page.locator("form[action$='/download'] button[type=submit]").first.click()
    bob.page.wait_for_load_state()
    assert bob.page.url.endswith("/download")  # a form page: no token in any URL
    bob.shot("21-download")
    with bob.page.expect_download() as info:
        bob.page.locator("#download").click()
    saved = bob.folder / "downloaded.csv"
    info.value.save_as(saved)
    body = saved.read_bytes()
    assert body.startswith(b"\xef\xbb\xbf") == (bob.language == "ko")  # BOM for Excel in ko
    assert b"count" in body


def _revoke(admin: Person, bob: Person, project: str, request_url: str) -> None:
    request_id = request_url.rstrip("/").rsplit("/", 1)[-1]
    admin.pages(f"review/{request_id}/outcome")
    admin.shot("22-outcome")
    revoke = admin.page.locator("details#revoke")
    revoke.locator("summary").click()
    revoke.locator("textarea[name=reason]").fill("Journey ends: released in error")
    revoke.locator("button[type=submit]").click()
    admin.page.wait_for_load_state()
    admin.shot("23-release-revoked")
    admin.pages(f"admin/projects/{project}")
    member = admin.page.locator("details:has(form[action$='/members/bob/revoke'])")
    member.locator("summary").click()
    member.locator("textarea[name=reason], input[name=reason]").first.fill("Study finished")
    member.locator("button[type=submit]").click()
    admin.page.wait_for_load_state()
    admin.shot("24-access-revoked")
    bob.pages()
    assert bob._("Revoked") in bob.page.locator("#projects").inner_text()
    bob.page.goto(request_url)
    assert bob.page.locator("#status").inner_text() == bob._("Release revoked")
    bob.shot("25-bob-after-revoke")
    refused = bob.page.goto(f"{bob.stack.hub_url}/services/safezone/pages/review/{request_id}")
    assert refused.status == 403  # a requester never opens the review page
    _records_reviewed(admin)


def _records_reviewed(admin: Person) -> None:
    """The month's access records: the administrator reads them, then marks them reviewed
    through the newest record the page showed; the page lists the review."""
    admin.pages("admin/records")
    month = admin.page.locator("#month").input_value()
    through = admin.page.locator("#review-form input[name=through]").input_value()
    admin.shot("26-records")
    admin.button(admin._("Mark %(month)s reviewed", month=month))
    assert admin.page.locator("#flash").inner_text() == admin._(
        "The records of %(month)s are marked reviewed.", month=month)
    rows = admin.page.locator("#reviews tbody tr")
    assert rows.last.locator("td").nth(1).inner_text() == "admin"
    assert rows.last.locator("td").nth(2).inner_text() == through
    admin.shot("27-records-reviewed")
