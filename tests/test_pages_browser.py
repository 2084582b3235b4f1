"""The pages in Debian's Chromium (Playwright): alice submits, a reviewer approves, alice
downloads; alice cannot open the review page."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .support import issue_grant, notebook_s3, provision, report_measure

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
TABLE = b"region,sex,count\nSeoul,M,120\nSeoul,F,140\n"


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian's chromium is not installed: scripts/setup.sh installs it "
                    "(apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-background-networking", "--disable-component-update",
            "--disable-gpu", "--no-first-run", "--disable-sync"])
        yield browser
        browser.close()


def logged_in(browser, stack, user: str):
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    page.goto(f"{stack.hub_url}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", stack.passwords[user])
    page.click("#login_submit")
    page.wait_for_load_state()
    return context, page


def test_submit_review_download(stack, browser, tmp_path: Path):
    setup = provision(stack, member="alice")
    s3 = notebook_s3(stack, issue_grant(stack, "alice", setup.project))
    s3.put_object(Bucket="outbox", Key=f"{setup.project}/alice/tables/counts.csv", Body=TABLE)
    pages = f"{stack.hub_url}/services/safezone/pages"

    alice_ctx, alice = logged_in(browser, stack, "alice")
    alice.goto(f"{pages}/")
    form = alice.locator(f"form:has(input[name=project][value='{setup.project}'])")
    form.get_by_role("checkbox", name="tables/counts.csv").check()
    form.locator("input[name=title]").fill("Counts by sex")
    form.get_by_label("justification for tables/counts.csv").fill("aggregate, n >= 10")
    form.get_by_role("button", name="제출 / Submit for review").click()
    alice.wait_for_load_state()
    assert alice.locator("#status").inner_text() in {"checking", "in_review"}
    for _ in range(60):  # the page refreshes itself while the checks run
        if alice.locator("#status").inner_text() == "in_review":
            break
        alice.wait_for_timeout(500)
    assert alice.locator("#status").inner_text() == "in_review"
    request_url = alice.url
    request_id = request_url.rstrip("/").rsplit("/", 1)[-1]
    alice.screenshot(path=str(tmp_path / "alice-request.png"))

    review_ctx, reviewer = logged_in(browser, stack, "reviewer")
    reviewer.goto(f"{pages}/review")
    reviewer.get_by_role("link", name=request_id).click()
    assert "tables/counts.csv" in reviewer.content()
    assert reviewer.locator("table td", has_text="Seoul").count() >= 2  # CSV previewed
    reviewer.screenshot(path=str(tmp_path / "review.png"), full_page=True)
    reviewer.get_by_role("button", name="제출 / Vote").click()
    reviewer.wait_for_load_state()
    assert reviewer.locator("#status").inner_text() == "released"

    alice.goto(request_url)
    alice.get_by_role("button", name="내려받기 / Download").click()  # a counted link
    alice.wait_for_load_state()
    assert alice.url.endswith("/download")  # a form page: no token in any URL
    alice.screenshot(path=str(tmp_path / "download.png"))
    with alice.expect_download() as info:
        alice.locator("#download").click()  # its token travels in the form, not the URL
    saved = tmp_path / "downloaded.csv"
    info.value.save_as(saved)
    assert saved.read_bytes() == TABLE

    forbidden = alice.goto(f"{pages}/review/{request_id}")
    assert forbidden.status == 403
    assert "검토자만" in alice.content() or "own" in alice.content()
    assert alice.goto(f"{pages}/review").status == 403
    report_measure(f"browser flow screenshots: {tmp_path}")
    alice_ctx.close()
    review_ctx.close()
