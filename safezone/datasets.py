"""Datasets: register, publish, withdraw. Raw data can never be published."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .audit import AuditUnanchored
from .catalogue import metadata
from .deid import integrity
from .errors import Conflict, InvalidInput, InvalidTransition, NotFound
from .models import Classification, Dataset, DatasetStatus
from .naming import check_bucket_name, check_prefix
from .permissions import Identity, require
from .zone import Zone

# Which status each action may start from, and where it leads.
TRANSITIONS: dict[str, tuple[frozenset[DatasetStatus], DatasetStatus]] = {
    "publish": (frozenset({DatasetStatus.DRAFT, DatasetStatus.WITHDRAWN}),
                DatasetStatus.PUBLISHED),
    "withdraw": (frozenset({DatasetStatus.PUBLISHED}), DatasetStatus.WITHDRAWN),
}


def get_dataset(db: Session, name: str) -> Dataset:
    dataset = db.scalar(select(Dataset).where(Dataset.name == name))
    if dataset is None:
        raise NotFound(f"no dataset named {name!r} (데이터셋 없음)")
    return dataset


def register_dataset(zone: Zone, actor: Identity, name: str, classification: str,
                     prefix: str = "", description: str = "") -> Dataset:
    """Register a dataset stored in the bucket of the same name (created if missing).

    The name must carry the classification's prefix (``raw-`` or ``deid-``), so the
    storage policies that key on bucket names agree with the catalogue.
    """
    require("dataset.register", actor)
    check_bucket_name(name)
    check_prefix(prefix)
    try:
        kind = Classification(classification)
    except ValueError:
        raise InvalidInput(f"classification must be 'raw' or 'deidentified', not "
                           f"{classification!r}") from None
    wanted_prefix = zone.broker.layout.dataset_prefixes[kind.value]
    if not name.startswith(wanted_prefix):
        raise InvalidInput(f"a {kind.value} dataset's name must start with {wanted_prefix!r}")
    if len(description) > 2000:
        raise InvalidInput("description is longer than 2000 characters")
    with zone.sessions() as db:
        if db.scalar(select(Dataset.id).where(Dataset.name == name)) is not None:
            raise Conflict(f"a dataset named {name!r} already exists")
    created_bucket = zone.broker.ensure_bucket(
        name, versioned=kind is Classification.DEIDENTIFIED)
    try:
        with zone.unit_of_work() as db:
            dataset = Dataset(name=name, bucket=name, prefix=prefix, classification=kind,
                              status=DatasetStatus.DRAFT, description=description,
                              created_at=zone.now(),
                              created_by=actor.name)
            db.add(dataset)
            db.flush()
            zone.record(db, actor, "dataset.registered", f"dataset:{name}",
                        classification=kind.value, prefix=prefix)
    except IntegrityError:
        if created_bucket:
            zone.broker.remove_bucket_if_empty(name)
        raise Conflict(f"a dataset named {name!r} already exists") from None
    except Exception as exc:
        saved = isinstance(exc, AuditUnanchored) and exc.committed  # the row stands
        if created_bucket and not saved:
            zone.broker.remove_bucket_if_empty(name)
        raise
    return dataset


def change_status(zone: Zone, actor: Identity, name: str, action: str) -> Dataset:
    """Publish or withdraw a dataset. Only de-identified datasets whose attestation holds
    (every object as attested, hashes and k re-checked) and whose catalogue entry is
    complete may be published."""
    require(f"dataset.{action}", actor)
    allowed_from, target = TRANSITIONS[action]
    attested = None
    if action == "publish":
        found = get_location(zone, name)
        _check_publishable(zone, found)
        attested = found.attestation
    with zone.unit_of_work() as db:
        dataset = get_dataset(db, name)
        if action == "publish" and dataset.attestation != attested:
            raise Conflict(f"dataset {name} was re-attested meanwhile; publish again")
        if dataset.status not in allowed_from:
            raise InvalidTransition(f"cannot {action} dataset {name}: it is {dataset.status}")
        if action == "publish":
            check_described(dataset)
        dataset.status = target
        if target is DatasetStatus.PUBLISHED:
            dataset.published_at, dataset.published_by = zone.now(), actor.name
        zone.record(db, actor, f"dataset.{target.value}", f"dataset:{name}")
    if target is DatasetStatus.WITHDRAWN:  # running sessions lose it too, now
        from .access import refresh_dataset_sessions

        refresh_dataset_sessions(zone, actor, name, f"dataset {name} withdrawn")
    return dataset


def _check_publishable(zone: Zone, dataset: Dataset) -> None:
    if dataset.classification is not Classification.DEIDENTIFIED:
        raise InvalidTransition(f"dataset {dataset.name} is raw (identifiable) and can never "
                                "be published (식별 가능한 원본 데이터는 공개할 수 없습니다)")
    if dataset.status not in TRANSITIONS["publish"][0]:
        raise InvalidTransition(f"cannot publish dataset {dataset.name}: it is "
                                f"{dataset.status}")
    problems = integrity.problems(zone.broker, dataset.bucket, dataset.prefix,
                                  dataset.attestation)
    if problems:
        raise InvalidTransition(f"dataset {dataset.name} cannot be published: "
                                f"{'; '.join(problems)} (가명처리 증명 불일치)")


def check_described(dataset: Dataset) -> None:
    """Refuse (422) a dataset whose catalogue entry lacks what publishing needs."""
    absent = metadata.missing(dataset.catalogue, dataset.attestation)
    if absent:
        raise InvalidInput(f"dataset {dataset.name} cannot be published without its catalogue "
                           f"entry: missing {', '.join(absent)} — set them in the recipe's "
                           f"catalogue block or with PUT /api/datasets/{dataset.name}/catalogue "
                           f"(카탈로그 필수 항목 누락: {', '.join(absent)})")


def take_out_of_sessions(zone: Zone, actor: Identity, name: str, problems: list[str]) -> None:
    """A dataset whose attestation no longer holds: withdrawn, the audit says why, and
    running sessions lose it at once."""
    with zone.unit_of_work() as db:
        dataset = get_dataset(db, name)
        was = dataset.status
        if was is DatasetStatus.PUBLISHED:
            dataset.status = DatasetStatus.WITHDRAWN
        zone.record(db, actor, "dataset.integrity_failed", f"dataset:{name}",
                    problems=problems[:20], was=was.value, now=dataset.status.value)
    from .access import refresh_dataset_sessions

    refresh_dataset_sessions(zone, actor, name, f"dataset {name} failed its integrity check")


def get_location(zone: Zone, name: str) -> Dataset:
    """The dataset's catalogue row, detached (bucket, prefix, status, attestation)."""
    with zone.sessions() as db:
        return get_dataset(db, name)


def list_datasets(zone: Zone, actor: Identity) -> list[Dataset]:
    require("dataset.list", actor)
    with zone.sessions() as db:
        return list(db.scalars(select(Dataset).order_by(Dataset.name)))


def record_attestation(zone: Zone, actor: Identity, name: str, attestation: dict[str, Any],
                       catalogue: dict[str, Any] | None = None) -> None:
    """Store the pipeline's attestation with the dataset (and audit it, without secrets),
    and the recipe's catalogue entry when it has one."""
    described = {} if catalogue is None else {"catalogue_sha256": metadata.digest(catalogue)}
    with zone.unit_of_work() as db:
        dataset = get_dataset(db, name)
        dataset.attestation = attestation
        if catalogue is not None:
            dataset.catalogue = catalogue
        zone.record(db, actor, "dataset.attested", f"dataset:{name}",
                    recipe_sha256=attestation["recipe_sha256"],
                    objects={k: o["sha256"] for k, o in attestation["objects"].items()},
                    k=attestation["k"], rows_out=attestation["rows_out"], **described)


def attestation_of(zone: Zone, name: str) -> dict[str, Any] | None:
    with zone.sessions() as db:
        return get_dataset(db, name).attestation
