"""The adequacy-review report of one run (적정성 검토 자료), Korean and English, as
Markdown and as a standalone HTML page rendered from it (raw HTML in values escaped)."""

from __future__ import annotations

import html
from collections import Counter
from typing import Any

import yaml
from markdown_it import MarkdownIt

TECHNIQUE_KO = {"delete": "삭제", "pseudonymise": "가명처리(HMAC)", "generalise": "범주화",
                "topcode": "상단코딩", "bottomcode": "하단코딩", "mask": "마스킹",
                "aggregate": "총계처리(평균)",
                "keep": "유지"}
TOP = 12
HTML_PAGE = """<!doctype html>
<html lang="ko"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, "Noto Sans CJK KR", sans-serif; max-width: 60rem;
       margin: 2rem auto; padding: 0 1rem; line-height: 1.5; color: #1b1f24; }}
table {{ border-collapse: collapse; margin: .5rem 0 1.5rem; }}
th, td {{ border: 1px solid #c8ccd1; padding: .25rem .6rem; }}
th {{ background: #f1f3f5; }} code {{ background: #f1f3f5; padding: 0 .2rem; }}
</style></head><body>
{body}</body></html>
"""


def _cell(value: object) -> str:
    """A value safe inside a Markdown table cell."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _distribution(counter: Counter) -> str:
    total = sum(counter.values()) or 1
    rows = [f"| {_cell(value)} | {count} | {count / total:.1%} |"
            for value, count in counter.most_common(TOP)]
    more = len(counter) - TOP
    tail = [f"| … {more} more / 외 {more}개 | | |"] if more > 0 else []
    return "\n".join(["| value / 값 | rows / 행 | share / 비율 |", "|---|---:|---:|", *rows,
                      *tail])


def render_markdown(attestation: dict[str, Any], recipe_columns: dict[str, dict[str, Any]],
           before: dict[str, Counter], after: dict[str, Counter]) -> str:
    """``before``/``after``: value counts of each generalised column before and after the
    suppression of small classes. Raw values never appear: the report is stored with the
    de-identified data."""
    a = attestation
    lines = [
        f"# 가명처리 결과 보고서 / De-identification report: {a['dataset']}",
        "",
        f"- 실행 / Run: {a['run_at']} by {a['run_by']} ({a['tool']})",
        f"- 입력 / Input: `{a['input']['bucket']}/{a['input']['key']}` "
        f"(SHA-256 `{a['input']['sha256'][:16]}…`, {a['input']['bytes']} bytes)",
        f"- 레시피 / Recipe SHA-256: `{a['recipe_sha256'][:16]}…`",
        f"- 행 / Rows: {a['rows_in']} → {a['rows_out']} "
        f"(억제 / suppressed {a['rows_suppressed']}, "
        f"{a['rows_suppressed'] / max(a['rows_in'], 1):.2%})",
        f"- k-익명성 / k-anonymity: required {a['k']}, achieved {a['k_achieved']} "
        f"over {a['classes']} classes on {', '.join(a['quasi_identifiers']) or '—'}",
        f"- l-다양성 / l-diversity: required {a['l']}, achieved {a['l_achieved']} "
        f"for {', '.join(a['sensitive']) or '—'}",
        f"- 식별자 점검 / Identifier scan of the output: {a['identifier_scan']}",
        "",
        "## 열별 처리 / What was done to each column",
        "",
        "| column / 열 | technique / 처리 | role / 역할 | detail |",
        "|---|---|---|---|",
    ]
    for name, spec in recipe_columns.items():
        detail = _cell(", ".join(f"{k}={v}" for k, v in spec.items()
                                 if k not in {"technique", "role"}))
        lines.append(f"| {_cell(name)} | {TECHNIQUE_KO[spec['technique']]} / {spec['technique']} | "
                     f"{spec.get('role', 'other')} | {detail} |")
    for name in before:
        lines += ["", f"## {name}: 범주화 후 억제 전 / generalised, before suppression", "",
                  _distribution(before[name]), "",
                  f"## {name}: 억제 후 / after suppression", "", _distribution(after[name])]
    return "\n".join(lines) + "\n"


def render_html(attestation: dict[str, Any], recipe_columns: dict[str, dict[str, Any]],
                before: dict[str, Counter], after: dict[str, Counter]) -> str:
    """The same report as one HTML page; HTML inside values is shown, never run."""
    markdown = render_markdown(attestation, recipe_columns, before, after)
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    title = html.escape(f"De-identification report: {attestation['dataset']}")
    return HTML_PAGE.format(title=title, body=body)


PUBLIC_NOTE = ("> 공개용 요약: 억제 전후 값 분포는 관리자용 보고서에만 있습니다. / Public summary: "
               "the value distributions before and after suppression are in the administrators' "
               "report only.")


def render_public_html(attestation: dict[str, Any]) -> str:
    """The report's public part, from the attestation alone: the run, rows, k and l, and
    what was done to each column; no value counts (none before suppression, where small
    classes show)."""
    columns = (yaml.safe_load(attestation.get("recipe") or "{}") or {}).get("columns", {})
    markdown = render_markdown(attestation, columns, {}, {}) + "\n" + PUBLIC_NOTE + "\n"
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    title = html.escape(f"De-identification report (public): {attestation['dataset']}")
    return HTML_PAGE.format(title=title, body=body)
