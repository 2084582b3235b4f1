"""The ``safezone`` command: administer the zone through its REST API, run it locally."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from typing import Any

import httpx
import typer

app = typer.Typer(help="Safezone (안심구역) command line.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
projects_app = typer.Typer(help="Projects.", no_args_is_help=True)
datasets_app = typer.Typer(help="Datasets.", no_args_is_help=True)
members_app = typer.Typer(help="Memberships.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)
local_app = typer.Typer(help="The one-machine zone.", no_args_is_help=True)
exports_app = typer.Typer(help="Export requests (반출 요청).", no_args_is_help=True)
deid_app = typer.Typer(help="De-identification (비식별 처리), run inside the zone with the "
                       "control plane's settings (SAFEZONE_* environment).",
                       no_args_is_help=True)
for sub, name in ((projects_app, "projects"), (datasets_app, "datasets"),
                  (members_app, "members"), (audit_app, "audit"), (local_app, "local"),
                  (exports_app, "exports"), (deid_app, "deid")):
    app.add_typer(sub, name=name)
applications_app = typer.Typer(help="Applications for access (이용 신청).",
                               no_args_is_help=True)
app.add_typer(applications_app, name="applications")

DEFAULT_URL = "http://127.0.0.1:8000/services/safezone"


class CliError(Exception):
    """Printed as one line; the command exits 1."""


def _client() -> httpx.Client:
    token = os.environ.get("SAFEZONE_TOKEN") or os.environ.get("JUPYTERHUB_API_TOKEN")
    if not token:
        raise CliError("set SAFEZONE_TOKEN to your JupyterHub API token "
                       "(the local zone prints one for admin)")
    url = (os.environ.get("SAFEZONE_URL") or os.environ.get("SAFEZONE_API_URL")
           or DEFAULT_URL).rstrip("/")
    return httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"token {token}"})


def call(method: str, path: str, body: dict[str, Any] | None = None, *,
         params: dict[str, str] | None = None, raw: bool = False) -> Any:
    try:
        with _client() as client:
            response = client.request(method, path, json=body, params=params)
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach the control plane: {exc}") from exc
    if response.status_code >= 400:
        try:
            message = response.json().get("error") or response.text
        except ValueError:
            message = response.text.strip()[:200]
        raise CliError(f"{response.status_code}: {message}")
    return response.content if raw else response.json()


def show(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


@projects_app.command("create")
def project_create(name: str, title: str = "") -> None:
    show(call("POST", "/api/projects", {"name": name, "title": title}))


@projects_app.command("list")
def project_list() -> None:
    show(call("GET", "/api/projects"))


@projects_app.command("archive")
def project_archive(name: str) -> None:
    show(call("POST", f"/api/projects/{name}/archive"))


@projects_app.command("attach")
def project_attach(project: str, dataset: str) -> None:
    show(call("POST", f"/api/projects/{project}/datasets", {"dataset": dataset}))


@projects_app.command("terminals")
def project_terminals(name: str, on: bool = typer.Option(
        ..., "--on/--off", help="Jupyter terminals in the project's notebook servers "
        "(from their next start)")) -> None:
    show(call("PUT", f"/api/projects/{name}/terminals", {"enabled": on}))


@datasets_app.command("register")
def dataset_register(name: str, classification: str = typer.Option(..., "--classification",
                     help="raw or deidentified"), prefix: str = "", description: str = ""
                     ) -> None:
    show(call("POST", "/api/datasets", {"name": name, "classification": classification,
                                        "prefix": prefix, "description": description}))


@datasets_app.command("publish")
def dataset_publish(name: str) -> None:
    show(call("POST", f"/api/datasets/{name}/publish"))


@datasets_app.command("withdraw")
def dataset_withdraw(name: str) -> None:
    show(call("POST", f"/api/datasets/{name}/withdraw"))


@datasets_app.command("list")
def dataset_list() -> None:
    show(call("GET", "/api/datasets"))


@members_app.command("request")
def member_request(project: str, justification: str = "") -> None:
    show(call("POST", f"/api/projects/{project}/members/request",
              {"justification": justification}))


@members_app.command("approve")
def member_approve(project: str, user: str, expires: str = typer.Option(
        ..., help="expiry date or time, ISO 8601 (e.g. 2027-06-30)")) -> None:
    try:
        when = datetime.fromisoformat(expires)
    except ValueError:
        raise CliError(f"--expires {expires!r} is not an ISO 8601 date") from None
    show(call("POST", f"/api/projects/{project}/members/{user}/approve",
              {"expires_at": when.isoformat() if when.tzinfo else when.isoformat() + "+00:00"}))


@members_app.command("reject")
def member_reject(project: str, user: str, reason: str = "") -> None:
    show(call("POST", f"/api/projects/{project}/members/{user}/reject", {"reason": reason}))


@members_app.command("revoke")
def member_revoke(project: str, user: str, reason: str = "") -> None:
    show(call("POST", f"/api/projects/{project}/members/{user}/revoke", {"reason": reason}))


@members_app.command("list")
def member_list(project: str) -> None:
    show(call("GET", f"/api/projects/{project}/members"))


@applications_app.command("list")
def application_list() -> None:
    """Yours; every application for an administrator."""
    show([{k: a[k] for k in ("id", "applicant", "status", "datasets", "until", "project")}
          for a in call("GET", "/api/applications")])


@applications_app.command("approve")
def application_approve(application_id: str, expires: str = typer.Option(
        ..., help="last day of access, YYYY-MM-DD (at most the end of the period applied for)"),
        project: str = typer.Option("", help="approve into this existing project"),
        new_project: str = typer.Option("", help="or create this project from the application"),
        title: str = typer.Option("", help="the new project's title")) -> None:
    show(call("POST", f"/api/applications/{application_id}/approve", {
        "expires_at": expires, "project": project, "new_project": new_project,
        "title": title}))


@applications_app.command("reject")
def application_reject(application_id: str, reason: str = typer.Option(
        ..., help="why (the applicant reads it)")) -> None:
    show(call("POST", f"/api/applications/{application_id}/reject", {"reason": reason}))


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the hash chain against every anchor; exit 1 naming each broken event."""
    result = call("GET", "/api/audit/verify")
    if result["intact"]:
        typer.echo(f"audit chain intact: {result['events']} events, "
                   f"{result['anchors_checked']} anchors checked")
        return
    for finding in result["findings"]:
        typer.echo(f"{finding['kind']}: event {finding['seq']}: {finding['detail']}")
    raise CliError(f"audit chain broken: {len(result['findings'])} finding(s)")


@exports_app.command("submit")
def export_submit(files: list[str], project: str = typer.Option(
        None, help="project (default: $SAFEZONE_PROJECT in a notebook)"),
        title: str = "", justification: str = "") -> None:
    """Ask to export FILES (paths inside your outbox) and submit them for review."""
    project = project or os.environ.get("SAFEZONE_PROJECT")
    if not project:
        raise CliError("--project is required outside a Safezone notebook")
    created = call("POST", "/api/exports", {"project": project, "title": title, "files": [
        {"path": f, "justification": justification} for f in files]})
    show(call("POST", f"/api/exports/{created['id']}/submit"))


@exports_app.command("list")
def export_list() -> None:
    show([{k: r[k] for k in ("id", "project", "title", "status")}
          for r in call("GET", "/api/exports")])


@exports_app.command("show")
def export_show(request_id: str) -> None:
    show(call("GET", f"/api/exports/{request_id}"))


@exports_app.command("withdraw")
def export_withdraw(request_id: str) -> None:
    show(call("POST", f"/api/exports/{request_id}/withdraw"))


def _steward(name: str):
    """The data steward as the audit names them (the CLI runs with the zone's settings)."""
    from .permissions import STEWARD_SCOPE, Identity

    return Identity(name, "user", frozenset({STEWARD_SCOPE}))


def _steward_zone():
    """The zone with the control plane's settings; its access-like audit events (raw
    uploads, de-identification runs) become access records, as in the control plane."""
    from .config import Settings
    from .errors import SafezoneError
    from .records import sources as record_sources
    from .zone import Zone

    try:
        zone = Zone.from_settings(Settings.from_env())
        record_sources.install(zone)
        return zone
    except SafezoneError as exc:
        raise CliError(exc.message) from None
    except ValueError as exc:  # a setting that must not start the zone (config.py)
        raise CliError(str(exc)) from None


@deid_app.command("run")
def deid_run(recipe: str = typer.Option(..., help="recipe YAML file"),
             input: str = typer.Option(..., "--input", help="raw-bucket/key of a CSV or "
                                       "Parquet file"),
             dataset: str = typer.Option(..., help="output dataset (deid-…)"),
             key_file: str = typer.Option(..., help="file holding the pseudonymisation key; "
                                          "keep it outside the zone"),
             steward: str = typer.Option("steward", help="who runs it (audit)")) -> None:
    """Stream the input through the recipe; write the dataset and its attestation."""
    from pathlib import Path

    from .deid import pipeline
    from .deid.recipe import load_recipe
    from .errors import SafezoneError

    bucket, _, key = input.partition("/")
    try:
        loaded = load_recipe(Path(recipe).read_text())
        facts = pipeline.run(_steward_zone(), _steward(steward),
                             loaded, bucket, key, dataset, Path(key_file).read_bytes().strip(),
                             progress=sys.stderr.isatty())
    except OSError as exc:
        raise CliError(str(exc)) from None
    except SafezoneError as exc:
        raise CliError(exc.message) from None
    show({k: facts[k] for k in ("dataset", "rows_in", "rows_out", "rows_suppressed", "k",
                                "k_achieved", "l_achieved", "columns_dropped")})


@deid_app.command("upload")
def deid_upload(file: str, to: str = typer.Option(..., help="raw-bucket/key.csv|.parquet"),
                steward: str = typer.Option("steward", help="who uploads (audit)")) -> None:
    """Put a raw file into a raw-* bucket (registered on first use); only the pipeline's
    per-run identity can read it back."""
    from pathlib import Path

    from .deid.upload import upload_raw
    from .errors import SafezoneError

    bucket, _, key = to.partition("/")
    try:
        size = upload_raw(_steward_zone(), _steward(steward), Path(file), bucket, key)
    except SafezoneError as exc:
        raise CliError(exc.message) from None
    typer.echo(f"stored {size} bytes in {bucket}/{key}")


@deid_app.command("demo")
def deid_demo(member: str = typer.Option("alice", help="who gets the demo project"),
              admin: str = typer.Option("admin", help="who approves it (audit)"),
              key_file: str = typer.Option("", help="pseudonymisation key file; default: a "
                                           "fresh random key that is not kept")) -> None:
    """Load the synthetic demo data into a zone (what `make run` seeds), e.g. in a cluster
    made for evaluation: `kubectl exec deploy/control-plane -- safezone deid demo`."""
    import secrets
    from pathlib import Path

    from .errors import SafezoneError
    from .local import demo

    try:
        key = (Path(key_file).read_bytes().strip() if key_file
               else secrets.token_hex(32).encode())
        demo.seed(_steward_zone(), key, admin_name=admin, member=member)
    except OSError as exc:
        raise CliError(str(exc)) from None
    except SafezoneError as exc:
        raise CliError(exc.message) from None
    typer.echo(f"demo data ready: project {demo.DEMO_PROJECT}, dataset {demo.DEID_DATASET}, "
               f"member {member}")


@deid_app.command("verify")
def deid_verify(dataset: str, steward: str = typer.Option("steward", help="who checks (audit)")
                ) -> None:
    """Re-check the attested objects, hashes and k; exit 1 with each problem and take the
    dataset out of new sessions."""
    from .deid import pipeline
    from .errors import SafezoneError

    try:
        problems = pipeline.verify(_steward_zone(), _steward(steward), dataset)
    except SafezoneError as exc:
        raise CliError(exc.message) from None
    if problems:
        for problem in problems:
            typer.echo(problem)
        raise CliError(f"{dataset}: attestation does not hold")
    typer.echo(f"{dataset}: attestation holds")


destruction_app = typer.Typer(help="Project end, retention and destruction (종료·보존·파기).",
                              no_args_is_help=True)
app.add_typer(destruction_app, name="destruction")


def _day_or_none(value: str, option: str) -> str | None:
    """YYYY-MM-DD, or 'none' to clear."""
    if value.lower() == "none":
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date().isoformat()
    except ValueError:
        raise CliError(f"{option} {value!r} is not a date YYYY-MM-DD (or 'none')") from None


@destruction_app.command("end")
def destruction_end(project: str, on: str = typer.Option(
        ..., "--on", help="the project's last day, YYYY-MM-DD, or 'none'")) -> None:
    """Set a project's end date; its data is destroyed after the retention period."""
    show(call("PUT", f"/api/projects/{project}/end", {"ends_on": _day_or_none(on, "--on")}))


@destruction_app.command("retain")
def destruction_retain(dataset: str, until: str = typer.Option(
        ..., "--until", help="a raw dataset's last day of retention, YYYY-MM-DD, or 'none'")
        ) -> None:
    show(call("PUT", f"/api/datasets/{dataset}/retention",
              {"retain_until": _day_or_none(until, "--until")}))


@destruction_app.command("run")
def destruction_run(kind: str = typer.Argument(..., help="project or dataset"),
                    name: str = typer.Argument(...)) -> None:
    """Destroy a due project's data or raw dataset now (the zone does it by itself)."""
    if kind not in {"project", "dataset"}:
        raise CliError(f"kind must be project or dataset, not {kind!r}")
    show(call("POST", f"/api/{kind}s/{name}/destroy"))


@destruction_app.command("list")
def destruction_list(subject: str = typer.Option("", help="one project or dataset")) -> None:
    show(call("GET", "/api/destructions", params={"subject": subject} if subject else None))


@destruction_app.command("report")
def destruction_report(destruction_id: str, out: str = typer.Option(
        "", help="write the certificate (파기 확인서) exactly as stored to this file")) -> None:
    """Show a certificate of destruction, or save its locked copy with --out."""
    if not out:
        show(call("GET", f"/api/destructions/{destruction_id}"))
        return
    body = call("GET", f"/api/destructions/{destruction_id}/certificate", raw=True)
    try:
        with open(out, "xb") as handle:
            handle.write(body)
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc.strerror}") from None
    import hashlib

    typer.echo(f"wrote {out} ({len(body)} bytes, sha256 {hashlib.sha256(body).hexdigest()})")


@app.command("backup")
def backup_command(target: str = typer.Argument(
        ..., help="a new (or empty) folder, or s3://bucket/name in the zone's MinIO")) -> None:
    """Write a consistent snapshot (database, catalogue pins, audit anchors, manifest) with
    the control plane's settings (SAFEZONE_* environment); the zone may keep running."""
    from .backup.cli import run_backup

    run_backup(target)


@app.command("restore")
def restore_command(snapshot: str = typer.Argument(..., help="snapshot folder or s3://…"),
                    manifest_sha256: str = typer.Option(
                        "", help="refuse unless manifest.json has this SHA-256 (printed "
                        "by the backup)"),
                    quick: bool = typer.Option(False, help="check dataset pins by listing "
                                               "only, without re-hashing the objects"),
                    by: str = typer.Option("", help="who restores (audit); default: $USER")
                    ) -> None:
    """Bring a fresh zone (empty database) back from a snapshot; exit 1 on any problem."""
    from .backup.cli import run_restore

    run_restore(snapshot, manifest_sha256=manifest_sha256, full=not quick, by=by)


@local_app.command("up")
def local_up(state_dir: str = typer.Option(".cache/zone", help="where the zone keeps its data"),
             port: int = 8000,
             unisolated_demo: bool = typer.Option(
                 False, "--unisolated-demo", help="run notebooks without a sandbox; every "
                 "page then warns not to use real data")) -> None:
    """Start MinIO, the control plane and JupyterHub on 127.0.0.1 with demo data."""
    from .local.launcher import REFUSALS, run_local_zone

    try:
        run_local_zone(state_dir, port, unisolated_demo=unisolated_demo)
    except REFUSALS as exc:  # nothing is left running: the launcher stopped what it began
        raise CliError(str(exc)) from None


def main() -> None:
    from . import logs

    # JSON lines on stderr like the control plane's; warnings and above unless asked, and
    # what `safezone local up` says about starting the zone
    logs.configure(os.environ.get("SAFEZONE_LOG_LEVEL", "WARNING"),
                   levels={"safezone.local": "INFO"})
    try:
        app()
    except CliError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)


from .records.cli import records_app  # noqa: E402  (its commands use call() above)

app.add_typer(records_app, name="records")

if __name__ == "__main__":
    main()
