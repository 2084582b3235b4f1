"""Projects: create, list, archive, attach and detach datasets, switch terminals."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, lazyload, raiseload

from . import grants
from .clock import as_utc
from .errors import Conflict, InvalidInput, InvalidTransition, NotFound
from .models import (
    Classification,
    Dataset,
    DatasetStatus,
    Project,
    ProjectDataset,
    ProjectStatus,
)
from .naming import check_project_name
from .permissions import Identity, allowed, require
from .read_cache import ReadModel
from .standing import standing, standings
from .zone import Zone


def get_project(db: Session, name: str, *, datasets: bool = True) -> Project:
    """The project named ``name``; ``datasets=False`` leaves its datasets (and their
    attestations, the bulk of the rows) unloaded until they are read."""
    query = select(Project).where(Project.name == name)
    if not datasets:
        query = query.options(lazyload(Project.datasets))
    project = db.scalar(query)
    if project is None:
        raise NotFound(f"no project named {name!r} (프로젝트 없음)")
    return project


def describe(project: Project, dataset_names: list[str] | None = None) -> dict[str, Any]:
    """The public view of a project (call inside the session that loaded it, or pass the
    names of its datasets)."""
    if dataset_names is None:
        dataset_names = [d.name for d in project.datasets]
    return {"name": project.name, "title": project.title, "status": project.status.value,
            "datasets": sorted(dataset_names), "terminals": project.terminals,
            "ends_at": as_utc(project.ends_at).isoformat() if project.ends_at else None}


def create_project(zone: Zone, actor: Identity, name: str, title: str = "",
                   ends_on: date | None = None) -> dict[str, Any]:
    """A new active project; ``ends_on``: its end date (safezone/destruction), if known."""
    from .destruction.service import check_end_day, end_moment

    require("project.create", actor)
    check_project_name(name)
    if len(title) > 200:
        raise InvalidInput("title is longer than 200 characters")
    check_end_day(zone, ends_on)
    with zone.sessions() as db:
        if db.scalar(select(Project.id).where(Project.name == name)) is not None:
            raise Conflict(f"a project named {name!r} already exists")
    if zone.namespaces is not None:  # idempotent: a failed insert leaves a reusable namespace
        zone.namespaces.provision(name)
    with zone.unit_of_work() as db:
        if db.scalar(select(Project.id).where(Project.name == name)) is not None:
            raise Conflict(f"a project named {name!r} already exists")
        project = Project(name=name, title=title, status=ProjectStatus.ACTIVE,
                          created_at=zone.now(), created_by=actor.name,
                          ends_at=end_moment(ends_on))
        db.add(project)
        db.flush()
        ends = {"ends_at": project.ends_at.isoformat()} if project.ends_at else {}
        zone.record(db, actor, "project.created", f"project:{name}", title=title, **ends)
        return describe(project)


def _load_projects(zone: Zone) -> tuple[list[tuple[int, dict[str, Any]]], None]:
    with zone.sessions() as db:  # two queries, whatever the number of projects
        found = list(db.scalars(select(Project).options(raiseload(Project.datasets))
                                .order_by(Project.name)))
        names: dict[int, list[str]] = {p.id: [] for p in found}
        for project_id, name in db.execute(
                select(ProjectDataset.project_id, Dataset.name).join(Dataset)):
            names[project_id].append(name)
    return [(p.id, describe(p, names[p.id])) for p in found], None


# every project as described to its viewers, kept until one of these tables changes
ALL_PROJECTS = ReadModel("projects", ("projects", "project_datasets", "datasets"),
                         _load_projects)


def list_projects(zone: Zone, actor: Identity) -> list[dict[str, Any]]:
    """The projects ``actor`` may see (``project.view``): all for administrators, reviewers
    and stewards; their own for researchers."""
    require("project.list", actor)
    found = zone.reads.read(ALL_PROJECTS, zone)
    stood = standings(zone, zone.now(), [pid for pid, _ in found], actor)
    return [described for pid, described in found
            if allowed("project.view", actor, stood[pid])]


def attach_dataset(zone: Zone, actor: Identity, project_name: str, dataset_name: str) -> None:
    """Only published, de-identified datasets can be attached to a project."""
    with zone.unit_of_work() as db:
        project = get_project(db, project_name)
        require("project.attach", actor, standing(db, zone.now(), project.id, actor))
        dataset = db.scalar(select(Dataset).where(Dataset.name == dataset_name))
        if dataset is None:
            raise NotFound(f"no dataset named {dataset_name!r}")
        if dataset.classification is not Classification.DEIDENTIFIED:
            raise InvalidTransition(
                f"dataset {dataset_name} is classified {dataset.classification}: only "
                "de-identified datasets can be attached (원본 데이터는 연결할 수 없습니다)"
            )
        if dataset.status is not DatasetStatus.PUBLISHED:
            raise InvalidTransition(
                f"dataset {dataset_name} is {dataset.status}: publish it before attaching it"
            )
        if db.get(ProjectDataset, (project.id, dataset.id)) is not None:
            raise Conflict(f"dataset {dataset_name} is already attached to {project_name}")
        db.add(ProjectDataset(project_id=project.id, dataset_id=dataset.id,
                              attached_at=zone.now(), attached_by=actor.name))
        zone.record(db, actor, "project.dataset_attached", f"project:{project_name}",
                    dataset=dataset_name)


def detach_dataset(zone: Zone, actor: Identity, project_name: str, dataset_name: str) -> None:
    require("project.detach", actor)
    with zone.unit_of_work() as db:
        project = get_project(db, project_name)
        dataset = db.scalar(select(Dataset).where(Dataset.name == dataset_name))
        link = dataset and db.get(ProjectDataset, (project.id, dataset.id))
        if not link:
            raise NotFound(f"dataset {dataset_name} is not attached to {project_name}")
        db.delete(link)
        zone.record(db, actor, "project.dataset_detached", f"project:{project_name}",
                    dataset=dataset_name)
    from .access import refresh_project_sessions  # running sessions lose it too, now

    refresh_project_sessions(zone, actor, project_name, f"dataset {dataset_name} detached")


def set_terminals(zone: Zone, actor: Identity, name: str, enabled: bool) -> dict[str, Any]:
    """Switch Jupyter terminals on or off for the project's notebook servers. Grants issued
    from now on carry the new setting; running servers keep theirs until restarted."""
    if not isinstance(enabled, bool):
        raise InvalidInput("enabled must be true or false (true 또는 false)")
    with zone.unit_of_work() as db:
        project = get_project(db, name)
        require("project.set_terminals", actor, standing(db, zone.now(), project.id, actor))
        old = project.terminals
        if old != enabled:
            project.terminals = enabled
            zone.record(db, actor, "project.terminals_changed", f"project:{name}", old=old,
                        new=enabled)
        return describe(project)


def archive_project(zone: Zone, actor: Identity, name: str) -> None:
    """Archive a project: no new sessions; running sessions are ended and stopped."""
    require("project.archive", actor)
    with zone.unit_of_work() as db:
        project = get_project(db, name)
        if project.status is ProjectStatus.ARCHIVED:
            raise InvalidTransition(f"project {name} is already archived")
        project.status = ProjectStatus.ARCHIVED
        zone.record(db, actor, "project.archived", f"project:{name}")
    grants.end_grants_where(zone, actor, project_name=name, reason="project archived")
    if zone.namespaces is not None:
        zone.namespaces.end_sessions(name)


def view_project(zone: Zone, actor: Identity, name: str) -> dict[str, Any]:
    """One project (``project.view``), with who created it and when."""
    with zone.sessions() as db:
        project = get_project(db, name)
        require("project.view", actor, standing(db, zone.now(), project.id, actor))
        return {**describe(project), "created_at": project.created_at,
                "created_by": project.created_by}
