"""Bad input through the REST API: a clear 4xx, and nothing left behind."""

from __future__ import annotations

import pytest

from .support import unique


def bucket_names(stack) -> set[str]:
    return {b["Name"] for b in stack.minio.root_s3().list_buckets()["Buckets"]}


def test_malformed_json_is_400(stack):
    response = stack.api("admin").post("/api/projects", content=b"{not json",
                                       headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]


@pytest.mark.parametrize("name", ["A-Upper", "x", "-lead", "trail-", "has space", "a" * 41,
                                  "dots.in.name", "double--hyphen", "1starts-with-digit"])
def test_invalid_project_names_are_refused(stack, name):
    admin = stack.api("admin")
    response = admin.post("/api/projects", json={"name": name})
    assert response.status_code == 422
    assert "project name" in response.json()["error"]
    assert name not in [p["name"] for p in admin.get("/api/projects").json()]


def test_unknown_fields_and_wrong_types_are_422(stack):
    admin = stack.api("admin")
    assert admin.post("/api/projects", json={"name": unique("p"), "owner": "x"}
                      ).status_code == 422
    assert admin.post("/api/projects", json={"name": 5}).status_code == 422


def test_duplicate_project_is_409_and_single_row(stack):
    admin = stack.api("admin")
    name = unique("dup")
    assert admin.post("/api/projects", json={"name": name}).status_code == 201
    response = admin.post("/api/projects", json={"name": name})
    assert response.status_code == 409 and "already exists" in response.json()["error"]
    assert [p["name"] for p in admin.get("/api/projects").json()].count(name) == 1


@pytest.mark.parametrize("name", ["deid_Bad", "de", "deid-" + "x" * 60, "deid..x", "deid-x/y"])
def test_invalid_dataset_names_leave_no_bucket(stack, name):
    before = bucket_names(stack)
    response = stack.api("admin").post("/api/datasets",
                                       json={"name": name, "classification": "deidentified"})
    assert response.status_code == 422, response.text
    assert response.json()["error"]
    assert bucket_names(stack) == before


def test_dataset_name_must_match_classification(stack):
    before = bucket_names(stack)
    response = stack.api("admin").post("/api/datasets", json={"name": unique("raw-x"),
                                                              "classification": "deidentified"})
    assert response.status_code == 422 and "deid-" in response.json()["error"]
    response = stack.api("admin").post("/api/datasets", json={"name": unique("deid-x"),
                                                              "classification": "secret"})
    assert response.status_code == 422 and "classification" in response.json()["error"]
    assert bucket_names(stack) == before


def test_duplicate_dataset_is_409_and_keeps_its_bucket(stack):
    admin = stack.api("admin")
    name = unique("deid-dup")
    assert admin.post("/api/datasets", json={"name": name, "classification": "deidentified"}
                      ).status_code == 201
    response = admin.post("/api/datasets", json={"name": name, "classification": "deidentified"})
    assert response.status_code == 409
    assert name in bucket_names(stack)
    assert [d["name"] for d in admin.get("/api/datasets").json()].count(name) == 1


def test_unknown_project_is_404(stack):
    admin = stack.api("admin")
    response = admin.post("/api/projects/no-such-project/datasets", json={"dataset": "deid-x"})
    assert response.status_code == 404 and "no project" in response.json()["error"]
    assert stack.api("alice").post("/api/projects/no-such-project/members/request",
                                   json={}).status_code == 404


def test_raw_dataset_cannot_be_published_or_attached(stack):
    admin = stack.api("admin")
    project, raw = unique("p"), unique("raw-ds")
    admin.post("/api/projects", json={"name": project}).raise_for_status()
    admin.post("/api/datasets", json={"name": raw, "classification": "raw"}).raise_for_status()
    response = admin.post(f"/api/datasets/{raw}/publish")
    assert response.status_code == 409 and "raw" in response.json()["error"]
    response = admin.post(f"/api/projects/{project}/datasets", json={"dataset": raw})
    assert response.status_code == 409 and "de-identified" in response.json()["error"]
    assert admin.get("/api/projects").json()  # still answers
    assert next(p for p in admin.get("/api/projects").json()
                if p["name"] == project)["datasets"] == []


def test_unpublished_dataset_cannot_be_attached(stack):
    admin = stack.api("admin")
    project, draft = unique("p"), unique("deid-draft")
    admin.post("/api/projects", json={"name": project}).raise_for_status()
    admin.post("/api/datasets", json={"name": draft, "classification": "deidentified"}
               ).raise_for_status()
    response = admin.post(f"/api/projects/{project}/datasets", json={"dataset": draft})
    assert response.status_code == 409 and "publish" in response.json()["error"]


@pytest.mark.parametrize("user", ["alice", "reviewer"])
def test_non_admins_cannot_administer(stack, user):
    client = stack.api(user)
    response = client.post("/api/projects", json={"name": unique("p")})
    assert response.status_code == 403 and "administrator" in response.json()["error"]
    assert client.post("/api/datasets", json={"name": unique("deid-x"),
                                              "classification": "deidentified"}
                       ).status_code == 403
    assert client.get("/api/audit/verify").status_code == 403


def test_users_cannot_issue_grants_for_themselves(stack):
    from .support import provision

    setup = provision(stack, member="alice")
    for user in ("alice", "admin"):
        response = stack.api(user).post("/api/sessions", json={"user": "alice",
                                                               "project": setup.project})
        assert response.status_code == 403, response.text
        assert "spawner" in response.json()["error"]


def test_users_cannot_see_each_others_projects(stack):
    assert stack.api("bob").get("/api/users/alice/projects").status_code == 403
    assert stack.api("alice").get("/api/users/alice/projects").status_code == 200


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_the_cap_is_413_before_any_route_reads_it(stack, chunked):
    """Declared or not (chunked), no route parses more than the largest legitimate body."""
    from safezone.api.body_limit import MAX_BODY_BYTES

    size = MAX_BODY_BYTES + (1 << 20)
    admin = stack.api("admin")
    before = admin.get("/api/applications").json()
    if chunked:
        def chunks():
            for _ in range(size >> 20):
                yield b"x" * (1 << 20)

        response = admin.post("/api/applications", content=chunks(),
                              headers={"Content-Type": "application/json"})
    else:
        response = admin.post("/api/applications", content=b"x" * size,
                              headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "over" in response.json()["error"]
    assert admin.get("/api/applications").json() == before
