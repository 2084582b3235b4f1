"""The reviewer's pages on the real stack: findings by rule with their true counts, each
linked to its cell in a preview that says when it was cut; a vote form with nothing chosen;
votes so far counted without being shown while the review is blind; comments with their
file, reviewer and time once it ended; revoking from the page; and the CSV BOM option."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import httpx
import pytest
from botocore.exceptions import ClientError
from sqlalchemy import func, select

from safezone.models import AuditEvent
from safezone.web.kit import when
from safezone.web.session import COOKIE, csrf_token

from .support import browser_session, issue_grant, notebook_s3, provision, submit_and_wait

CLEAN_TABLE = b"region,sex,count\nSeoul,M,120\nSeoul,F,140\nBusan,M,45\nBusan,F,50\n"
SMALL_CELL_TABLE = b"region,sex,count\nSeoul,M,120\nSeoul,F,3\n"
ROWS = 1500  # every count below the minimum: far past the 50 findings listed per rule
MANY_SMALL = ("region,sex,count\n" + "".join(f"area{i:04d},{'MF'[i % 2]},{i % 4 + 1}\n"
                                            for i in range(ROWS))).encode()
KOREAN_TABLE = "지역,성별,count\n서울,남,120\n서울,여,140\n부산,남,45\n부산,여,50\n".encode()
BOM = b"\xef\xbb\xbf"


@pytest.fixture
def project(stack):
    """alice in a fresh project, and a way to put files in her outbox."""
    setup = provision(stack, member="alice")
    s3 = notebook_s3(stack, issue_grant(stack, "alice", setup.project))

    def put(name: str, data: bytes) -> None:
        s3.put_object(Bucket="outbox", Key=f"{setup.project}/alice/{name}", Body=data)
    return setup, put


def in_review(stack, project_name: str, *paths: str, title: str = "results") -> dict:
    made = stack.api("alice").post("/api/exports", json={
        "project": project_name, "title": title,
        "files": [{"path": p, "justification": "aggregate table"} for p in paths]})
    assert made.status_code == 201, made.text
    view = submit_and_wait(stack.api("alice"), made.json()["id"])
    assert view["status"] == "in_review", view["status"]
    return view


def released(stack, project_name: str, path: str, data_title: str = "released") -> dict:
    view = in_review(stack, project_name, path, title=data_title)
    assert view["required_approvals"] == 1
    for f in view["files"]:
        stack.api("reviewer").post(f"/api/exports/{view['id']}/votes", json={
            "file_id": f["id"], "decision": "approve"}).raise_for_status()
    after = stack.api("alice").get(f"/api/exports/{view['id']}").json()
    assert after["status"] == "released"
    return after


def page_client(stack, user: str, language: str = "en") -> httpx.Client:
    client = browser_session(stack, user)
    client.headers["Accept-Language"] = language
    return client


def form(client: httpx.Client, **fields: str) -> dict[str, str]:
    return {**fields, "_csrf": csrf_token(client.cookies.get(COOKIE))}


def audit_of(stack, request_id: str) -> list[AuditEvent]:
    with stack.zone.sessions() as db:
        return list(db.scalars(select(AuditEvent).where(
            AuditEvent.subject == f"export:{request_id}").order_by(AuditEvent.seq)))


def audit_count(stack) -> int:
    with stack.zone.sessions() as db:
        return db.scalar(select(func.count()).select_from(AuditEvent))


# -- findings and the preview ----------------------------------------------------------------
def test_findings_show_their_true_count_and_link_to_the_highlighted_cell(stack, project):
    setup, put = project
    put("many.csv", MANY_SMALL)
    view = in_review(stack, setup.project, "many.csv")
    record = stack.api("reviewer").get(f"/api/exports/{view['id']}").json()["check_record"]
    findings = record["files"][0]["findings"]
    listed = [x for x in findings if x["rule"] == "T001" and "more" not in x]
    tally = [x for x in findings if x["rule"] == "T001" and "more" in x]
    assert len(listed) == 50 and [x["more"] for x in tally] == [ROWS - 50]  # a sample, counted
    assert record["summary"]["fail"] >= ROWS  # the summary counts every hit

    fid = view["files"][0]["id"]
    page = page_client(stack, "reviewer").get(f"pages/review/{view['id']}")
    assert page.status_code == 200, page.text[:300]
    html = page.text
    assert "1,500 found" in html and "showing 50 of 1,500" in html
    assert "1,450 more are counted but not listed one by one." in html
    assert "first 1,000 of 1,500 rows" in html  # the preview says it was cut
    # every listed finding links to its cell; the cell carries that id and is highlighted
    for row in (1, 50):
        anchor = f"f{fid}-r{row}-c2"  # column 2 is "count"
        assert f'href="#{anchor}"' in html
        assert re.search(rf'<td id="{anchor}" class="flagged">[1-4]</td>', html)
    assert f'<th scope="row" id="f{fid}-r1000">1000</th>' in html  # numbered rows
    assert f'id="f{fid}-r1001"' not in html
    assert ":target" in html  # the linked cell is highlighted when followed

    korean = page_client(stack, "reviewer", "ko").get(f"pages/review/{view['id']}").text
    assert "1,500건 발견" in korean and "전체 1,500행 중 처음 1,000행" in korean


def test_no_vote_is_chosen_for_the_reviewer_and_comments_are_multiline(stack, project):
    setup, put = project
    put("small.csv", SMALL_CELL_TABLE)
    view = in_review(stack, setup.project, "small.csv")
    html = page_client(stack, "reviewer").get(f"pages/review/{view['id']}").text
    radios = re.findall(r'<input type="radio" name="decision"[^>]*>', html)
    assert len(radios) == 3
    assert all("required" in r and "checked" not in r for r in radios)
    fieldset = html[html.index("<fieldset"):html.index("</fieldset>")]
    assert "<legend>Your decision on small.csv</legend>" in fieldset
    fid = view["files"][0]["id"]
    assert f'<label for="comment-{fid}">Comment</label>' in html
    assert re.search(rf'<textarea id="comment-{fid}" name="comment"', html)
    assert re.search(rf'<textarea id="override-{fid}" name="override_reason"', html)  # failed
    assert "Submit vote on small.csv" in html


def test_a_refused_vote_keeps_what_was_typed(stack, project):
    setup, put = project
    put("t.csv", CLEAN_TABLE)
    view = in_review(stack, setup.project, "t.csv")
    reviewer = page_client(stack, "reviewer")
    fid = str(view["files"][0]["id"])
    refused = reviewer.post(f"pages/review/{view['id']}/vote", data=form(
        reviewer, file_id=fid, decision="reject", comment="   "))
    assert refused.status_code == 422
    assert 'role="alert"' in refused.text and "a comment is required" in refused.text
    assert re.search(r'value="reject" required checked', refused.text)  # their choice, kept
    assert stack.api("alice").get(f"/api/exports/{view['id']}").json()["votes"] == []
    kept = reviewer.post(f"pages/review/{view['id']}/vote", data=form(
        reviewer, file_id=fid, decision="", comment="half-written thought"))
    assert kept.status_code == 422 and "half-written thought</textarea>" in kept.text
    assert not [e for e in audit_of(stack, view["id"]) if e.action == "export.voted"]


# -- blind review, then the comments ----------------------------------------------------------
def test_blind_review_counts_the_other_vote_without_showing_it(stack, project):
    setup, put = project
    put("small.csv", SMALL_CELL_TABLE)
    view = in_review(stack, setup.project, "small.csv")
    assert view["required_approvals"] == 2
    rid, fid = view["id"], view["files"][0]["id"]
    stack.api("reviewer").post(f"/api/exports/{rid}/votes", json={
        "file_id": fid, "decision": "reject", "comment": "first-secret-comment"}
    ).raise_for_status()

    dave = page_client(stack, "dave")
    page = dave.get(f"pages/review/{rid}").text
    assert "1 of 2 reviewers have voted" in page
    assert "first-secret-comment" not in page and "Your vote:" not in page
    assert f'<form method="post" action="/services/safezone/pages/review/{rid}/vote"' in page
    outcome = dave.get(f"pages/review/{rid}/outcome").text
    assert "1 of 2 reviewers have voted" in outcome and "first-secret-comment" not in outcome
    assert "You have not voted on this request yet." in outcome
    queue = dave.get("pages/review").text
    assert "1 of 2 reviewers have voted" in queue and "first-secret-comment" not in queue

    voted = dave.post(f"pages/review/{rid}/vote", data=form(
        dave, file_id=str(fid), decision="reject", comment="second comment\non two lines"),
        follow_redirects=False)
    assert voted.status_code == 303
    assert voted.headers["location"].endswith(f"pages/review/{rid}/outcome")  # decided

    after = stack.api("alice").get(f"/api/exports/{rid}").json()
    assert after["status"] == "rejected"
    ended = dave.get(f"pages/review/{rid}/outcome").text
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td>\s*<td>(.*?)</td>"
                      r"\s*<td>(.*?)</td></tr>", ended, re.S)
    by_reviewer = {r[1]: r for r in rows}
    assert set(by_reviewer) == {"reviewer", "dave"}
    for v in after["votes"]:
        file_, _, decision, comment, moment = by_reviewer[v["reviewer"]]
        assert file_ == "small.csv" and decision.startswith("Reject")
        assert moment == when(v["at"], "en")  # the time of the vote, in the page's format
        assert v["comment"].split("\n")[0] in comment
    assert "Votes and comments" in ended


# -- revoke from the page ----------------------------------------------------------------------
def test_admin_revokes_from_the_page_and_others_are_refused(stack, project):
    setup, put = project
    put("t.csv", CLEAN_TABLE)
    view = released(stack, setup.project, "t.csv")
    rid = view["id"]
    key = f"{rid}/{view['files'][0]['id']}/t.csv"
    root = stack.minio.root_s3()
    expires = (stack.zone.now() + timedelta(days=10)).isoformat()
    stack.api("admin").post(f"/api/projects/{setup.project}/members/carol/approve",
                            json={"expires_at": expires}).raise_for_status()

    for who in ("alice", "carol"):
        browser = page_client(stack, who)
        if who == "alice":  # the requester may read the outcome, with no revoke form
            assert "Revoke this release" not in browser.get(
                f"pages/review/{rid}/outcome").text
        before = audit_count(stack)
        refused = browser.post(f"pages/review/{rid}/revoke", data=form(
            browser, reason="I changed my mind"), follow_redirects=False)
        assert refused.status_code == 403, (who, refused.status_code, refused.text[:200])
        assert stack.api("alice").get(f"/api/exports/{rid}").json()["status"] == "released"
        assert root.get_object(Bucket="released", Key=key)["Body"].read() == CLEAN_TABLE
        assert audit_count(stack) == before

    admin = page_client(stack, "admin")
    queue = admin.get("pages/review").text
    assert f'href="/services/safezone/pages/review/{rid}/outcome">released</a>' in queue
    page = admin.get(f"pages/review/{rid}/outcome").text
    assert "<details" in page and "<summary>Revoke this release</summary>" in page
    empty = admin.post(f"pages/review/{rid}/revoke", data=form(admin, reason="  "))
    assert empty.status_code == 422 and "say why the release is revoked" in empty.text
    assert "<details class=\"card\" id=\"revoke\" open>" in empty.text
    assert stack.api("alice").get(f"/api/exports/{rid}").json()["status"] == "released"

    done = admin.post(f"pages/review/{rid}/revoke", data=form(
        admin, reason="a cell of 3 was found after release"), follow_redirects=False)
    assert done.status_code == 303
    shown = admin.get(stack.hub_url + done.headers["location"]).text
    assert "The release was revoked" in shown and "Release revoked" in shown
    assert stack.api("alice").get(f"/api/exports/{rid}").json()["status"] == "revoked"
    with pytest.raises(ClientError):
        root.get_object(Bucket="released", Key=key)
    event = [e for e in audit_of(stack, rid) if e.action == "export.revoke"]
    assert event and event[0].actor == "admin" \
        and event[0].data["reason"] == "a cell of 3 was found after release"


# -- the queue ------------------------------------------------------------------------------------
def test_queue_lists_titles_projects_requesters_checks_and_votes(stack, project):
    setup, put = project
    put("small.csv", SMALL_CELL_TABLE)
    view = in_review(stack, setup.project, "small.csv", title="Cancer counts by region")
    html = page_client(stack, "reviewer").get("pages/review").text
    row = html[html.index(f"pages/review/{view['id']}\""):]
    row = row[:row.index("</tr>")]
    assert ">Cancer counts by region</a>" in row and f">{view['id']}<" not in html
    assert f"<td>{setup.project}</td><td>alice</td>" in row
    assert when(view["created_at"], "en", time=False) in row
    assert "In review" in row and re.search(r"Fail \d", row)
    assert "0 of 2 reviewers have voted" in row
    assert "in_review" not in html


# -- the BOM option of released CSVs --------------------------------------------------------------
def _link(browser: httpx.Client, rid: str, fid: int) -> str:
    made = browser.post(f"api/exports/{rid}/files/{fid}/links")
    assert made.status_code == 201, made.text
    return made.json()["token"]


def test_released_csv_gets_a_bom_only_when_asked(stack, project):
    setup, put = project
    put("korean.csv", KOREAN_TABLE)
    view = released(stack, setup.project, "korean.csv")
    rid, fid = view["id"], view["files"][0]["id"]
    stored = stack.minio.root_s3().get_object(
        Bucket="released", Key=f"{rid}/{fid}/korean.csv")["Body"].read()
    assert stored == KOREAN_TABLE and not stored.startswith(BOM)
    browser = browser_session(stack, "alice")

    asked = browser.post("api/download", json={"token": _link(browser, rid, fid), "bom": True})
    assert asked.status_code == 200, asked.text
    assert asked.content.startswith(BOM) and asked.content[3:] == stored
    assert int(asked.headers["content-length"]) == len(stored) + 3
    assert asked.headers["content-type"].startswith("text/csv")
    plain = browser.post("api/download", json={"token": _link(browser, rid, fid)})
    assert plain.status_code == 200 and plain.content == stored

    downloads = [e for e in audit_of(stack, rid) if e.action == "export.downloaded"]
    assert [e.data["bom"] for e in downloads] == [True, False]
    digest = hashlib.sha256(stored).hexdigest()
    assert all(e.data["sha256"] == digest == view["files"][0]["release_sha256"]
               for e in downloads)  # the audit describes the released bytes
    again = stack.minio.root_s3().get_object(
        Bucket="released", Key=f"{rid}/{fid}/korean.csv")["Body"].read()
    assert again == stored  # MinIO's copy never changes


def test_no_bom_for_other_files_or_one_that_has_it(stack, project):
    setup, put = project
    put("notes.txt", "서울 지역의 결과 요약입니다.\n".encode())
    put("bom.csv", BOM + CLEAN_TABLE)
    browser = browser_session(stack, "alice")
    for path in ("notes.txt", "bom.csv"):
        view = released(stack, setup.project, path)
        rid, fid = view["id"], view["files"][0]["id"]
        stored = stack.minio.root_s3().get_object(
            Bucket="released", Key=f"{rid}/{fid}/{path}")["Body"].read()
        got = browser.post("api/download", json={"token": _link(browser, rid, fid),
                                                  "bom": True})
        assert got.status_code == 200 and got.content == stored, path
        event = [e for e in audit_of(stack, rid) if e.action == "export.downloaded"][-1]
        assert event.data["bom"] is False
