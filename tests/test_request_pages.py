"""The researcher's export request pages on the real stack: the form (outbox by folder,
evidence attached and never offered, every rule checked on the server with the typed
values kept), the dry run (page, REST, notebook helper), the request page after submit,
and withdraw with confirmation."""

from __future__ import annotations

import json
import re
from html import unescape

import pandas as pd
import pytest
from sqlalchemy import func, select

from safezone.checks.explain import load_help, rule_help
from safezone.checks.findings import load_rules
from safezone.exports.service import MAX_JUSTIFICATION, MAX_TITLE
from safezone.models import AuditEvent, ExportRequest, Project
from safezone.notebook import crosstab
from safezone.web.session import COOKIE, csrf_token

from .netns import entered
from .security.world import notebook_token
from .support import browser_session, probe_namespace, provision, wait_for_checks, wait_until

CLEAN_TABLE = b"region,sex,count\nSeoul,M,120\nSeoul,F,140\nBusan,M,45\nBusan,F,50\n"
SMALL_CELL_TABLE = b"region,sex,count\nSeoul,M,120\nSeoul,F,3\n"


@pytest.fixture
def alice(stack):
    """alice in a fresh project, her outbox writer and an English page session."""
    setup = provision(stack, member="alice")
    s3 = stack.minio.root_s3()

    def put(name: str, data: bytes) -> None:
        s3.put_object(Bucket="outbox", Key=f"{setup.project}/alice/{name}", Body=data)

    browser = browser_session(stack, "alice")
    browser.headers["Accept-Language"] = "en"
    return setup, put, browser


def post(browser, path: str, fields: dict | list) -> object:
    """A form POST as the page sends it (its CSRF field included)."""
    items = list(fields.items()) if isinstance(fields, dict) else list(fields)
    data: dict[str, list[str]] = {"_csrf": [csrf_token(browser.cookies.get(COOKIE))]}
    for key, value in items:
        data.setdefault(key, []).append(value)
    return browser.post(path, data=data, follow_redirects=False)


def requests_and_events(stack, project: str) -> tuple[int, int]:
    """Export requests of the project, and audit events about any export request."""
    with stack.zone.sessions() as db:
        project_id = db.scalar(select(Project.id).where(Project.name == project))
        made = db.scalar(select(func.count()).select_from(ExportRequest).where(
            ExportRequest.project_id == project_id))
        events = db.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.subject.like("export:%")))
    return made, events


def evidence_table() -> tuple[bytes, bytes]:
    """A table of sums with the evidence the notebook helper makes for it (safe cells)."""
    df = pd.DataFrame({"sido": ["Seoul", "Busan"] * 40, "sex": ["M"] * 40 + ["F"] * 40,
                       "cost": [100.0 + i for i in range(80)]})
    table, evidence = crosstab(df, "sido", "sex", values="cost")
    return (table.to_csv(index=False).encode(),
            json.dumps({**evidence, "table": "tables/cost.csv"}).encode())


def test_the_form_groups_the_outbox_by_folder_and_never_offers_evidence(stack, alice):
    setup, put, browser = alice
    table, evidence = evidence_table()
    put("tables/cost.csv", table)
    put("tables/cost.csv.evidence.json", evidence)
    put("notes/readme.txt", b"aggregate results only\n")
    put("top.csv", CLEAN_TABLE)
    page = browser.get(f"pages/projects/{setup.project}/requests/new")
    assert page.status_code == 200, page.text[:300]
    html = page.text
    assert "Folder tables/" in html and "Folder notes/" in html and "Top of your outbox" in html
    assert html.index("Folder notes/") < html.index("Folder tables/")
    offered = re.findall(r'name="file" value="([^"]+)"', html)
    assert sorted(offered) == ["notes/readme.txt", "tables/cost.csv", "top.csv"]
    assert "evidence.json" not in html  # neither offered nor named
    assert "evidence attached" in html
    assert f"{len(CLEAN_TABLE)} B" in html  # a human size, not raw bytes alone
    assert str(stack.zone.now().year) in html  # the date each file last changed
    assert 'maxlength' not in html  # no silent cut in the browser: the server says the limit


FORM_RULES = [
    # (title, chosen files, justification, expected message, field echo)
    ("   ", ["top.csv"], "aggregate counts", "Give the request a title.", "aggregate counts"),
    ("Counts by region", [], "aggregate counts", "Choose at least one file from your outbox.",
     "Counts by region"),
    ("Counts by region", ["top.csv"], "  ", "Say why this file may leave the zone.",
     "Counts by region"),
    ("T" * (MAX_TITLE + 1), ["top.csv"], "aggregate counts",
     f"The title has {MAX_TITLE + 1} characters; the limit is {MAX_TITLE}.",
     "T" * (MAX_TITLE + 1)),
    ("Counts by region", ["top.csv"], "J" * (MAX_JUSTIFICATION + 1),
     f"This justification has {MAX_JUSTIFICATION + 1} characters; the limit is "
     f"{MAX_JUSTIFICATION}.", "J" * (MAX_JUSTIFICATION + 1)),
]


@pytest.mark.parametrize(("title", "chosen", "why", "message", "echo"), FORM_RULES,
                         ids=["blank-title", "no-file", "no-justification", "long-title",
                              "long-justification"])
def test_every_form_rule_is_checked_on_the_server(stack, alice, title, chosen, why,
                                                  message, echo):
    setup, put, browser = alice
    put("top.csv", CLEAN_TABLE)
    put("other.csv", CLEAN_TABLE)
    before = requests_and_events(stack, setup.project)
    fields = [("project", setup.project), ("title", title), ("why:top.csv", why),
              ("why:other.csv", "kept too")] + [("file", p) for p in chosen]
    response = post(browser, "pages/requests", fields)
    assert response.status_code == 422, response.text[:300]
    html = unescape(response.text)
    assert message in html
    assert 'class="field-error"' in response.text  # next to the field it is about
    assert 'aria-invalid="true"' in response.text or 'id="files-err"' in response.text
    assert echo in html and "kept too" in html  # nothing typed is lost
    assert f"Up to {MAX_TITLE} characters" in html  # the limits are said before, too
    for path in chosen:
        assert re.search(rf'value="{re.escape(path)}" id="[^"]+" checked', response.text)
    assert requests_and_events(stack, setup.project) == before  # nothing created


def test_limits_are_named_in_the_page_language(stack, alice):
    setup, put, browser = alice
    put("top.csv", CLEAN_TABLE)
    browser.headers["Accept-Language"] = "ko"
    response = post(browser, "pages/requests", {
        "project": setup.project, "title": "가" * (MAX_TITLE + 5), "file": "top.csv",
        "why:top.csv": "집계표"})
    assert response.status_code == 422
    assert f"최대 {MAX_TITLE}자" in response.text and "Shorten" not in response.text


def test_line_breaks_count_once_and_evidence_is_attached_on_submit(stack, alice):
    setup, put, browser = alice
    table, evidence = evidence_table()
    put("tables/cost.csv", table)
    put("tables/cost.csv.evidence.json", evidence)
    why = "a" * (MAX_JUSTIFICATION - 10) + "\r\n" + "b" * 9  # the browser counts 4000
    response = post(browser, "pages/requests", {
        "project": setup.project, "title": "Cost by region", "file": "tables/cost.csv",
        "why:tables/cost.csv": why})
    assert response.status_code == 303, response.text[:500]
    request_id = response.headers["location"].rstrip("/").rsplit("/", 1)[1]
    done = wait_for_checks(stack.api("alice"), request_id)
    assert [(f["path"], f["evidence"]) for f in done["files"]] == [
        ("tables/cost.csv", False), ("tables/cost.csv.evidence.json", True)]
    rules = {x["rule"] for f in done["check_record"]["files"] for x in f["findings"]}
    assert "T008" not in rules  # the sums were checked with their evidence
    # choosing the evidence itself is refused, with its reason, and creates nothing
    before = requests_and_events(stack, setup.project)
    refused = post(browser, "pages/requests", {
        "project": setup.project, "title": "evidence", "file": "tables/cost.csv.evidence.json",
        "why:tables/cost.csv.evidence.json": "please"})
    assert refused.status_code == 422
    assert "is evidence: it is attached to its table by itself" in unescape(refused.text)
    assert requests_and_events(stack, setup.project) == before


def test_dry_run_on_the_page_explains_findings_and_creates_nothing(stack, alice):
    setup, put, browser = alice
    put("small.csv", SMALL_CELL_TABLE)
    before = requests_and_events(stack, setup.project)
    response = post(browser, f"pages/projects/{setup.project}/requests/dry-run", {
        "title": "typed title", "file": "small.csv", "why:small.csv": "typed reason"})
    assert response.status_code == 200, response.text[:500]
    html = unescape(response.text)
    t001 = rule_help("T001", "en")
    assert "Dry run: what the checks found" in html and "Nothing was submitted" in html
    assert t001["title"] in html and t001["means"] in html and t001["fix"] in html
    assert "Row numbers: 2" in html  # Seoul,F,3 is the table's second row
    assert "2 reviewer approvals will be needed" in html
    assert "typed title" in html and "typed reason" in html  # the form stays as typed
    assert requests_and_events(stack, setup.project) == before  # no request, no event of one
    with stack.zone.sessions() as db:
        logged = db.scalars(select(AuditEvent).where(
            AuditEvent.action == "export.dry_run",
            AuditEvent.subject == f"project:{setup.project}")).all()
    assert [e.data["files"] for e in logged] == [["small.csv"]]
    # the same findings in Korean only, on a Korean page
    browser.headers["Accept-Language"] = "ko"
    korean = unescape(post(browser, f"pages/projects/{setup.project}/requests/dry-run",
                           {"file": "small.csv"}).text)
    assert rule_help("T001", "ko")["title"] in korean and t001["title"] not in korean


def test_dry_run_is_bounded_like_a_submit(stack, alice):
    setup, put, browser = alice
    limit = load_rules().files["max_file_bytes"]
    put("huge.csv", b"x" * (limit + 1))
    response = post(browser, f"pages/projects/{setup.project}/requests/dry-run",
                    {"file": "huge.csv"})
    assert response.status_code == 422
    assert "over the limit of 52.4 MB" in response.text
    refused = stack.api("alice").post("/api/exports/dry-run", json={
        "project": setup.project, "files": ["huge.csv"]})
    assert refused.status_code == 422 and "over the limit" in refused.json()["error"]


def test_notebook_dry_run_with_the_notebook_credentials(stack, alice, monkeypatch, capsys):
    """safezone.notebook.dry_run as a notebook server runs it: its token, from the
    notebook network; inside, each finding names its column."""
    from safezone import notebook

    setup, put, _ = alice
    put("small.csv", SMALL_CELL_TABLE)
    before = requests_and_events(stack, setup.project)
    monkeypatch.setenv("SAFEZONE_API_URL", stack.control_plane.url)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", notebook_token(stack, "alice"))
    monkeypatch.setenv("SAFEZONE_PROJECT", setup.project)
    with entered(probe_namespace()):
        result = notebook.dry_run(["small.csv"], language="en")
    printed = capsys.readouterr().out
    assert "Small counts" in printed and "Combine categories" in printed
    groups = {g["rule"]: g for g in result["explained"]["files"][0]["rules"]}
    assert groups["T001"]["rows"] == [2] and groups["T001"]["columns"] == ["count"]
    assert result["approvals_needed"] == 2 and result["files"] == ["small.csv"]
    assert requests_and_events(stack, setup.project) == before
    # outside the zone the same call gives no text from the file (no column names)
    outside = stack.api("alice").post("/api/exports/dry-run", json={
        "project": setup.project, "files": ["small.csv"], "language": "ko"})
    assert outside.status_code == 200, outside.text
    group = outside.json()["explained"]["files"][0]["rules"][0]
    assert group["columns"] == [] and group["title"] == rule_help("T001", "ko")["title"]
    # someone else's outbox is not reachable: only the caller's own files are checked
    bob = stack.api("bob").post("/api/exports/dry-run", json={
        "project": setup.project, "files": ["small.csv"]})
    assert bob.status_code == 403


def test_request_page_after_submit_shows_findings_approvals_steps(stack, alice):
    setup, put, browser = alice
    put("small.csv", SMALL_CELL_TABLE)
    response = post(browser, "pages/requests", {
        "project": setup.project, "title": "Counts by sex", "file": "small.csv",
        "why:small.csv": "aggregate table"})
    assert response.status_code == 303, response.text[:300]
    request_id = response.headers["location"].rstrip("/").rsplit("/", 1)[1]
    wait_for_checks(stack.api("alice"), request_id)
    page = browser.get(f"pages/requests/{request_id}")
    assert page.status_code == 200
    html = unescape(page.text)
    assert '<span class="status" id="status">In review</span>' in html
    assert "2 independent approvals needed; how reviewers voted stays hidden" in html  # blind
    assert "Reviewers are checking your files" in html
    assert rule_help("T001", "en")["fix"] in html and "(1 found)" in html
    steps = re.findall(r"<li class=\"(done|todo)\">([^:<]+):", html)
    assert [s for s in steps if s[0] == "done"] == [
        ("done", "Created"), ("done", "Submitted"), ("done", "Checks finished")]
    assert ("todo", "Reviewers decided") in steps
    assert ">in_review<" not in html and ">fail<" not in html  # no raw codes
    assert not re.search(rf"<a [^>]*>[^<]*{request_id}", html)  # the id is no link text


def test_withdraw_asks_for_confirmation(stack, alice):
    setup, put, browser = alice
    put("top.csv", CLEAN_TABLE)
    made = stack.api("alice").post("/api/exports", json={
        "project": setup.project, "title": "to withdraw",
        "files": [{"path": "top.csv", "justification": "t"}]})
    request_id = made.json()["id"]
    status = lambda: stack.api("alice").get(f"/api/exports/{request_id}").json()["status"]  # noqa: E731
    asked = post(browser, f"pages/requests/{request_id}/withdraw", {})
    assert asked.status_code == 200
    assert "Please confirm that you want to withdraw this request." in asked.text
    assert '<details class="confirm" id="withdraw" open>' in asked.text
    assert status() == "draft"
    done = post(browser, f"pages/requests/{request_id}/withdraw", {"confirm": "yes"})
    assert done.status_code == 303
    wait_until(lambda: status() == "withdrawn", timeout=5)
    # a state that cannot be withdrawn is refused before anything is asked
    again = post(browser, f"pages/requests/{request_id}/withdraw", {})
    assert again.status_code == 409


def test_every_rule_has_plain_help_in_both_languages():
    rules = load_rules()
    assert set(load_help()) == set(rules.messages)
    for rule in rules.messages:
        for language in ("ko", "en"):
            shown = rule_help(rule, language, rules)
            assert all(shown[k] for k in ("title", "means", "fix")), (rule, language)
            assert "{" not in "".join(shown.values()), (rule, language)


def test_findings_are_grouped_by_rule_with_their_true_count():
    from safezone.checks.explain import explain

    listed = [{"rule": "T001", "severity": "fail", "row": r, "message_en": "small",
               "message_ko": "작음"} for r in range(1, 51)]
    tallied = [{"rule": "T001", "severity": "fail", "more": 60},
               {"rule": "T002", "severity": "warn", "row": 3}]
    record = {"summary": {"fail": 111}, "flagged": True, "request_findings": [],
              "files": [{"path": "t.csv", "worst": "fail", "findings": [*listed, *tallied]}]}
    shown = explain(record, "en")
    groups = shown["files"][0]["rules"]
    assert [(g["rule"], g["count"]) for g in groups] == [("T001", 110), ("T002", 1)]
    assert groups[0]["rows"] == list(range(1, 21)) and groups[0]["more_rows"] == 30
    assert groups[0]["title"] == rule_help("T001", "en")["title"]
    assert explain(record, "ko")["files"][0]["rules"][0]["message"] == "작음"
