"""The whole flow through a real JupyterHub + configurable-http-proxy + local spawner.

alice logs in over HTTP, the spawn form offers only her approved project, her server
starts with the grant's credentials, and code run in its kernel reads the dataset but
not the raw bucket. bob is refused. Revocation stops the server and kills credentials.
"""

from __future__ import annotations

import json
import re
import threading
import time

import httpx
import pytest

from .kernels import run_code
from .support import (
    assert_serves_nothing_out,
    env_s3,
    hub_login,
    keys_refused,
    provision,
    report_measure,
    server_environment,
    session_s3,
    wait_until,
)

pytestmark = pytest.mark.integration

PROBE = """
import io, json, os, boto3
import pyarrow.parquet as pq
s3 = boto3.client("s3")
out = {"env_project": os.environ["SAFEZONE_PROJECT"], "cwd": os.getcwd(),
       "key": os.environ["AWS_ACCESS_KEY_ID"], "secret": os.environ["AWS_SECRET_ACCESS_KEY"],
       "token": os.environ["AWS_SESSION_TOKEN"]}
body = s3.get_object(Bucket=%(dataset)r, Key="data.parquet")["Body"].read()
out["dataset"] = ",".join(pq.read_table(io.BytesIO(body)).column_names)
try:
    s3.get_object(Bucket=%(raw)r, Key="people.csv"); out["raw"] = "READ"
except Exception as exc:
    out["raw"] = exc.response["Error"]["Code"]
print(json.dumps(out))
"""


def server_state(stack, user: str) -> dict | None:
    model = stack.hub_api(user).get(f"/users/{user}").json()  # each reads their own
    return model["servers"].get("")


@pytest.fixture(scope="module")
def alice_server(stack):
    setup = provision(stack, member="alice")
    browser = hub_login(stack, "alice")
    form = browser.get("/hub/spawn").text
    offered = re.findall(r'<option value="([^"]+)"', form)
    assert setup.project in offered
    started = time.monotonic()
    response = browser.post("/hub/spawn", data={"project": setup.project,
                                                "_xsrf": browser.cookies.get("_xsrf")})
    assert response.status_code in (302, 303), response.text[:500]
    wait_until(lambda: (server_state(stack, "alice") or {}).get("ready"), timeout=90,
               interval=0.3)
    report_measure(f"alice's server ready {time.monotonic() - started:.2f} s after POST /hub/spawn")
    setup.offered = offered
    yield setup
    stack.hub_api("alice").delete("/users/alice/server")
    wait_until(lambda: server_state(stack, "alice") is None, timeout=60)


def test_spawn_form_lists_only_approved_projects(stack, alice_server):
    """The form alice saw before starting offered exactly her usable projects."""
    listed = stack.api("alice").get("/api/users/alice/projects").json()["projects"]
    assert alice_server.project in alice_server.offered
    assert sorted(alice_server.offered) == listed


def test_notebook_reads_dataset_but_not_raw(stack, alice_server):
    output = run_code(f"{stack.hub_url}/user/alice/", stack.tokens["alice"],
                      PROBE % {"dataset": alice_server.dataset, "raw": alice_server.raw_dataset})
    result = json.loads(output.strip().splitlines()[-1])
    assert result["dataset"].startswith("id,age")
    assert result["raw"] == "AccessDenied"
    assert result["env_project"] == alice_server.project
    assert result["cwd"] == "/workspace"  # the project workspace, mounted in the sandbox


def test_files_route_refuses_downloads(stack, alice_server):
    run_code(f"{stack.hub_url}/user/alice/", stack.tokens["alice"],
             "open('result.csv', 'w').write('a,b')")
    response = httpx.get(f"{stack.hub_url}/user/alice/files/result.csv",
                         headers={"Authorization": f"token {stack.tokens['alice']}"})
    assert response.status_code == 403
    assert "export request" in response.text


def test_notebook_server_serves_nothing_out(stack, alice_server):
    """Through the real hub with alice's own token and browser cookie: the contents API
    gives no binary, base64 or large content, there are no nbconvert or terminal routes,
    Lab's download/export commands and news are off — and notebooks still open and save."""
    token = httpx.Client(base_url=f"{stack.hub_url}/user/alice", timeout=60,
                         headers={"Authorization": f"token {stack.tokens['alice']}"})
    browser = hub_login(stack, "alice")
    assert_serves_nothing_out(token, browser, "/user/alice")


def test_a_person_without_a_project_sees_none_and_cannot_start(stack, alice_server):
    form = hub_login(stack, "grace").get("/hub/spawn").text
    assert 'id="sz-no-project"' in form and "<option" not in form
    response = stack.hub_api("grace").post("/users/grace/server",
                                         json={"project": alice_server.project})
    assert response.status_code >= 400, response.text
    assert "no approved membership" in response.text
    assert server_state(stack, "grace") is None


def test_forged_options_for_another_project_are_refused(stack, alice_server):
    other = provision(stack, member="carol")
    response = stack.hub_api("alice").post("/users/alice/servers/forged",
                                           json={"project": other.project})
    assert response.status_code >= 400
    assert "no approved membership" in response.text


EXPORT_FROM_NOTEBOOK = """
import pandas as pd
from safezone.notebook import crosstab, save_table, submit_export
df = pd.DataFrame({"sido": ["서울"] * 30 + ["부산"] * 30, "sex": ["M", "F"] * 30,
                   "cost": [100.0] * 59 + [90000.0]})
table, evidence = crosstab(df, "sido", "sex", values="cost")
save_table(table, "tables/cost.csv", evidence=evidence)
request = submit_export(["tables/cost.csv"], "cost", "aggregate")
print(request["status"], sorted({x["rule"] for f in request["check_record"]["files"]
                                 for x in f["findings"]}))
"""


def test_export_from_inside_the_notebook(stack, alice_server):
    """The helper writes a table + evidence to the outbox and submits with the server's
    own hub token; the server applies the dominance rule from the evidence."""
    output = run_code(f"{stack.hub_url}/user/alice/", stack.tokens["alice"],
                      EXPORT_FROM_NOTEBOOK)
    status, rules = output.strip().splitlines()[-1].split(" ", 1)
    assert status == "in_review"
    assert "T006" in rules  # one contributor dominates the 부산/F cell


def test_stopping_a_server_ends_its_keys(stack, alice_server):
    """The keys a stopped server held are refused at once, not when they expire."""
    hub = stack.hub_api("alice")
    started = hub.post("/users/alice/servers/stopper", json={"project": alice_server.project})
    assert started.status_code in (201, 202), started.text
    wait_until(lambda: hub.get("/users/alice").json()["servers"].get("stopper", {}).get(
        "ready"), timeout=90, interval=0.3)
    env = server_environment("alice", "stopper")
    s3 = env_s3(stack.minio, env)
    s3.get_object(Bucket=alice_server.dataset, Key="data.parquet")  # works while it runs
    started = time.monotonic()
    hub.request("DELETE", "/users/alice/servers/stopper", json={"remove": True})
    took = wait_until(lambda: keys_refused(s3, alice_server.dataset), timeout=5,
                      interval=0.05)
    report_measure(f"server stopped → its keys refused after {time.monotonic() - started:.2f} s "
                   f"(polled {took:.2f} s)")


def test_revocation_stops_server_and_kills_credentials(stack, alice_server):
    output = run_code(f"{stack.hub_url}/user/alice/", stack.tokens["alice"],
                      PROBE % {"dataset": alice_server.dataset, "raw": alice_server.raw_dataset})
    creds = json.loads(output.strip().splitlines()[-1])
    s3 = session_s3(stack.minio, creds["key"], creds["secret"], creds["token"])

    def refused() -> bool:
        return keys_refused(s3, alice_server.dataset)

    assert not refused()
    revoke = threading.Thread(target=lambda: stack.api("admin").post(
        f"/api/projects/{alice_server.project}/members/alice/revoke", json={"reason": "test"}
    ).raise_for_status())
    started = time.monotonic()
    revoke.start()  # poll the credentials while the revocation is still in flight
    wait_until(refused, timeout=10, interval=0.02)
    creds_dead = time.monotonic() - started
    revoke.join(30)
    wait_until(lambda: server_state(stack, "alice") is None, timeout=30, interval=0.1)
    server_gone = time.monotonic() - started
    report_measure(f"revocation: notebook credentials refused after {creds_dead:.3f} s, "
                   f"server stopped after {server_gone:.3f} s (target < 5 s)")
    assert creds_dead < 5
    assert server_gone < 30
