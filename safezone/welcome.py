"""The welcome notebook a workspace opens on: the project, its datasets and how results
leave, in the researcher's language (``SAFEZONE_LANGUAGE``: ``ko`` or ``en``).

Written by the notebook server at each start (``safezone.notebook_server``) into the
workspace as ``Welcome.ipynb``, mode 0444, and refused to saves, renames and deletes by
the contents manager: the researcher reads and runs it, and keeps a copy under another
name. Its facts come from the server's environment (the session grant) and from the
control plane, called with the server's own token: ``/api/me`` (the membership's end),
``/api/projects`` (the title) and ``/api/catalogue`` (the data dictionaries). Without
the control plane it still names the project and datasets, and says where to look.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

WELCOME = "Welcome.ipynb"
LANGUAGES = ("ko", "en")
DEFAULT_LANGUAGE = "ko"
SAMPLE_TABLE = "tables/first-table.csv"
# Arrow types of text columns (a table of counts by two of them is the first example)
TEXT_TYPES = ("string", "large_string", "utf8", "large_utf8", "dictionary")
TECHNIQUE_EN = {"delete": "deleted", "pseudonymise": "pseudonymised (HMAC)",
                "generalise": "generalised", "topcode": "top-coded",
                "bottomcode": "bottom-coded", "mask": "masked",
                "aggregate": "aggregated (class mean)", "keep": "kept as is"}

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "# Welcome to the Safezone",
        "nav": "[Safezone home]({pages}) · [Data catalogue]({pages}catalogue) · "
               "[Request an export]({request}) · [Notebooks]({hub}home)",
        "read_only": "This notebook is read-only: it is written anew each time your server "
                     "starts. Run its cells here; to keep your own version, use **File › "
                     "Save Notebook As…**. **File › Hub Control Panel** leads back to the hub.",
        "project_heading": "## Your project",
        "project": "**Project:** `{project}`{title}",
        "access_until": "**Your access ends:** {date}",
        "access_unknown": "**Your access ends:** see [your Safezone home page]({pages})",
        "session_until": "**This server's data keys end:** {time} (start the server again "
                         "from the hub for new keys)",
        "workspace": "**Your files:** this folder is your project workspace. Files here "
                     "never leave the zone; results leave only from your **outbox** "
                     "(`{outbox}`) through a reviewed export request.",
        "datasets_heading": "## Datasets you may read",
        "no_datasets": "No dataset is attached to this project yet: ask the project's "
                       "administrator, or see the [data catalogue]({pages}catalogue).",
        "no_catalogue": "The catalogue could not be reached as this server started: the "
                        "descriptions and data dictionaries are in the "
                        "[data catalogue]({pages}catalogue).",
        "location": "**Where:** `{uri}`",
        "entry": "[Its catalogue entry]({url})",
        "period": "**Period:** {start} – {end}",
        "rows": "**Rows:** {rows}",
        "kl": "**Achieved:** {achieved}",
        "licence": "**Terms of use:** {licence}",
        "dictionary": "**Data dictionary**",
        "keys_comment": "this session's keys and address come from its grant",
        "evidence_comment": "the evidence stays in the zone",
        "datasets_comment": "this session's datasets",
        "columns": "| Column | Type | Description | De-identification |",
        "load_heading": "## 1. Load the data",
        "load": "The next cell reads `{name}` into a pandas table, `df`. Run it with "
                "**Shift+Enter**.",
        "load_others": "The other datasets are read the same way, with their own bucket "
                       "name: {names}.",
        "load_none": "The next cell lists what this session may read.",
        "table_heading": "## 2. Make a table and save it in your outbox",
        "table": "`crosstab` counts the rows of each cell (with `values=\"column\"` it "
                 "also sums a numeric column, and keeps the evidence the reviewers' checks "
                 "need); `save_table` writes the table, and any evidence, into your outbox. "
                 "Evidence stays in the zone.",
        "table_none": "`crosstab(df, column_a, column_b)` counts the rows of each cell, and "
                      "`save_table(table, \"tables/name.csv\", evidence=evidence)` writes "
                      "it into your outbox (both from `safezone.notebook`).",
        "export_heading": "## 3. Ask for an export",
        "export": "1. Save each result into your outbox, as above. Only files in the "
                  "outbox can leave.\n"
                  "2. Open [Request an export]({request}) on the Safezone pages, choose "
                  "the files and say why each is safe to release; the page can run the "
                  "checks first, as a dry run. Or, from a notebook:\n\n"
                  "   ```python\n"
                  "   from safezone.notebook import dry_run, submit_export\n"
                  "   dry_run([\"{table}\"])  # the checks now, no request: fix, then submit\n"
                  "   submit_export([\"{table}\"], title=\"Counts by {a} and {b}\",\n"
                  "                 justification=\"aggregate counts for the paper\")\n"
                  "   ```\n"
                  "3. The automated checks run, then independent reviewers decide. Follow "
                  "your request, and download the released files, on "
                  "[your Safezone home page]({pages}).",
    },
    "ko": {
        "title": "# 안심구역에 오신 것을 환영합니다",
        "nav": "[안심구역 홈]({pages}) · [데이터 카탈로그]({pages}catalogue) · "
               "[반출 요청]({request}) · [노트북]({hub}home)",
        "read_only": "이 노트북은 읽기 전용이며 서버가 시작될 때마다 새로 만들어집니다. "
                     "여기에서 셀을 실행할 수 있고, 내 사본을 두려면 **파일 › 다른 이름으로 "
                     "노트북 저장…**을 사용하세요. **파일 › 허브 제어판**으로 허브에 "
                     "돌아갈 수 있습니다.",
        "project_heading": "## 내 프로젝트",
        "project": "**프로젝트:** `{project}`{title}",
        "access_until": "**이용 종료일:** {date}",
        "access_unknown": "**이용 종료일:** [안심구역 홈]({pages})에서 확인하세요",
        "session_until": "**이 서버의 데이터 접근 키 만료:** {time} (새 키가 필요하면 허브에서 "
                         "서버를 다시 시작하세요)",
        "workspace": "**내 파일:** 이 폴더는 프로젝트 작업 공간입니다. 여기에 있는 파일은 "
                     "안심구역 밖으로 나가지 않습니다. 결과물은 **반출함**"
                     "(`{outbox}`)에서 심사를 거친 반출 요청으로만 나갑니다.",
        "datasets_heading": "## 이용할 수 있는 데이터셋",
        "no_datasets": "이 프로젝트에 연결된 데이터셋이 아직 없습니다. 프로젝트 관리자에게 "
                       "문의하거나 [데이터 카탈로그]({pages}catalogue)를 보세요.",
        "no_catalogue": "서버가 시작될 때 카탈로그에 연결하지 못했습니다. 설명과 데이터 "
                        "사전은 [데이터 카탈로그]({pages}catalogue)에 있습니다.",
        "location": "**위치:** `{uri}`",
        "entry": "[카탈로그 항목 보기]({url})",
        "period": "**기간:** {start} – {end}",
        "rows": "**행 수:** {rows}",
        "kl": "**달성 수준:** {achieved}",
        "licence": "**이용 조건:** {licence}",
        "dictionary": "**데이터 사전**",
        "keys_comment": "이 세션의 접근 키와 주소는 세션 권한에서 받습니다",
        "evidence_comment": "근거 자료는 안심구역 안에 남습니다",
        "datasets_comment": "이 세션이 읽을 수 있는 데이터셋",
        "columns": "| 열 | 유형 | 설명 | 비식별 처리 |",
        "load_heading": "## 1. 데이터 불러오기",
        "load": "다음 셀은 `{name}` 데이터셋을 pandas 표 `df`로 읽습니다. "
                "**Shift+Enter**로 실행하세요.",
        "load_others": "다른 데이터셋도 버킷 이름만 바꾸어 같은 방법으로 읽습니다: {names}.",
        "load_none": "다음 셀은 이 세션이 읽을 수 있는 데이터를 보여 줍니다.",
        "table_heading": "## 2. 표를 만들어 반출함에 저장하기",
        "table": "`crosstab`은 칸마다 행 수를 셉니다(`values=\"열\"`을 주면 숫자 열의 합계도 "
                 "내고, 심사 점검에 필요한 근거 자료를 함께 만듭니다). `save_table`은 표와 "
                 "근거 자료를 반출함에 저장합니다. 근거 자료는 안심구역 밖으로 나가지 "
                 "않습니다.",
        "table_none": "`crosstab(df, 열_a, 열_b)`은 칸마다 행 수를 세고, "
                      "`save_table(table, \"tables/이름.csv\", evidence=evidence)`는 표를 "
                      "반출함에 저장합니다(둘 다 `safezone.notebook`에 있습니다).",
        "export_heading": "## 3. 반출 요청하기",
        "export": "1. 위와 같이 결과물을 반출함에 저장합니다. 반출함에 있는 파일만 나갈 수 "
                  "있습니다.\n"
                  "2. 안심구역 페이지의 [반출 요청]({request})에서 파일을 고르고, 각 파일을 "
                  "내보내도 안전한 이유를 적습니다. 제출 전에 같은 점검을 미리 실행해 볼 수 "
                  "있습니다. 노트북에서 요청할 수도 있습니다.\n\n"
                  "   ```python\n"
                  "   from safezone.notebook import dry_run, submit_export\n"
                  "   dry_run([\"{table}\"])  # 요청 없이 점검만 먼저: 고친 뒤 제출\n"
                  "   submit_export([\"{table}\"], title=\"{a}·{b}별 빈도\",\n"
                  "                 justification=\"논문에 실을 집계표\")\n"
                  "   ```\n"
                  "3. 자동 점검을 거쳐 독립된 심사자가 결정합니다. 요청 상태 확인과 반출된 "
                  "파일 내려받기는 [안심구역 홈]({pages})에서 합니다.",
    },
}


@dataclass
class Dataset:
    """A dataset of the grant (``name``, ``uri``) and its catalogue entry, if known."""

    name: str
    uri: str
    entry: dict[str, Any] | None = None

    @property
    def bucket(self) -> str:
        return self.uri.removeprefix("s3://").partition("/")[0]

    @property
    def key(self) -> str:
        """The de-identified table the pipeline wrote (``safezone.deid.pipeline``)."""
        return self.uri.removeprefix("s3://").partition("/")[2] + "data.parquet"


@dataclass
class Welcome:
    """What the welcome notebook says."""

    project: str
    user: str
    outbox: str
    datasets: list[Dataset] = field(default_factory=list)
    project_title: str = ""
    access_until: datetime | None = None
    session_until: datetime | None = None
    catalogue_read: bool = False
    base_url: str = "/"  # the hub's base URL: the pages are under services/safezone/pages/

    @property
    def pages(self) -> str:
        return f"{self.base_url}services/safezone/pages/"


def language_of(value: str | None) -> str:
    return value if value in LANGUAGES else DEFAULT_LANGUAGE


# -- the facts: environment and control plane ------------------------------------------

Fetch = Callable[[str], Any]


def api_fetcher(env: Mapping[str, str], timeout: float = 5.0) -> Fetch:
    """GET a control-plane path with the server's own hub token."""
    import httpx

    base = env.get("SAFEZONE_API_URL", "").rstrip("/")
    headers = {"Authorization": f"token {env.get('JUPYTERHUB_API_TOKEN', '')}"}

    def fetch(path: str) -> Any:
        response = httpx.get(base + path, headers=headers, timeout=timeout)
        response.raise_for_status()
        return response.json()

    return fetch


def _moment(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except (TypeError, ValueError):
        return None


def gather(env: Mapping[str, str], fetch: Fetch | None = None) -> Welcome:
    """The welcome's facts from the session's environment and, where it answers, the
    control plane (each call may fail on its own: what it would add is then left out)."""
    project, user = env.get("SAFEZONE_PROJECT", ""), env.get("SAFEZONE_USER", "")
    try:
        listed = json.loads(env.get("SAFEZONE_DATASETS") or "[]")
    except ValueError:
        listed = []
    welcome = Welcome(
        project=project, user=user, outbox=env.get("SAFEZONE_OUTBOX_URI", ""),
        datasets=[Dataset(d["name"], d["uri"]) for d in listed
                  if isinstance(d, dict) and "name" in d and "uri" in d],
        session_until=_moment(env.get("SAFEZONE_GRANT_EXPIRES")),
        base_url=env.get("JUPYTERHUB_BASE_URL", "/") or "/")
    if fetch is None:
        return welcome
    try:
        mine = fetch("/api/me").get("memberships", [])
        welcome.access_until = next((_moment(m.get("expires_at")) for m in mine
                                     if m.get("project") == project), None)
    except Exception:  # the control plane is away: the pages say it
        pass
    try:
        titles = {p.get("name"): p.get("title") for p in fetch("/api/projects")}
        welcome.project_title = titles.get(project) or ""
    except Exception:
        pass
    try:
        entries = {e["name"]: e for e in fetch("/api/catalogue")}
        for dataset in welcome.datasets:
            dataset.entry = entries.get(dataset.name)
        welcome.catalogue_read = True
    except Exception:
        pass
    return welcome


# -- the notebook ------------------------------------------------------------------------

def _pick(value: Any, language: str) -> str:
    """Catalogue text in ``language``: ``{"ko": …, "en": …}`` or untagged text."""
    if isinstance(value, dict):
        chosen = value.get(language) or value.get(None) or next(
            (v for v in value.values() if v), "")
        return _pick(chosen, language)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def _md(text: str) -> str:
    """Text from the catalogue, shown as itself in Markdown (one line, nothing active)."""
    text = " ".join(str(text).split())
    for char in "\\`*_[]<>|#!":
        text = text.replace(char, "\\" + char)
    return text


def _code_name(text: str) -> str:
    """A name shown as code in Markdown: no backticks, line breaks or table pipes, so a
    column or dataset name cannot end the code span and write Markdown of its own."""
    return " ".join(str(text).replace("`", "'").replace("|", "/").split())


def _day(moment: datetime, language: str) -> str:
    from babel.dates import format_date

    return format_date(moment, "long", locale=language)


def _time(moment: datetime, language: str) -> str:
    from babel.dates import format_datetime

    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return format_datetime(moment, "medium", tzinfo=UTC, locale=language) + " UTC"


def table_columns(dataset: Dataset) -> tuple[str, str] | None:
    """Two text columns to count by (kept ones first, then generalised ones), if any."""
    rows = (dataset.entry or {}).get("data_dictionary") or []
    ranked = {"keep": 0, "generalise": 1}
    found = [(ranked[r.get("technique")], n, r["name"]) for n, r in enumerate(rows)
             if r.get("technique") in ranked
             and str(r.get("type") or "").startswith(TEXT_TYPES)]
    names = [name for _, _, name in sorted(found)]
    return (names[0], names[1]) if len(names) >= 2 else None


def _dataset_markdown(dataset: Dataset, words: dict[str, str], language: str,
                      pages: str) -> str:
    entry = dataset.entry or {}
    title = _pick(entry.get("title"), language)
    lines = [f"### {_md(title)} (`{_code_name(dataset.name)}`)" if title
             else f"### `{_code_name(dataset.name)}`"]
    description = _pick(entry.get("description"), language)
    if description:
        lines += ["", _md(description)]
    facts = [words["location"].format(uri=_code_name(dataset.uri))]
    temporal = entry.get("temporal") or {}
    if temporal.get("start") or temporal.get("end"):
        facts.append(words["period"].format(start=_md(temporal.get("start") or "…"),
                                            end=_md(temporal.get("end") or "…")))
    if entry.get("rows") is not None:
        facts.append(words["rows"].format(rows=f"{entry['rows']:,}"))
    if entry.get("k_achieved") is not None:
        achieved = f"k = {entry['k_achieved']}" + (
            f", l = {entry['l_achieved']}" if entry.get("l_achieved") is not None else "")
        facts.append(words["kl"].format(achieved=achieved))
    licence = _pick((entry.get("licence") or {}).get("title"), language)
    if licence:
        facts.append(words["licence"].format(licence=_md(licence)))
    facts.append(words["entry"].format(url=f"{pages}catalogue/{quote(dataset.name)}"))
    lines += ["", *[f"- {fact}" for fact in facts]]
    dictionary = entry.get("data_dictionary") or []
    if dictionary:
        lines += ["", words["dictionary"], "", words["columns"], "|---|---|---|---|"]
        for row in dictionary:
            technique = row.get("technique") or ""
            shown = (row.get("technique_ko") if language == "ko" else
                     TECHNIQUE_EN.get(technique)) or technique
            lines.append(f"| `{_code_name(row.get('name', ''))}` | {_md(row.get('type') or '')}"
                         f" | {_md(_pick(row.get('description'), language))} | {_md(shown)} |")
    return "\n".join(lines)


def load_code(dataset: Dataset | None, words: dict[str, str]) -> str:
    """The first code cell: the dataset as a pandas table (or what may be read)."""
    if dataset is None:
        return ("import json, os\n\n"
                f"json.loads(os.environ[\"SAFEZONE_DATASETS\"])  # {words['datasets_comment']}")
    return ("import io\n\n"
            "import boto3\n"
            "import pandas as pd\n\n"
            f"s3 = boto3.client(\"s3\")  # {words['keys_comment']}\n"
            f"body = s3.get_object(Bucket={dataset.bucket!r}, Key={dataset.key!r})"
            "[\"Body\"].read()\n"
            "df = pd.read_parquet(io.BytesIO(body))\n"
            "df.head()")


def table_code(columns: tuple[str, str], words: dict[str, str]) -> str:
    a, b = columns
    return ("from safezone.notebook import crosstab, save_table\n\n"
            f"table, evidence = crosstab(df, {a!r}, {b!r})  # {words['evidence_comment']}\n"
            f"save_table(table, {SAMPLE_TABLE!r}, evidence=evidence)\n"
            "table")


def build(welcome: Welcome, language: str) -> dict[str, Any]:
    """The welcome notebook (nbformat 4) in ``language``."""
    import nbformat.v4 as nbf

    language = language_of(language)
    words = TEXT[language]
    links = {"pages": welcome.pages, "hub": f"{welcome.base_url}hub/",
             "request": f"{welcome.pages}projects/{welcome.project}/requests/new"}
    title = f" — {_md(welcome.project_title)}" if welcome.project_title else ""
    about = [words["project"].format(project=_code_name(welcome.project), title=title),
             words["access_until"].format(date=_day(welcome.access_until, language))
             if welcome.access_until else words["access_unknown"].format(**links)]
    if welcome.session_until:
        about.append(words["session_until"].format(
            time=_time(welcome.session_until, language)))
    about.append(words["workspace"].format(outbox=_code_name(welcome.outbox)))
    datasets = [words["datasets_heading"]]
    if not welcome.datasets:
        datasets.append(words["no_datasets"].format(**links))
    elif not welcome.catalogue_read:
        datasets.append(words["no_catalogue"].format(**links))
    datasets += [_dataset_markdown(d, words, language, welcome.pages)
                 for d in welcome.datasets]
    first = welcome.datasets[0] if welcome.datasets else None
    load = [words["load_heading"], words["load"].format(name=_code_name(first.name))
            if first else words["load_none"]]
    if len(welcome.datasets) > 1:
        load.append(words["load_others"].format(names=", ".join(
            f"`{_code_name(d.bucket)}`" for d in welcome.datasets[1:])))
    columns = table_columns(first) if first else None
    cells = [
        nbf.new_markdown_cell("\n\n".join([words["title"], words["nav"].format(**links),
                                            words["read_only"]])),
        nbf.new_markdown_cell("\n\n".join([words["project_heading"],
                                            "\n".join(f"- {line}" for line in about)])),
        nbf.new_markdown_cell("\n\n".join(datasets)),
        nbf.new_markdown_cell("\n\n".join(load)),
        nbf.new_code_cell(load_code(first, words)),
        nbf.new_markdown_cell("\n\n".join([words["table_heading"],
                                            words["table"] if columns else words["table_none"]])),
    ]
    if columns:
        cells.append(nbf.new_code_cell(table_code(columns, words)))
    a, b = (_code_name(c) for c in columns or ("a", "b"))
    cells.append(nbf.new_markdown_cell("\n\n".join([words["export_heading"], words["export"]
                                                     .format(table=SAMPLE_TABLE, a=a, b=b,
                                                             **links)])))
    notebook = nbf.new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
        "safezone": {"welcome": True, "language": language, "project": welcome.project}})
    for number, cell in enumerate(notebook.cells):
        cell["id"] = f"welcome-{number}"
    return notebook


def write(root: Path, notebook: dict[str, Any]) -> Path:
    """Replace ``root/Welcome.ipynb`` with ``notebook``, mode 0444. Whatever stood there
    (an edited copy, a link the researcher planted) is removed first, never followed."""
    import nbformat

    path = root / WELCOME
    if path.is_symlink() or path.exists():
        path.unlink()  # a folder of that name stays, and the write below fails loudly
    text = nbformat.writes(nbformat.from_dict(notebook))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o444)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    path.chmod(0o444)  # whatever the umask
    return path


def install(root: Path, env: Mapping[str, str] | None = None,
            fetch: Fetch | None = None) -> Path:
    """What the notebook server does at start: gather, build in the session's language,
    write into the workspace."""
    env = os.environ if env is None else env
    if fetch is None and env.get("SAFEZONE_API_URL"):
        fetch = api_fetcher(env)
    welcome = gather(env, fetch)
    return write(root, build(welcome, language_of(env.get("SAFEZONE_LANGUAGE"))))
