"""alice's workspace opens on a read-only welcome notebook in her language, JupyterLab
speaks it too and shows no news, and the hub's pages lead back to the Safezone pages.

The language reaches the notebook server as the Safezone pages choose it: the
``safezone-lang`` cookie (path ``/``) of the spawn request, else its ``Accept-Language``,
else Korean; the spawner passes it as ``SAFEZONE_LANGUAGE``.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import httpx
import nbformat
import pytest
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader
from sqlalchemy import select
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine
from traitlets.config import PyFileConfigLoader

from safezone import welcome
from safezone.config import REPO_ROOT
from safezone.models import SessionGrant
from spawner import hub_pages

from .kernels import KernelSession
from .support import attested_dataset, hub_login, unique, wait_until
from .test_hub_config import load
from .test_local_zone import HUB as LOCAL_HUB
from .test_local_zone import alice_on_the_hub, local_zone  # noqa: F401  (a fixture)

HANGUL = re.compile(r"[\uac00-\ud7a3]")
PAGES = "/services/safezone/pages/"

# -- the notebook itself -----------------------------------------------------------------

ENTRY = {
    "name": "deid-visits",
    "title": {"ko": "방문 기록 (가명처리)", "en": "Visit records (de-identified)"},
    "description": {"ko": "시도와 성별로 본 방문 기록", "en": "Visits by province | and sex"},
    "temporal": {"start": "2024-01-01", "end": "2024-12-31"},
    "rows": 2950, "k_achieved": 7, "l_achieved": None,
    "licence": {"title": {"ko": "안심구역 이용 약관", "en": "Safezone terms of use"}},
    "data_dictionary": [
        {"name": "rrn", "type": "string", "technique": "pseudonymise",
         "technique_ko": "가명처리(HMAC)", "description": {"ko": "가명 식별자", "en": "pseudonym"}},
        {"name": "sido", "type": "string", "technique": "keep", "technique_ko": "유지",
         "description": {"ko": "거주 시도", "en": "province of residence"}},
        {"name": "sex", "type": "string", "technique": "keep", "technique_ko": "유지",
         "description": {"ko": "성별", "en": "sex"}},
        {"name": "visits", "type": "int64", "technique": "topcode", "technique_ko": "상단코딩",
         "description": {"ko": "연간 방문 횟수", "en": "visits in the year"}},
    ],
}
ENDS = datetime(2027, 2, 25, 9, 0, tzinfo=UTC)


def environment(**more: str) -> dict[str, str]:
    return {"SAFEZONE_PROJECT": "study-1", "SAFEZONE_USER": "alice",
            "SAFEZONE_OUTBOX_URI": "s3://outbox/study-1/alice/",
            "SAFEZONE_GRANT_EXPIRES": (ENDS - timedelta(days=80)).isoformat(),
            "SAFEZONE_DATASETS": json.dumps([{"name": "deid-visits",
                                               "uri": "s3://deid-visits/"}]), **more}


def control_plane(path: str):
    return {"/api/me": {"memberships": [{"project": "other", "expires_at": "2030-01-01"},
                                        {"project": "study-1", "expires_at": ENDS.isoformat()}]},
            "/api/projects": [{"name": "study-1", "title": "Hospital visits"}],
            "/api/catalogue": [ENTRY]}[path]


def text_of(notebook) -> str:
    return "\n".join(cell.source for cell in notebook.cells)


@pytest.mark.parametrize(("language", "words"), [
    ("en", ["Your project", "Your access ends:** February 25, 2027", "Visit records",
            "province of residence", "kept as is", "pseudonymised", "Data dictionary",
            "Terms of use:** Safezone terms of use", "Rows:** 2,950", "k = 7",
            "Period:** 2024-01-01 – 2024-12-31", "Ask for an export"]),
    ("ko", ["내 프로젝트", "이용 종료일:** 2027년 2월 25일", "방문 기록 (가명처리)", "거주 시도",
            "유지", "가명처리(HMAC)", "데이터 사전", "안심구역 이용 약관", "반출 요청하기"]),
])
def test_welcome_names_project_expiry_datasets_and_dictionary(language, words):
    notebook = welcome.build(welcome.gather(environment(), control_plane), language)
    nbformat.validate(notebook)
    shown = text_of(notebook)
    assert "`study-1` — Hospital visits" in shown
    for word in words:
        assert word in shown, word
    for column in ("rrn", "sido", "sex", "visits"):
        assert f"| `{column}` |" in shown
    assert "Visits by province \\| and sex" in shown or language == "ko"  # no broken table
    # the way back and out: the pages, the export form of this project, the hub
    assert f"]({PAGES})" in notebook.cells[0].source
    assert f"]({PAGES}projects/study-1/requests/new)" in shown
    assert f"]({PAGES}catalogue/deid-visits)" in shown
    assert "](/hub/home)" in notebook.cells[0].source
    assert "s3://outbox/study-1/alice/" in shown
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert "get_object(Bucket='deid-visits', Key='data.parquet')" in code[0].source
    assert "crosstab(df, 'sido', 'sex')" in code[1].source  # two kept text columns
    assert "submit_export" not in "".join(c.source for c in code)  # never by "Run all"
    assert notebook.metadata["safezone"] == {"welcome": True, "language": language,
                                             "project": "study-1"}
    if language == "en":
        assert not HANGUL.search(json.dumps(notebook, ensure_ascii=False))
    else:
        assert HANGUL.search(notebook.cells[0].source)


def test_unknown_language_is_korean_and_the_base_url_is_followed():
    notebook = welcome.build(welcome.gather(environment(JUPYTERHUB_BASE_URL="/zone/"),
                                            control_plane), "fr")
    assert notebook.metadata["safezone"]["language"] == "ko"
    assert "](/zone/services/safezone/pages/)" in notebook.cells[0].source
    assert "](/zone/hub/home)" in notebook.cells[0].source


def test_without_the_control_plane_it_still_names_project_and_datasets():
    def away(path: str):
        raise httpx.ConnectError("refused")

    notebook = welcome.build(welcome.gather(environment(), away), "en")
    shown = text_of(notebook)
    assert "`study-1`" in shown and "`deid-visits`" in shown
    assert f"[your Safezone home page]({PAGES})" in shown  # where the expiry is
    assert f"[data catalogue]({PAGES}catalogue)" in shown  # where the dictionary is
    assert "get_object(Bucket='deid-visits'" in shown
    assert not HANGUL.search(shown)


def test_a_project_without_datasets_gets_a_cell_that_still_runs():
    notebook = welcome.build(welcome.gather(environment(SAFEZONE_DATASETS="[]"),
                                            control_plane), "en")
    code = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    assert len(code) == 1 and "SAFEZONE_DATASETS" in code[0]
    assert "No dataset is attached" in text_of(notebook)


def test_written_read_only_replacing_what_stood_there(tmp_path):
    precious = tmp_path / "analysis.ipynb"
    precious.write_text("mine")
    (tmp_path / welcome.WELCOME).symlink_to(precious)  # planted: must not be followed
    path = welcome.write(tmp_path, welcome.build(welcome.gather(environment()), "en"))
    assert not path.is_symlink()
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert precious.read_text() == "mine"
    nbformat.validate(nbformat.read(path, as_version=4))
    path.chmod(0o644)  # the researcher's kernel can do this; the next start rewrites it
    path.write_text("tampered")
    welcome.write(tmp_path, welcome.build(welcome.gather(environment()), "ko"))
    assert HANGUL.search(path.read_text())
    assert stat.S_IMODE(path.stat().st_mode) == 0o444


@pytest.mark.parametrize("table", [welcome.TEXT, hub_pages.TEXT], ids=["welcome", "hub"])
def test_every_string_has_both_languages_and_english_has_no_korean(table):
    assert set(table["ko"]) == set(table["en"])
    for key, english in table["en"].items():
        assert not HANGUL.search(english), key
        assert HANGUL.search(table["ko"][key]) or not re.search("[a-z]{3}", english), key
        assert re.findall(r"{(\w+)}", english) == re.findall(r"{(\w+)}", table["ko"][key]) \
            or sorted(re.findall(r"{(\w+)}", english)) == sorted(
                re.findall(r"{(\w+)}", table["ko"][key])), key


# -- the notebook server's configuration -------------------------------------------------

SERVER_CONFIG = REPO_ROOT / "images" / "notebook" / "jupyter"


def server_config(monkeypatch, language: str | None):
    if language is None:
        monkeypatch.delenv("SAFEZONE_LANGUAGE", raising=False)
    else:
        monkeypatch.setenv("SAFEZONE_LANGUAGE", language)
    return PyFileConfigLoader("jupyter_server_config.py", path=str(SERVER_CONFIG)).load_config()


@pytest.mark.parametrize(("language", "locale"), [
    ("ko", "ko_KR"), ("en", "en"), (None, "ko_KR"), ("../../etc", "ko_KR")])
def test_server_config_picks_the_lab_language(monkeypatch, language, locale):
    config = server_config(monkeypatch, language)
    settings = Path(config.LabApp.app_settings_dir)
    assert settings.parent == SERVER_CONFIG / "lab-settings"  # read-only, beside the config
    overrides = json.loads((settings / "overrides.json").read_text())
    assert overrides["@jupyterlab/translation-extension:plugin"]["locale"] == locale


def test_server_config_turns_news_off(monkeypatch):
    config = server_config(monkeypatch, "en")
    assert config.LabApp.news_url is None
    defaults = json.loads((SERVER_CONFIG / "labconfig" / "default_setting_overrides.json")
                          .read_text())
    notification = defaults["@jupyterlab/apputils-extension:notification"]
    assert notification == {"fetchNews": "false", "checkForUpdates": False}
    page = json.loads((SERVER_CONFIG / "labconfig" / "page_config.json").read_text())
    assert page["disabledExtensions"]["@jupyterlab/apputils-extension:announcements"]


def test_korean_language_pack_is_installed():
    from jupyterlab_server.translation_utils import get_language_packs

    packs, message = get_language_packs("en")
    assert "ko_KR" in packs, message


# -- the hub's pages ----------------------------------------------------------------------

def hub_templates(monkeypatch) -> Environment:
    """The hub's Jinja environment as JupyterHub builds it from the configuration."""
    from jupyterhub._data import DATA_FILES_PATH

    config = load(monkeypatch, SAFEZONE_MODE="local")
    default = os.path.join(DATA_FILES_PATH, "templates")
    extensions = config.JupyterHub.jinja_environment_options.get_value({})["extensions"]
    loader = ChoiceLoader([PrefixLoader({"templates": FileSystemLoader([default])}, "/"),
                           FileSystemLoader(config.JupyterHub.template_paths)])
    return Environment(loader=loader, autoescape=True, extensions=extensions)


def render(env: Environment, name: str, **ns) -> str:
    user = SimpleNamespace(name="bob", json_escaped_name="bob", spawner=SimpleNamespace(
        options_form=True))
    return env.get_template(name).render(
        base_url="/hub/", prefix="/", user=user, static_url=lambda *a, **k: "/static/x",
        login_url="/hub/login", logout_url="/hub/logout", parsed_scopes=set(), services=[],
        xsrf="x", xsrf_token="x", url="/hub/spawn/bob", **ns)


@pytest.mark.parametrize(("language", "words", "absent"), [
    ("en", ["Safezone home", "Data catalogue", "Log out"], "로그아웃"),
    ("ko", ["안심구역 홈", "데이터 카탈로그", "로그아웃"], "Log out")])
def test_hub_templates_carry_the_nav_in_the_request_language(monkeypatch, language, words,
                                                            absent):
    env = hub_templates(monkeypatch)
    token = hub_pages.LANGUAGE.set(language)
    try:
        page = render(env, "spawn.html", spawner_options_form='<select name="project">')
        empty = render(env, "spawn.html",
                       spawner_options_form=f"<div {hub_pages.NO_PROJECT_MARK}></div>")
    finally:
        hub_pages.LANGUAGE.reset(token)
    for html in (page, empty):
        assert f'href="{PAGES}"' in html and f'href="{PAGES}catalogue"' in html
        assert 'href="/hub/logout"' in html and 'href="/hub/home"' in html
        for word in words:
            assert word in html, word
        assert absent not in html
    assert '<button type="submit"' in page
    assert '<button type="submit"' not in empty and 'id="sz-no-project"' in empty
    for path in ("catalogue", "apply", "applications"):
        assert f'href="{PAGES}{path}"' in empty


def test_a_refused_start_shows_the_spawners_page_not_the_bare_error(monkeypatch):
    env = hub_templates(monkeypatch)
    html = render(env, "spawn.html", spawner_options_form='<select name="project">',
                  error_message="HTTP 403: Forbidden (no)",
                  html_error_message='no <a href="/services/safezone/pages/apply">apply</a>')
    assert 'no <a href="/services/safezone/pages/apply">apply</a>' in html
    assert "HTTP 403" not in html
    plain = render(env, "spawn.html", spawner_options_form=f"<div {hub_pages.NO_PROJECT_MARK}>",
                   error_message="HTTP 400: <b>x</b>")
    assert "HTTP 400: &lt;b&gt;x&lt;/b&gt;" in plain


def test_the_request_language_follows_the_pages_cookie_then_the_browser():
    def request(**headers: str) -> HTTPServerRequest:
        return HTTPServerRequest(start_line=RequestStartLine("GET", "/hub/home", "HTTP/1.1"),
                                 headers=HTTPHeaders({"Host": "hub", **headers}))

    assert hub_pages.request_language(request(Cookie="safezone-lang=en",
                                              **{"Accept-Language": "ko"})) == "en"
    assert hub_pages.request_language(request(**{"Accept-Language": "en-US,en"})) == "en"
    assert hub_pages.request_language(request()) == "ko"
    assert hub_pages.request_language(None) == "ko"
    hub_pages.LanguageNote(request(Cookie="safezone-lang=en"))
    assert hub_pages.LANGUAGE.get() == "en"
    hub_pages.LanguageNote(request())
    assert hub_pages.LANGUAGE.get() == "ko"


def test_hub_config_opens_the_welcome_notebook(monkeypatch):
    config = load(monkeypatch, SAFEZONE_MODE="local")
    assert config.Spawner.default_url == f"/lab/tree/{welcome.WELCOME}"
    assert config.JupyterHub.template_paths == [str(REPO_ROOT / "hub_config" / "templates")]


# -- for real: the hub, a sandboxed server, MinIO, the control plane ----------------------

VISITS_RECIPE = """
version: 1
k: 5
columns:
  sido: {technique: keep, role: quasi_identifier}
  sex: {technique: keep, role: quasi_identifier}
  visits: {technique: topcode, at: 20}
catalogue:
  title: {ko: 방문 기록 시험 데이터, en: Test visit records}
  description: {ko: 시도와 성별로 본 방문 횟수, en: Visits by province and sex}
  keywords: {ko: [방문], en: [visits]}
  publisher: {ko: 시험 기관, en: Test institution}
  temporal: {start: "2024-01-01", end: "2024-12-31"}
  accrual_periodicity: annual
  licence: {title: {ko: 안심구역 이용 약관, en: Safezone terms of use}}
  columns:
    sido: {description: {ko: 거주 시도, en: province of residence}}
    sex: {description: {ko: 성별, en: sex}}
    visits: {description: {ko: 연간 방문 횟수, en: visits in the year}}
"""
PROVINCES = ("서울", "부산", "대구", "인천")
VISITS_BODY = ("sido,sex,visits\n" + "".join(
    f"{PROVINCES[i % 4]},{'MF'[i % 2]},{i % 25}\n" for i in range(400))).encode()


@pytest.fixture(scope="module")
def study(stack):
    """A project with one published dataset (text columns to count by) and alice in it."""
    project, dataset = unique("welc"), unique("deid-visits")
    admin = stack.api("admin")
    admin.post("/api/projects", json={"name": project, "title": "Visit study"}
               ).raise_for_status()
    attested_dataset(stack.zone, dataset, VISITS_BODY, VISITS_RECIPE)
    admin.post(f"/api/datasets/{dataset}/publish").raise_for_status()
    admin.post(f"/api/projects/{project}/datasets", json={"dataset": dataset}
               ).raise_for_status()
    expires = stack.zone.now() + timedelta(days=20)
    admin.post(f"/api/projects/{project}/members/alice/approve",
               json={"expires_at": expires.isoformat()}).raise_for_status()
    return SimpleNamespace(project=project, dataset=dataset, expires=expires,
                           workspace=stack.state_dir / "workspaces" / "alice" / project)


def wait_ready(stack, user: str, name: str) -> None:
    hub = stack.hub_api(user)
    wait_until(lambda: hub.get(f"/users/{user}").json()["servers"].get(name, {}).get("ready"),
               timeout=120, interval=0.3)


def remove_server(stack, user: str, name: str) -> None:
    hub = stack.hub_api(user)
    hub.request("DELETE", f"/users/{user}/servers/{name}", json={"remove": True})
    wait_until(lambda: name not in hub.get(f"/users/{user}").json()["servers"], timeout=60,
               interval=0.3)


def server_client(stack, name: str) -> httpx.Client:
    return httpx.Client(base_url=f"{stack.hub_url}/user/alice/{name}/", timeout=60,
                        headers={"Authorization": f"token {stack.tokens['alice']}"})


def lab_defaults(server: httpx.Client, plugin: str) -> dict:
    body = server.get(f"lab/api/settings/{plugin}").json()
    return {key: spec.get("default") for key, spec in body["schema"]["properties"].items()}


def test_browser_spawn_in_english_opens_the_welcome_and_its_cells_run(stack, study):
    """alice chose English on the Safezone pages (their cookie) and starts her notebook
    from the hub's spawn form: the server gets SAFEZONE_LANGUAGE=en, the Lab is English
    without news, and the workspace opens on an English, read-only welcome notebook
    whose cells load the dataset and save a table into her outbox."""
    from .support import server_environment

    name = "welcome-en"
    browser = hub_login(stack, "alice")
    browser.cookies.set("safezone-lang", "en", domain="127.0.0.1", path="/")
    form = browser.get(f"/hub/spawn/alice/{name}")
    assert form.status_code == 200
    assert f'href="{PAGES}"' in form.text and "Safezone home" in form.text
    assert 'for="sz-project">Project<' in form.text and "프로젝트" not in form.text
    started = browser.post(f"/hub/spawn/alice/{name}", data={
        "project": study.project, "_xsrf": browser.cookies.get("_xsrf")})
    assert started.status_code in (200, 302), started.text[:500]
    try:
        pending = browser.get(f"/hub/spawn-pending/alice/{name}")
        if pending.status_code == 200:  # still starting: the pending page has the nav too
            assert f'href="{PAGES}catalogue"' in pending.text
        wait_ready(stack, "alice", name)
        assert server_environment("alice", name)["SAFEZONE_LANGUAGE"] == "en"

        path = study.workspace / welcome.WELCOME
        assert stat.S_IMODE(path.stat().st_mode) == 0o444
        assert path.stat().st_uid == pwd.getpwnam("sz-alice").pw_uid
        notebook = nbformat.read(path, as_version=4)
        shown = text_of(notebook)
        assert notebook.metadata["safezone"]["language"] == "en"
        assert f"`{study.project}` — Visit study" in shown
        assert "Test visit records" in shown and "province of residence" in shown
        day = study.expires.strftime("%B ") + str(study.expires.day)
        assert f"Your access ends:** {day}, {study.expires.year}" in shown
        assert f"]({PAGES})" in notebook.cells[0].source
        assert not HANGUL.search(shown)

        server = server_client(stack, name)
        opened = server.get("", follow_redirects=False)  # the workspace opens on it
        assert opened.status_code == 302
        assert opened.headers["location"].partition("?")[0].endswith(
            f"/alice/{name}/lab/tree/{welcome.WELCOME}")
        locale = lab_defaults(server, "@jupyterlab/translation-extension:plugin")["locale"]
        assert locale == "en"
        news = lab_defaults(server, "@jupyterlab/apputils-extension:notification")
        assert news["fetchNews"] == "false" and news["checkForUpdates"] is False
        assert "ko_KR" in server.get("lab/api/translations/").json()["data"]

        # read-only through the server: shown so, and no save, rename or delete
        before = path.read_bytes()
        model = server.get(f"api/contents/{welcome.WELCOME}").json()
        assert model["writable"] is False
        refused = [server.put(f"api/contents/{welcome.WELCOME}",
                              json={"type": "notebook", "content": model["content"]}),
                   server.patch(f"api/contents/{welcome.WELCOME}", json={"path": "x.ipynb"}),
                   server.delete(f"api/contents/{welcome.WELCOME}")]
        assert [r.status_code for r in refused] == [403, 403, 403]
        assert "read-only" in refused[0].json()["message"]
        assert path.read_bytes() == before
        copy = server.put("api/contents/mine.ipynb",
                          json={"type": "notebook", "content": model["content"]})
        assert copy.status_code in (200, 201), copy.text  # a copy is the researcher's

        # every code cell runs in her sandboxed kernel, on MinIO with the session's keys
        kernel = KernelSession(str(server.base_url), stack.tokens["alice"], timeout=120)
        try:
            for cell in notebook.cells:
                if cell.cell_type == "code":
                    kernel.run(cell.source)
            rows = kernel.run("print(len(df), sorted(df.columns))").strip()
        finally:
            kernel.close()
        assert rows == "400 ['sex', 'sido', 'visits']"
        saved = stack.minio.root_s3().get_object(
            Bucket="outbox", Key=f"{study.project}/alice/{welcome.SAMPLE_TABLE}")
        assert saved["Body"].read().decode().startswith("sido,sex,count")
    finally:
        remove_server(stack, "alice", name)


def test_api_spawn_in_korean_rewrites_the_welcome_and_chooses_the_korean_pack(stack, study):
    """A start with no cookie falls back to Accept-Language (here Korean); the welcome
    notebook a kernel had overwritten is written anew, read-only, in Korean."""
    from .support import server_environment

    name = "welcome-ko"
    path = study.workspace / welcome.WELCOME
    if path.exists():  # as the researcher's kernel could: make it writable, change it
        path.chmod(0o644)
        path.write_text("tampered")
    hub = stack.hub_api("alice")
    started = hub.post(f"/users/alice/servers/{name}", json={"project": study.project},
                       headers={"Accept-Language": "ko-KR,ko;q=0.9,en;q=0.5"})
    assert started.status_code in (201, 202), started.text
    try:
        wait_ready(stack, "alice", name)
        assert server_environment("alice", name)["SAFEZONE_LANGUAGE"] == "ko"
        notebook = nbformat.read(path, as_version=4)
        assert notebook.metadata["safezone"]["language"] == "ko"
        assert "방문 기록 시험 데이터" in text_of(notebook) and "거주 시도" in text_of(notebook)
        assert stat.S_IMODE(path.stat().st_mode) == 0o444
        server = server_client(stack, name)
        locale = lab_defaults(server, "@jupyterlab/translation-extension:plugin")["locale"]
        assert locale == "ko_KR"
        korean = server.get("lab/api/translations/ko_KR").json()
        assert korean["data"] and not korean["message"]
    finally:
        remove_server(stack, "alice", name)


@pytest.mark.parametrize(("language", "words"), [
    ("en", ["Safezone home", "Data catalogue", "Log out"]),
    ("ko", ["안심구역 홈", "데이터 카탈로그", "로그아웃"])])
def test_hub_pages_carry_the_nav(stack, language, words):
    browser = hub_login(stack, "alice")
    browser.cookies.set("safezone-lang", language, domain="127.0.0.1", path="/")
    for page in ("/hub/home", "/hub/token"):
        shown = browser.get(page)
        assert shown.status_code == 200, page
        assert f'href="{PAGES}"' in shown.text and f'href="{PAGES}catalogue"' in shown.text
        assert 'href="/hub/logout"' in shown.text
        for word in words:
            assert word in shown.text, (page, word)


def grants_of(stack, user: str) -> int:
    with stack.zone.sessions() as db:
        return len(db.scalars(select(SessionGrant).where(SessionGrant.user_name == user))
                   .all())


def test_a_person_without_a_project_is_shown_the_way_and_still_refused(stack):
    """grace (no approved project) sees where to find data and apply, with no Start button;
    a start posted anyway is still refused — on a page that leads to the catalogue."""
    browser = hub_login(stack, "grace")
    browser.cookies.set("safezone-lang", "en", domain="127.0.0.1", path="/")
    grants = grants_of(stack, "grace")
    page = browser.get("/hub/spawn")
    assert page.status_code == 200
    assert 'id="sz-no-project"' in page.text
    for path in ("catalogue", "apply", "applications", ""):
        assert f'href="{PAGES}{path}"' in page.text, path
    assert '<button type="submit"' not in page.text
    assert "approved project" in page.text and "apply" in page.text

    refused = browser.post("/hub/spawn/grace", data={"project": "",
                                                   "_xsrf": browser.cookies.get("_xsrf")})
    assert refused.status_code == 400
    assert "choose a project" in refused.text
    assert f'href="{PAGES}catalogue"' in refused.text  # the way on, even here
    forged = browser.post("/hub/spawn/grace", data={"project": "someone-elses",
                                                  "_xsrf": browser.cookies.get("_xsrf")})
    assert forged.status_code in (403, 404), forged.text[:300]
    assert f'href="{PAGES}catalogue"' in forged.text
    assert not stack.hub_api("grace").get("/users/grace").json()["servers"]
    assert grants_of(stack, "grace") == grants


def test_welcome_cells_run_on_the_demo_data(local_zone):  # noqa: F811
    """On the zone `make run` starts: alice's welcome names the demo dataset with its
    dictionary, and every code cell runs in her sandboxed kernel on the demo data."""
    state, passwords, _ = local_zone
    token, api = alice_on_the_hub(passwords)
    started = api.post("/users/alice/server", json={"project": "demo-health"},
                       headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert started.status_code in (201, 202), started.text
    try:
        wait_until(lambda: api.get("/users/alice").json()["servers"].get("", {}).get("ready"),
                   timeout=120, interval=0.3)
        path = state / "workspaces" / "alice" / "demo-health" / welcome.WELCOME
        notebook = nbformat.read(path, as_version=4)
        shown = text_of(notebook)
        assert notebook.metadata["safezone"]["language"] == "en"
        assert "Synthetic health records 2024 (de-identified)" in shown
        assert "| `cost_krw` | string | yearly cost band (KRW) | generalised |" in shown
        kernel = KernelSession(f"{LOCAL_HUB}/user/alice/", token, timeout=300)
        try:
            for cell in notebook.cells:
                if cell.cell_type == "code":
                    kernel.run(cell.source)
            assert kernel.run("print(len(df) > 1000, int(table['count'].sum()) == len(df))"
                              ).strip() == "True True"
        finally:
            kernel.close()
    finally:
        api.delete("/users/alice/server")
        wait_until(lambda: not api.get("/users/alice").json()["servers"], timeout=60)
