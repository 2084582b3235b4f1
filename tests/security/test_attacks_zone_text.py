"""Text a notebook writes into an export request (title, file groups, justifications) is
content from inside the zone: outside it, only the reviewers who may act on the request
read it until the request is released — never the requester's page session or own API
token, whatever state the request is in. Membership requests cannot carry text out: a
notebook's token may not make one."""

from __future__ import annotations

import html

import httpx
import pytest

from safezone.checks.findings import load_rules
from safezone.exports.service import MAX_GROUP, MAX_JUSTIFICATION, MAX_TITLE, ZONE_TEXT
from safezone.web.i18n import translations
from safezone.web.request_pages import ZONE_TEXT_SHOWN
from safezone.web.session import COOKIE, csrf_token

from ..netns import inside as in_zone
from ..support import probe_namespace, submit_and_wait, unique, wait_for_checks
from .attack import nothing_changes, refused

OUTSIDE = ("requester", "requester-browser")  # the requester's own token, their page session
PLACEHOLDER_WORDS = "written inside the zone"


def texts(mark: str) -> tuple[str, str, str]:
    """Title, group and justification at their longest, each carrying ``mark``."""
    return ((f"{mark} title " * MAX_TITLE)[:MAX_TITLE],
            (f"{mark} group " * MAX_GROUP)[:MAX_GROUP],
            (f"{mark} " * MAX_JUSTIFICATION)[:MAX_JUSTIFICATION])


def written_inside(world, paths: tuple[str, ...] = ("t.csv",)) -> tuple[str, str]:
    """A draft made with the notebook server's token: its id and the mark its text carries."""
    mark = unique("zonetext")
    title, group, why = texts(mark)
    response = world.clients["requester-notebook"].post("/api/exports", json={
        "project": world.project, "title": title,
        "files": [{"path": p, "group": group, "justification": why} for p in paths]})
    assert response.status_code == 201, response.text[:300]
    return response.json()["id"], mark


def placeholder_only(response, mark: str) -> None:
    """The request, with the placeholder where the text was, and the text nowhere."""
    assert response.status_code == 200, response.text[:300]
    assert mark not in response.text
    view = response.json()
    assert view["title"] == ZONE_TEXT
    assert view["files"] and all(f["group"] == ZONE_TEXT and f["justification"] == ZONE_TEXT
                                 for f in view["files"])


def full_text(view: dict, mark: str) -> None:
    title, group, why = texts(mark)
    assert view["title"] == title
    assert all(f["group"] == group and f["justification"] == why for f in view["files"])


def page_hides(page, mark: str) -> None:
    """The page (Korean unless asked) shows the placeholder where the zone's text was."""
    assert page.status_code == 200, page.text[:300]
    assert mark not in page.text
    korean = translations("ko").gettext(ZONE_TEXT_SHOWN)
    assert PLACEHOLDER_WORDS in page.text or html.escape(korean) in page.text


def in_review_from_notebook(world) -> tuple[str, int, str]:
    rid, mark = written_inside(world)
    view = submit_and_wait(world.clients["requester-notebook"], rid)
    assert view["status"] == "in_review", view["status"]
    return rid, view["files"][0]["id"], mark


def vote(world, rid: str, fid: int, decision: str) -> None:
    world.stack.api("reviewer").post(f"/api/exports/{rid}/votes", json={
        "file_id": fid, "decision": decision, "comment": "zone text"}).raise_for_status()


# -- the hole: written in the kernel, read outside while still a draft -----------------
@pytest.mark.parametrize("who", OUTSIDE)
def test_requester_outside_reads_only_a_placeholder_of_a_full_notebook_draft(world, who):
    """The most a notebook can write (every file at the longest justification) comes back
    outside as the placeholder alone."""
    most = load_rules().files["max_files"]
    rid, mark = written_inside(world, tuple(f"z{i}.csv" for i in range(most)))
    client = world.clients[who]
    with nothing_changes(world, rid):
        response = client.get(f"/api/exports/{rid}")
        placeholder_only(response, mark)
        assert len(response.json()["files"]) == most
        listed = client.get("/api/exports")
    assert listed.status_code == 200 and mark not in listed.text
    mine = next(r for r in listed.json() if r["id"] == rid)
    assert mine["title"] == ZONE_TEXT


def test_requester_pages_never_show_notebook_text(world):
    rid, mark = written_inside(world)
    browser = world.clients["requester-browser"]
    with nothing_changes(world, rid):
        page_hides(browser.get("/pages/"), mark)
        page_hides(browser.get(f"/pages/requests/{rid}"), mark)


def test_notebook_edit_of_an_outside_draft_hides_its_text(world):
    """A draft made outside shows its text to the requester until the notebook writes
    into it; from then on the requester outside reads the placeholder."""
    draft = world.draft()
    assert draft["title"] == "results"
    assert draft["files"][0]["justification"] == "aggregate table"
    mark = unique("zonetext")
    _, group, why = texts(mark)
    edited = world.clients["requester-notebook"].put(
        f"/api/exports/{draft['id']}/files",
        json={"files": [{"path": "t.csv", "group": group, "justification": why},
                        {"path": "extra.csv", "group": group, "justification": why}]})
    assert edited.status_code == 200, edited.text[:300]
    assert mark not in edited.text  # this token calls from outside: it reads no zone text
    for who in OUTSIDE:
        with nothing_changes(world, draft["id"]):
            response = world.clients[who].get(f"/api/exports/{draft['id']}")
        placeholder_only(response, mark)


def test_an_outside_edit_does_not_bring_notebook_text_back(world):
    """The requester re-sending the file list from outside leaves the title the notebook
    wrote hidden: once written inside, always counted as inside."""
    rid, mark = written_inside(world)
    changed = world.clients["requester"].put(f"/api/exports/{rid}/files", json={
        "files": [{"path": "t.csv", "justification": "typed outside"}]})
    assert changed.status_code == 200, changed.text[:300]
    assert mark not in changed.text and changed.json()["title"] == ZONE_TEXT
    with nothing_changes(world, rid):
        placeholder_only(world.clients["requester-browser"].get(f"/api/exports/{rid}"), mark)


# -- inside, and the review, read it --------------------------------------------------
def test_the_requesters_notebook_reads_its_own_text(world):
    """Inside is where the call comes from (the notebook network), not the token."""
    rid, mark = written_inside(world)
    inside = in_zone(world.clients["requester-notebook"], probe_namespace())
    response = inside.get(f"/api/exports/{rid}")
    assert response.status_code == 200, response.text[:300]
    full_text(response.json(), mark)
    listed = inside.get("/api/exports").json()
    full_text(next(r for r in listed if r["id"] == rid), mark)


def test_a_notebook_shaped_token_outside_reads_only_a_placeholder(world):
    """A researcher can mint a token with a notebook server's scopes from outside: used
    from outside it reads what the requester reads there."""
    rid, mark = written_inside(world)
    response = world.clients["requester-notebook"].get(f"/api/exports/{rid}")
    assert response.status_code == 200 and mark not in response.text
    assert PLACEHOLDER_WORDS in response.text


def test_the_requesters_own_token_inside_reads_the_text_and_marks_what_it_writes(world):
    """A researcher's own (outside) token typed into a kernel is inside there: what it
    writes is zone text, which the same token no longer reads from outside."""
    inside = in_zone(world.clients["requester"], probe_namespace())
    mark = unique("own-token")
    made = inside.post("/api/exports", json={
        "project": world.project, "title": f"{mark} title",
        "files": [{"path": "t.csv", "justification": f"{mark} why"}]})
    assert made.status_code == 201, made.text[:300]
    rid = made.json()["id"]
    assert mark in inside.get(f"/api/exports/{rid}").text
    outside = world.clients["requester"].get(f"/api/exports/{rid}")
    assert outside.status_code == 200 and mark not in outside.text


def test_reviewers_read_the_text_in_the_queue_and_the_review(world):
    rid, _, mark = in_review_from_notebook(world)
    reviewer = world.clients["reviewer"]
    queued = reviewer.get("/api/review/queue")
    assert queued.status_code == 200, queued.text[:300]
    full_text(next(r for r in queued.json() if r["id"] == rid), mark)
    full_text(reviewer.get(f"/api/exports/{rid}").json(), mark)
    full_text(world.clients["admin"].get(f"/api/exports/{rid}").json(), mark)
    page = world.clients["reviewer-browser"].get(f"/pages/review/{rid}")
    assert page.status_code == 200, page.text[:300]
    assert texts(mark)[2] in page.text


@pytest.mark.parametrize("who", OUTSIDE)
def test_requester_outside_reads_only_a_placeholder_during_the_review(world, who):
    rid, _, mark = in_review_from_notebook(world)
    with nothing_changes(world, rid):
        placeholder_only(world.clients[who].get(f"/api/exports/{rid}"), mark)


def test_a_reviewer_who_is_a_project_member_reads_only_a_placeholder(world):
    """dave may not act on a request of his own project, so its text is not his to read
    outside the zone either."""
    rid, _, mark = in_review_from_notebook(world)
    with nothing_changes(world, rid):
        placeholder_only(world.clients["reviewer-member"].get(f"/api/exports/{rid}"), mark)
        queued = world.clients["reviewer-member"].get("/api/review/queue")
    assert queued.status_code == 200 and mark not in queued.text


# -- after the review -------------------------------------------------------------------
@pytest.mark.parametrize("who", OUTSIDE)
def test_after_release_the_requester_reads_the_text(world, who):
    rid, fid, mark = in_review_from_notebook(world)
    vote(world, rid, fid, "approve")
    view = world.clients[who].get(f"/api/exports/{rid}").json()
    assert view["status"] == "released"
    full_text(view, mark)
    if who == "requester-browser":
        page = world.clients[who].get(f"/pages/requests/{rid}")
        assert page.status_code == 200 and texts(mark)[0] in page.text


@pytest.mark.parametrize("ending", ["rejected", "returned", "withdrawn", "revoked"])
def test_text_stays_hidden_when_no_release_let_it_out(world, ending):
    """Rejected, returned for changes, withdrawn, or its release revoked: the requester
    outside still reads only the placeholder."""
    rid, fid, mark = in_review_from_notebook(world)
    if ending == "withdrawn":
        world.clients["requester-notebook"].post(f"/api/exports/{rid}/withdraw"
                                                 ).raise_for_status()
    else:
        vote(world, rid, fid, {"rejected": "reject", "returned": "request_changes"}.get(
            ending, "approve"))
    if ending == "revoked":
        world.stack.api("reviewer").post(f"/api/exports/{rid}/revoke",
                                         json={"reason": "zone text"}).raise_for_status()
    assert world.status_of(rid) == ending
    with nothing_changes(world, rid):
        for who in OUTSIDE:
            placeholder_only(world.clients[who].get(f"/api/exports/{rid}"), mark)
        page_hides(world.clients["requester-browser"].get(f"/pages/requests/{rid}"), mark)
        page_hides(world.clients["requester-browser"].get("/pages/"), mark)


# -- text written outside stays the requester's own -----------------------------------
def test_a_request_made_in_the_browser_shows_its_text_to_the_requester(world):
    browser = world.clients["requester-browser"]
    mark = unique("pagetext")
    made = browser.post("/pages/requests", follow_redirects=False, data={
        "_csrf": csrf_token(browser.cookies.get(COOKIE)), "project": world.project,
        "title": f"{mark} title", "file": "t.csv", "why:t.csv": f"{mark} why"})
    assert made.status_code == 303, made.text[:300]
    rid = made.headers["location"].rstrip("/").rsplit("/", 1)[-1]
    view = wait_for_checks(world.clients["requester"], rid)
    assert view["title"] == f"{mark} title"
    assert view["files"][0]["justification"] == f"{mark} why"
    page = browser.get(f"/pages/requests/{rid}")
    assert page.status_code == 200 and f"{mark} title" in page.text
    assert PLACEHOLDER_WORDS not in page.text


# -- membership requests ----------------------------------------------------------------
def test_a_notebook_cannot_ask_to_join_a_project_with_text(world):
    """A researcher asks for access from outside; the notebook's token is refused before
    any justification is stored, so none can be read back outside."""
    project = world.fresh_project()
    mark = unique("jointext")
    with nothing_changes(world):
        response = world.clients["requester-notebook"].post(
            f"/api/projects/{project}/members/request",
            json={"justification": (f"{mark} " * 2000)[:2000]})
        refused(response, 403, "notebook")
        assert mark not in response.text
    assert mark not in world.clients["requester"].get("/api/me").text
    assert mark not in world.stack.api("admin").get(f"/api/projects/{project}/members").text


@pytest.mark.parametrize(("who", "call"), [
    ("admin", ("PUT", "/api/projects/{project}/terminals", {"enabled": True})),
    ("admin", ("POST", "/api/projects", {"name": "from-inside", "title": "x"})),
    ("requester-browser", ("POST", "/api/exports/{rid}/files/{fid}/links", None)),
])
def test_administration_and_downloads_are_refused_from_inside(world, who, call):
    """Full outside credentials pasted into a kernel: the notebook network is not a place
    to administer the zone or take released files from."""
    method, path, body = call
    rid = world.request_in("released")
    fid = world.stack.api("alice").get(f"/api/exports/{rid}").json()["files"][0]["id"]
    client = world.clients[who]
    if who.endswith("browser"):  # the page session's cookie and CSRF header, pasted in
        # (the hub's proxy is not reachable from a sandbox: straight to the control plane)
        session = client.cookies.get(COOKIE)
        assert session
        client = httpx.Client(base_url=world.stack.control_plane.url, headers={
            **client.headers, "Cookie": f"{COOKIE}={session}"})
    inside = in_zone(client, probe_namespace())
    url = path.format(project=world.project, rid=rid, fid=fid)
    with nothing_changes(world, rid):
        response = inside.request(method, url, json=body)
    refused(response, 403, "notebook")
