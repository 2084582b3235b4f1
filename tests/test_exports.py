"""Export requests end to end on the real stack: freeze, checks, blind review, release,
download through a browser session only, revocation; and the attacks that must fail."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import httpx
import pytest

from .support import (
    DATASET_ROWS,
    browser_session,
    download,
    issue_grant,
    notebook_s3,
    provision,
    submit_and_wait,
)

CLEAN_TABLE = b"region,sex,count\nSeoul,M,120\nSeoul,F,140\nBusan,M,45\nBusan,F,50\n"
SMALL_CELL_TABLE = b"region,sex,count\nSeoul,M,120\nSeoul,F,3\n"


@pytest.fixture
def zone_user(stack):
    """alice in a fresh project, with the notebook's S3 client and her outbox prefix."""
    setup = provision(stack, member="alice")
    s3 = notebook_s3(stack, issue_grant(stack, "alice", setup.project))
    return setup, s3, f"{setup.project}/alice/"


def put(s3, prefix: str, name: str, data: bytes) -> None:
    s3.put_object(Bucket="outbox", Key=prefix + name, Body=data)


def create(stack, project: str, *paths: str, user: str = "alice") -> dict:
    response = stack.api(user).post("/api/exports", json={
        "project": project, "title": "results",
        "files": [{"path": p, "justification": "aggregate table"} for p in paths]})
    assert response.status_code == 201, response.text
    return response.json()


def submitted(stack, project: str, *paths: str) -> dict:
    request = create(stack, project, *paths)
    return submit_and_wait(stack.api("alice"), request["id"])


def vote_all(stack, request: dict, reviewer: str = "reviewer", decision: str = "approve",
             **extra) -> httpx.Response:
    response = None
    for f in request["files"]:
        response = stack.api(reviewer).post(f"/api/exports/{request['id']}/votes", json={
            "file_id": f["id"], "decision": decision, "comment": extra.get("comment", ""),
            "override_reason": extra.get("override_reason", "")})
        assert response.status_code == 200, response.text
    return response


def test_clean_request_is_frozen_checked_approved_and_released(stack, zone_user):
    setup, s3, prefix = zone_user
    put(s3, prefix, "tables/counts.csv", CLEAN_TABLE)
    request = submitted(stack, setup.project, "tables/counts.csv")
    assert request["status"] == "in_review"
    assert request["required_approvals"] == 1  # the record flags nothing above info
    assert request["files"][0]["sha256"] == hashlib.sha256(CLEAN_TABLE).hexdigest()
    record = request["check_record"]
    assert record["schema"] == "safezone.check-record/1" and not record["flagged"]
    released = vote_all(stack, request).json()
    assert released["status"] == "released"
    root = stack.minio.root_s3()
    file_id = request["files"][0]["id"]
    body = root.get_object(Bucket="released",
                           Key=f"{request['id']}/{file_id}/tables/counts.csv")
    assert body["Body"].read() == CLEAN_TABLE
    shipped = root.get_object(Bucket="released",
                              Key=f"{request['id']}/safezone-check-record.json")
    assert json.loads(shipped["Body"].read())["request"] == request["id"]


def test_outbox_edits_after_submit_change_nothing(stack, zone_user):
    """TOCTOU: the released bytes are the submitted bytes, whatever the outbox says later."""
    setup, s3, prefix = zone_user
    put(s3, prefix, "t.csv", CLEAN_TABLE)
    request = submitted(stack, setup.project, "t.csv")
    put(s3, prefix, "t.csv", b"region,count\nSecret,1\n")
    vote_all(stack, request)
    released = stack.minio.root_s3().get_object(
        Bucket="released", Key=f"{request['id']}/{request['files'][0]['id']}/t.csv")
    assert released["Body"].read() == CLEAN_TABLE


def test_requester_can_never_vote(stack, zone_user):
    setup, s3, prefix = zone_user
    put(s3, prefix, "t.csv", CLEAN_TABLE)
    request = submitted(stack, setup.project, "t.csv")
    response = stack.api("alice").post(f"/api/exports/{request['id']}/votes", json={
        "file_id": request["files"][0]["id"], "decision": "approve"})
    assert response.status_code == 403 and "own" in response.json()["error"]
    assert stack.api("bob").post(f"/api/exports/{request['id']}/votes", json={
        "file_id": request["files"][0]["id"], "decision": "approve"}).status_code == 403


def test_flagged_request_needs_two_blind_approvals_and_override(stack, zone_user):
    setup, s3, prefix = zone_user
    put(s3, prefix, "small.csv", SMALL_CELL_TABLE)
    request = submitted(stack, setup.project, "small.csv")
    assert request["check_record"]["flagged"] and request["required_approvals"] == 2
    rules = {f["rule"] for f in request["check_record"]["files"][0]["findings"]}
    assert "T001" in rules
    file_id = request["files"][0]["id"]
    refused = stack.api("reviewer").post(f"/api/exports/{request['id']}/votes", json={
        "file_id": file_id, "decision": "approve"})
    assert refused.status_code == 422 and "override" in refused.json()["error"]
    stack.api("reviewer").post(f"/api/exports/{request['id']}/votes", json={
        "file_id": file_id, "decision": "approve", "override_reason": "structural, public"}
    ).raise_for_status()
    assert stack.api("alice").get(f"/api/exports/{request['id']}").json()["votes"] == []
    view = stack.api("admin").get(f"/api/exports/{request['id']}").json()
    assert view["status"] == "in_review" and view["votes"] == []  # blind: not yet visible
    assert stack.api("reviewer").get(f"/api/exports/{request['id']}").json()["votes"]
    not_checker = stack.api("admin").post(f"/api/exports/{request['id']}/votes", json={
        "file_id": file_id, "decision": "reject", "comment": "cell of 3"})
    assert not_checker.status_code == 403  # admin is not an output checker in this setup
    second = stack.api("dave").post(f"/api/exports/{request['id']}/votes", json={
        "file_id": file_id, "decision": "approve", "override_reason": "published elsewhere"})
    assert second.json()["status"] == "released"
    votes = stack.api("alice").get(f"/api/exports/{request['id']}").json()["votes"]
    assert sorted(v["reviewer"] for v in votes) == ["dave", "reviewer"]  # visible once decided


def test_conflicting_votes_bring_in_a_further_reviewer(stack, zone_user):
    setup, s3, prefix = zone_user
    put(s3, prefix, "small.csv", SMALL_CELL_TABLE)
    request = submitted(stack, setup.project, "small.csv")
    file_id = request["files"][0]["id"]
    stack.api("reviewer").post(f"/api/exports/{request['id']}/votes", json={
        "file_id": file_id, "decision": "approve", "override_reason": "ok"}).raise_for_status()
    after = stack.api("dave").post(f"/api/exports/{request['id']}/votes", json={
        "file_id": file_id, "decision": "reject", "comment": "cell of 3"}).json()
    assert after["status"] == "in_review" and after["required_approvals"] == 3
    assert [v["reviewer"] for v in after["votes"]] == ["dave"]  # still blind to the other vote


def test_a_reviewer_cannot_review_their_own_request(stack):
    setup = provision(stack, member="dave")
    s3 = notebook_s3(stack, issue_grant(stack, "dave", setup.project))
    s3.put_object(Bucket="outbox", Key=f"{setup.project}/dave/t.csv", Body=CLEAN_TABLE)
    request = create(stack, setup.project, "t.csv", user="dave")
    submit_and_wait(stack.api("dave"), request["id"])
    response = stack.api("dave").post(f"/api/exports/{request['id']}/votes", json={
        "file_id": request["files"][0]["id"], "decision": "approve"})
    assert response.status_code == 403 and "own" in response.json()["error"]
    page = browser_session(stack, "dave").get(f"pages/review/{request['id']}")
    assert page.status_code == 403 and "본인 요청" in page.text


def test_changes_requested_returns_and_resubmits(stack, zone_user):
    setup, s3, prefix = zone_user
    put(s3, prefix, "t.csv", CLEAN_TABLE)
    request = submitted(stack, setup.project, "t.csv")
    returned = vote_all(stack, request, decision="request_changes",
                        comment="round to 5").json()
    assert returned["status"] == "returned"
    assert stack.api("alice").get(f"/api/exports/{request['id']}").json()["votes"][0][
        "comment"] == "round to 5"
    put(s3, prefix, "t.csv", b"region,sex,count\nSeoul,M,120\nSeoul,F,140\n")
    again = submit_and_wait(stack.api("alice"), request["id"])
    assert again["status"] == "in_review" and again["round"] == 2


def test_download_only_through_a_browser_session(stack, zone_user):
    setup, s3, prefix = zone_user
    put(s3, prefix, "t.csv", CLEAN_TABLE)
    request = submitted(stack, setup.project, "t.csv")
    vote_all(stack, request)
    file_id = request["files"][0]["id"]
    # an API token (what a notebook server holds) cannot make or use links
    api = stack.api("alice").post(f"/api/exports/{request['id']}/files/{file_id}/links")
    assert api.status_code == 403 and "browser" in api.json()["error"]
    browser = browser_session(stack, "alice")
    link = browser.post(f"api/exports/{request['id']}/files/{file_id}/links")
    assert link.status_code == 201, link.text
    token = link.json()["token"]
    got = browser.post("api/download", json={"token": token})
    assert got.status_code == 200 and got.content == CLEAN_TABLE
    assert "attachment" in got.headers["content-disposition"]
    # bob cannot use alice's link, and an API token cannot either
    assert browser_session(stack, "bob").post("api/download", json={"token": token}
                                              ).status_code == 403
    assert stack.api("alice").post("/api/download", json={"token": token}).status_code == 403
    # revoke: the old link stops working
    stack.api("reviewer").post(f"/api/exports/{request['id']}/revoke",
                               json={"reason": "found a small cell"}).raise_for_status()
    replay = browser.post("api/download", json={"token": token})
    assert replay.status_code == 409 and "revoked" in replay.json()["error"]
    assert replay.content != CLEAN_TABLE


def test_download_cap(stack, zone_user):
    setup, s3, prefix = zone_user
    put(s3, prefix, "t.csv", CLEAN_TABLE)
    request = submitted(stack, setup.project, "t.csv")
    vote_all(stack, request)
    browser = browser_session(stack, "alice")
    token = browser.post(f"api/exports/{request['id']}/files/{request['files'][0]['id']}/links"
                         ).json()["token"]
    codes = [browser.post("api/download", json={"token": token}).status_code
             for _ in range(6)]
    assert codes == [200] * 5 + [403]
    assert download(browser, request["id"], request["files"][0]["id"]).content == CLEAN_TABLE


@pytest.mark.parametrize("path", ["../bob/x.csv", "/etc/passwd", "a/../../x", "a\\b.csv",
                                  "a//b.csv", "x\x00.csv", "dir/", "./t.csv", "ｔ.csv"])
def test_path_attacks_are_refused(stack, zone_user, path):
    setup, _, _ = zone_user
    response = stack.api("alice").post("/api/exports", json={
        "project": setup.project, "files": [{"path": path}]})
    assert response.status_code == 422, response.text
    assert response.json()["error"]


def test_files_outside_own_outbox_cannot_be_exported(stack, zone_user):
    setup, _, _ = zone_user
    stack.minio.root_s3().put_object(Bucket="outbox", Key=f"{setup.project}/bob/b.csv",
                                     Body=CLEAN_TABLE)
    request = create(stack, setup.project, "b.csv")
    response = stack.api("alice").post(f"/api/exports/{request['id']}/submit")
    assert response.status_code == 422 and "not in your outbox" in response.json()["error"]
    assert stack.api("alice").get(f"/api/exports/{request['id']}").json()["status"] == "draft"
    # and a non-member cannot even open a request in the project
    assert stack.api("bob").post("/api/exports", json={
        "project": setup.project, "files": [{"path": "b.csv"}]}).status_code == 403


def test_archives_and_pickles_are_refused_at_submit_spoofed_names_flagged(stack, zone_user):
    """Kinds that may never leave are refused before anything is frozen; a table under an
    image's name is exportable but flagged."""
    setup, s3, prefix = zone_user
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros.bin", b"\0" * (300 * 1024 * 1024))
    put(s3, prefix, "innocent.csv", bomb.getvalue())
    put(s3, prefix, "model.json", b"\x80\x04\x95" + b"\0" * 20)
    for name in ("innocent.csv", "model.json"):
        request = create(stack, setup.project, name)
        refused = stack.api("alice").post(f"/api/exports/{request['id']}/submit")
        assert refused.status_code == 422 and name in refused.json()["error"]
        frozen = stack.minio.root_s3().list_objects_v2(Bucket="egress-quarantine",
                                                       Prefix=f"{request['id']}/")
        assert frozen.get("KeyCount", 0) == 0
    put(s3, prefix, "fake.png", CLEAN_TABLE)
    request = submitted(stack, setup.project, "fake.png")
    rules = {x["rule"] for x in request["check_record"]["files"][0]["findings"]}
    assert "F002" in rules and request["required_approvals"] == 2


def test_malformed_and_unknown(stack, zone_user):
    setup, _, _ = zone_user
    client = stack.api("alice")
    bad = client.post("/api/exports", content=b"{", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400
    assert client.get("/api/exports/ffffffffffffffff").status_code == 404
    assert client.post("/api/exports", json={"project": setup.project, "files": []}
                       ).status_code == 422


def test_withdrawn_request_cannot_be_reviewed(stack, zone_user):
    setup, s3, prefix = zone_user
    put(s3, prefix, "t.csv", CLEAN_TABLE)
    request = submitted(stack, setup.project, "t.csv")
    assert stack.api("alice").post(f"/api/exports/{request['id']}/withdraw"
                                   ).json()["status"] == "withdrawn"
    response = stack.api("reviewer").post(f"/api/exports/{request['id']}/votes", json={
        "file_id": request["files"][0]["id"], "decision": "approve"})
    assert response.status_code == 409


def test_export_cli_from_a_notebook_environment(stack, zone_user):
    import os
    import subprocess
    import sys

    setup, s3, prefix = zone_user
    put(s3, prefix, "cli.csv", CLEAN_TABLE)
    env = {**os.environ, "SAFEZONE_API_URL": stack.control_plane.url,
           "JUPYTERHUB_API_TOKEN": stack.tokens["alice"], "SAFEZONE_PROJECT": setup.project}
    env.pop("SAFEZONE_URL", None)
    env.pop("SAFEZONE_TOKEN", None)
    done = subprocess.run([sys.executable, "-m", "safezone.cli", "exports", "submit", "cli.csv",
                           "--title", "from the CLI", "--justification", "table"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "checking"


def test_oversized_file_is_refused_at_submit_without_copying(stack, zone_user):
    setup, s3, prefix = zone_user
    put(s3, prefix, "huge.csv", b"x" * (50 * 1024 * 1024 + 1))
    request = create(stack, setup.project, "huge.csv")
    response = stack.api("alice").post(f"/api/exports/{request['id']}/submit")
    assert response.status_code == 422 and "over the limit" in response.json()["error"]
    assert stack.api("alice").get(f"/api/exports/{request['id']}").json()["status"] == "draft"
    frozen = stack.minio.root_s3().list_objects_v2(Bucket="egress-quarantine",
                                                   Prefix=f"{request['id']}/")
    assert frozen.get("KeyCount", 0) == 0


def test_page_forms_need_their_csrf_value(stack, zone_user):
    setup, s3, prefix = zone_user
    put(s3, prefix, "t.csv", CLEAN_TABLE)
    request = submitted(stack, setup.project, "t.csv")
    browser = browser_session(stack, "alice")
    forged = browser.post(f"pages/requests/{request['id']}/withdraw", data={"_csrf": "guess"})
    assert forged.status_code == 403
    assert stack.api("alice").get(f"/api/exports/{request['id']}").json()["status"] == "in_review"
    api_cookie_only = httpx.post(f"{stack.hub_url}/services/safezone/api/exports/"
                                 f"{request['id']}/withdraw", cookies=browser.cookies)
    assert api_cookie_only.status_code == 403


def test_admin_sees_datasets_and_the_attested_report_others_do_not(stack):
    setup = provision(stack, member="alice")
    admin = browser_session(stack, "admin")
    overview = admin.get("pages/admin")
    assert overview.status_code == 200 and setup.dataset in overview.text
    report = admin.get(f"pages/admin/datasets/{setup.dataset}/report")
    assert report.status_code == 200 and "k-anonymity" in report.text
    assert "default-src 'none'" in report.headers["content-security-policy"]
    assert browser_session(stack, "alice").get(
        f"pages/admin/datasets/{setup.dataset}/report").status_code == 403
    assert admin.get(f"pages/admin/datasets/{setup.raw_dataset}/report").status_code == 404
    listed = {d["name"]: d for d in stack.api("admin").get("/api/datasets").json()}
    assert listed[setup.dataset]["attestation"]["rows_out"] == DATASET_ROWS
    assert listed[setup.raw_dataset]["attestation"] is None
