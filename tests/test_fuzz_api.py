"""Schemathesis against the real control plane, with every identity's token: no 5xx.

The control plane serves no ``/openapi.json`` (``openapi_url=None``), so the schema is
taken from the served app object (``app.openapi()``), seeded with the names of real
objects (a project, its datasets, a member, an export request, an application) so that
the explicit-examples phase reaches past "not found", and fuzzed over HTTP on a stack of
this module's own: its own MinIO, database, hub and proxy. Administrators' cases create,
archive and revoke things; nothing of that reaches the session stack other tests share.

Bounded here (``SAFEZONE_FUZZ_EXAMPLES``, default 3 per operation; derandomized, no
Hypothesis database, no deadline; the coverage phase as ``DEEP`` callers only);
``make fuzz`` (benchmarks/fuzz_api.py, ``SAFEZONE_FUZZ_LONG=1``) runs every phase for
every identity with many more examples. Only ``/metrics`` is left out (its bearer token
is its only input); page form bodies are not described (they need the form's CSRF field).
"""

from __future__ import annotations

import copy
import json
import os
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import yaml
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from safezone.api.actions import routes_of
from safezone.api.applications_routes import ApplicationIn
from safezone.applications import load_rules

from .support import (
    TINY_RECIPE,
    Stack,
    browser_session,
    issue_grant,
    launch_minio,
    launch_stack,
    notebook_s3,
    provision,
    report_measure,
)

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("SAFEZONE_FUZZ_EXAMPLES", "3"))
# the long run (benchmarks/fuzz_api.py) also sends every operation the methods it does not
# serve (Starlette's 405, the same for every identity: left out of the bounded run)
LONG = os.environ.get("SAFEZONE_FUZZ_LONG") == "1"
# the bounded run's coverage phase (boundary and schema-violating values of every field,
# the most cases) runs as the two callers who get furthest: an administrator and a member
# who requests exports; the others get the explicit examples and the random phase
DEEP = ("admin", "alice")
# who calls: every kind of caller the zone knows. BROWSERS also carry their page session
# cookie and CSRF header (the /pages routes read only those; /api prefers the header).
IDENTITIES = ("admin", "reviewer", "steward", "alice", "bob", "spawner", "operator",
              "anonymous")
BROWSERS = ("admin", "reviewer", "alice", "bob")
CASES: Counter[str] = Counter()
SERVER_ERRORS: Counter[str] = Counter()
FAILING: dict[str, set[str]] = {name: set() for name in IDENTITIES}
STATUSES: dict[str, Counter[str]] = {name: Counter() for name in IDENTITIES}
REPORT_VAR = "SAFEZONE_FUZZ_REPORT"  # a JSON file for benchmarks/fuzz_api.py
CLEAN_TABLE = b"region,sex,count\nSeoul,M,120\nSeoul,F,140\nBusan,M,45\nBusan,F,50\n"


@pytest.fixture(scope="module")
def fuzz_stack(tmp_path_factory: pytest.TempPathFactory, zone_network) -> Iterator[Stack]:
    """MinIO, control plane, hub and proxy of this module alone (see the docstring)."""
    minio = launch_minio(tmp_path_factory.mktemp("fuzz-minio"))
    try:
        stack = launch_stack(tmp_path_factory.mktemp("fuzz-stack"), minio)
        yield stack
        stack.hub.stop(timeout=20)
        stack.control_plane.stop()
    finally:
        minio.process.stop()


@pytest.fixture(scope="module")
def seeds(fuzz_stack: Stack) -> dict[str, Any]:
    """Real objects for the schema's examples: a project with a published dataset and a
    member (alice), her grant and an export request, and bob's application."""
    setup = provision(fuzz_stack, member="alice")
    grant = issue_grant(fuzz_stack, "alice", setup.project)
    notebook_s3(fuzz_stack, grant).put_object(
        Bucket="outbox", Key=f"{setup.project}/alice/table.csv", Body=CLEAN_TABLE)
    alice = fuzz_stack.api("alice")
    request = alice.post("/api/exports", json={
        "project": setup.project, "title": "results",
        "files": [{"path": "table.csv", "justification": "aggregate table"}]})
    assert request.status_code == 201, request.text
    until = (fuzz_stack.zone.now() + timedelta(days=60)).date().isoformat()
    application = {"purpose": "Regional differences in yearly visits.",
                   "datasets": [setup.dataset], "until": until, "pledge_accepted": True,
                   "pledge_version": load_rules().pledge.version}
    applied = fuzz_stack.api("bob").post("/api/applications", json=application)
    assert applied.status_code == 201, applied.text
    return {"project": setup.project, "dataset": setup.dataset, "raw": setup.raw_dataset,
            "user": "alice", "grant_id": grant["grant_id"],
            "request_id": request.json()["id"],
            "file_id": request.json()["files"][0]["id"],
            "application_id": applied.json()["id"], "application": application,
            "until": until}


@pytest.fixture(scope="module")
def callers(fuzz_stack: Stack) -> dict[str, dict[str, Any]]:
    """Each identity's headers and cookies, as ``case.call`` takes them."""
    found: dict[str, dict[str, Any]] = {"anonymous": {"headers": {}, "cookies": {}}}
    for name in IDENTITIES[:-1]:
        token = fuzz_stack.spawner_token if name == "spawner" else fuzz_stack.tokens[name]
        found[name] = {"headers": {"Authorization": f"token {token}"}, "cookies": {}}
    for name in BROWSERS:
        browser = browser_session(fuzz_stack, name)
        found[name]["cookies"] = dict(browser.cookies)
        found[name]["headers"]["X-Safezone-CSRF"] = browser.headers["X-Safezone-CSRF"]
        browser.close()
    return found


FLASH = ("done", "n")  # admin_pages.flash: the message of the action just done
PAGE_QUERIES = {
    "/pages/admin": FLASH,
    "/pages/admin/projects/{name}": FLASH,
    "/pages/admin/audit": (*FLASH, "actor", "action", "project", "since", "until", "page"),
    "/pages/applications/{application_id}": ("done",),
    "/pages/review/{request_id}/outcome": ("done",),
    "/pages/apply": ("dataset",),
}
QUERY_SCHEMAS = {"dataset": {"type": "array", "items": {"type": "string"}},
                 "since": {"type": "string", "format": "date"},
                 "until": {"type": "string", "format": "date"}}


def fuzz_schema(app: Any, seeds: dict[str, Any]) -> dict[str, Any]:
    """The app's own OpenAPI document, completed where the code reads a body itself, with
    real names as examples of path parameters and of the main bodies."""
    schema = copy.deepcopy(app.openapi())
    paths = schema["paths"]
    # POST /api/applications reads JSON (or a multipart form) itself, so FastAPI knows no
    # body for it: describe the JSON one from the model the route validates with.
    paths["/api/applications"]["post"]["requestBody"] = {"required": True, "content": {
        "application/json": {"schema": ApplicationIn.model_json_schema(),
                             "example": seeds["application"]}}}
    # query parameters some pages read from request.query_params themselves
    for path, names in PAGE_QUERIES.items():
        paths[path]["get"].setdefault("parameters", []).extend(
            {"name": name, "in": "query", "required": False, "schema": QUERY_SCHEMAS.get(
                name, {"type": "string"})} for name in names)
    for path, operations in paths.items():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                value = _example(path, parameter["name"], seeds)
                if value is not None and parameter["in"] == "path":
                    parameter["example"] = value
    bodies = {
        ("/api/projects", "post"): {"name": "fuzz-project", "title": "fuzz"},
        ("/api/sessions", "post"): {"user": "alice", "project": seeds["project"]},
        ("/api/projects/{name}/datasets", "post"): {"dataset": seeds["dataset"]},
        ("/api/projects/{name}/members/{user}/approve", "post"): {
            "expires_at": seeds["until"] + "T00:00:00+00:00"},
        ("/api/exports/{request_id}/votes", "post"): {
            "file_id": seeds["file_id"], "decision": "approve"},
        ("/api/exports", "post"): {"project": seeds["project"], "files": [
            {"path": "table.csv"}]},
        ("/api/exports/dry-run", "post"): {"project": seeds["project"],
                                           "files": ["table.csv"], "language": "en"},
        ("/api/datasets/{name}/catalogue", "put"): yaml.safe_load(TINY_RECIPE)["catalogue"],
        ("/api/applications/{application_id}/approve", "post"): {
            "expires_at": seeds["until"], "project": seeds["project"]},
    }
    for (path, method), example in bodies.items():
        paths[path][method]["requestBody"]["content"]["application/json"]["example"] = example
    return schema


def _example(path: str, name: str, seeds: dict[str, Any]) -> Any:
    if name == "name":
        on_dataset = "/datasets/{name}" in path or "/catalogue/{name}" in path
        return seeds["dataset"] if on_dataset else seeds["project"]
    return seeds.get({"project": "project", "dataset": "dataset", "user": "user",
                      "grant_id": "grant_id", "request_id": "request_id",
                      "file_id": "file_id", "application_id": "application_id"}.get(name, ""))


@pytest.fixture(scope="module")
def app_schema(fuzz_stack: Stack, seeds: dict[str, Any]) -> dict[str, Any]:
    return fuzz_schema(fuzz_stack.control_plane.server.config.app, seeds)


@pytest.fixture
def api_schema(request: pytest.FixtureRequest, fuzz_stack: Stack,
               app_schema: dict[str, Any]):
    """The schema loaded for one identity's test (its name ends with the identity)."""
    identity = request.node.name.rsplit("_as_", 1)[-1]
    loaded = schemathesis.openapi.from_dict(copy.deepcopy(app_schema))
    config = loaded.config
    config.update(base_url=fuzz_stack.control_plane.url, request_timeout=60)
    config.generation.update(max_examples=EXAMPLES, deterministic=True, database="none",
                             modes=["positive", "negative"])
    if not LONG:
        config.phases.coverage.unexpected_methods = set()
        config.phases.coverage.enabled = identity in DEEP
    return loaded


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    """Cases and failures per identity in the summary (and a JSON file when asked)."""
    yield
    rows = {name: {"cases": CASES[name], "server_errors": SERVER_ERRORS[name],
                   "failing_operations": sorted(FAILING[name]),
                   "statuses": dict(sorted(STATUSES[name].items()))}
            for name in IDENTITIES if CASES[name]}
    for name, row in rows.items():
        report_measure(f"fuzz {name}: {row['cases']} cases, {row['server_errors']} 5xx "
                       f"on {len(row['failing_operations'])} operations")
    if os.environ.get(REPORT_VAR):
        Path(os.environ[REPORT_VAR]).write_text(json.dumps(
            {"examples": EXAMPLES, "identities": rows}, indent=1))


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32's lazy schema reads and renames ``item._nodeid`` for its
    per-operation reports; pytest 9.2 keeps node ids elsewhere. Give it the attribute."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


def fuzz_as(identity: str):
    """The fuzz test of one identity (schemathesis' lazy schema takes no pytest
    parametrization, so each identity gets a test function of its own)."""

    @schema.parametrize()
    def test(case, callers: dict[str, dict[str, Any]]) -> None:
        """Every generated request, positive or negative, as this identity: a 4xx or a
        success, never a 5xx (the readiness probe's documented 503 aside), and a response
        the schema describes."""
        caller = callers[identity]
        response = case.call(headers=caller["headers"], cookies=caller["cookies"],
                             allow_redirects=False)
        CASES[identity] += 1
        STATUSES[identity][f"{case.operation.label} {response.status_code}"] += 1
        if _documented_unready(case, response):
            return
        if response.status_code >= 500:
            SERVER_ERRORS[identity] += 1
            FAILING[identity].add(case.operation.label)
        case.validate_response(response, checks=[not_a_server_error,
                                                 response_schema_conformance],
                               headers=caller["headers"])

    test.__name__ = f"test_no_server_error_as_{identity}"
    return test


for _identity in IDENTITIES:
    globals()[f"test_no_server_error_as_{_identity}"] = fuzz_as(_identity)


def _documented_unready(case, response) -> bool:
    """/api/health/ready answers 503 by design when MinIO or the anchor is away."""
    return case.path == "/api/health/ready" and response.status_code == 503


def test_schema_describes_every_route_and_body(fuzz_stack: Stack,
                                               seeds: dict[str, Any]) -> None:
    """The app's schema is fit to fuzz: every route is an operation, every path parameter
    is declared, every pydantic body is described from its model; the one body read by
    hand (applications) is completed by ``fuzz_schema``."""
    app = fuzz_stack.control_plane.server.config.app
    schema = fuzz_schema(app, seeds)
    hidden = {route.path for route in routes_of(app) if not route.include_in_schema}
    assert hidden == {"/metrics"}  # the scraper's, no input but its bearer token
    for route in routes_of(app):
        for method in route.methods - {"HEAD"} if route.include_in_schema else ():
            operation = schema["paths"][route.path][method.lower()]
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == set(route.param_convertors), route.path
            if route.body_field is not None:
                described = operation["requestBody"]["content"]["application/json"]["schema"]
                # a model, or (PUT .../catalogue) a free object that metadata.check reads
                assert "$ref" in described or described.get("type") == "object", route.path
    body = schema["paths"]["/api/applications"]["post"]["requestBody"]
    assert "purpose" in body["content"]["application/json"]["schema"]["properties"]
