"""The catalogue: describe a dataset, list the published ones, their reports' public part."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ..datasets import get_dataset
from ..deid.report import render_public_html
from ..errors import InvalidInput, NotFound
from ..models import Classification, Dataset, DatasetStatus
from ..permissions import Identity, require
from ..read_cache import ReadModel
from ..zone import Zone
from . import metadata

FIELDS = ("title", "description", "keywords", "publisher", "temporal", "accrual_periodicity",
          "licence")
# what the catalogue shows of the attestation besides the rows (the rest is for the review)
ATTESTED = ("k", "k_achieved", "l", "l_achieved", "run_at")


def describe(zone: Zone, actor: Identity, name: str, entry: Any) -> dict[str, Any]:
    """Replace the dataset's catalogue entry. A published dataset's entry must stay
    complete; the audit trail keeps which fields were set and the entry's digest."""
    require("dataset.describe", actor)
    entry = metadata.check(entry)
    with zone.unit_of_work() as db:
        dataset = get_dataset(db, name)
        if dataset.classification is not Classification.DEIDENTIFIED:
            raise InvalidInput(f"dataset {name} is raw: only de-identified datasets are "
                               "catalogued (원본 데이터는 카탈로그에 올리지 않습니다)")
        unknown = sorted(set(entry.get("columns", {})) - set(
            (dataset.attestation or {}).get("columns_out", [])))
        if dataset.attestation and unknown:
            raise InvalidInput(f"catalogue columns: {', '.join(unknown)} not in dataset {name} "
                               "(데이터셋에 없는 열)")
        if dataset.status is DatasetStatus.PUBLISHED:
            absent = metadata.missing(entry, dataset.attestation)
            if absent:
                raise InvalidInput(f"dataset {name} is published, so its catalogue entry must "
                                   f"stay complete: missing {', '.join(absent)} "
                                   f"(공개된 데이터셋의 필수 항목 누락)")
        dataset.catalogue = entry
        zone.record(db, actor, "dataset.described", f"dataset:{name}", source="api",
                    fields=sorted(entry), sha256=metadata.digest(entry))
    return entry


def published(zone: Zone) -> list[Dataset]:
    """The published datasets (de-identified by construction), by name."""
    with zone.sessions() as db:
        return list(db.scalars(select(Dataset).where(
            Dataset.status == DatasetStatus.PUBLISHED,
            Dataset.classification == Classification.DEIDENTIFIED).order_by(Dataset.name)))


def entry(dataset: Dataset, report_url: str) -> dict[str, Any]:
    """One dataset as the catalogue shows it: its entry, and the attested facts."""
    described = dataset.catalogue or {}
    attestation = dataset.attestation or {}
    return {
        "name": dataset.name,
        **{field: described.get(field) for field in FIELDS},
        "data_dictionary": metadata.data_dictionary(described, attestation),
        "columns_removed": attestation.get("columns_dropped", []),
        "rows": attestation.get("rows_out"),
        **{field: attestation.get(field) for field in ATTESTED},
        "published_at": dataset.published_at.isoformat() if dataset.published_at else None,
        "missing": metadata.missing(described, attestation),
        "report": report_url,
    }


def _load_catalogue(zone: Zone) -> tuple[list[dict[str, Any]], None]:
    return [entry(d, "") for d in published(zone)], None


# the catalogue's entries, kept until the datasets table changes (the report's address is
# the caller's, added per call: a cache keyed by a Host header could be made to grow)
CATALOGUE = ReadModel("catalogue", ("datasets",), _load_catalogue)


def list_catalogue(zone: Zone, actor: Identity, base: str) -> list[dict[str, Any]]:
    """Every published dataset with its entry; ``base`` is the API's address."""
    require("catalogue.read", actor)
    return [{**e, "report": f"{base}/api/catalogue/{e['name']}/report"}
            for e in zone.reads.read(CATALOGUE, zone)]


def public_report(zone: Zone, actor: Identity, name: str) -> str:
    """The public part of a published dataset's de-identification report (HTML)."""
    require("catalogue.read", actor)
    with zone.sessions() as db:
        found = db.scalar(select(Dataset).where(
            Dataset.name == name, Dataset.status == DatasetStatus.PUBLISHED,
            Dataset.classification == Classification.DEIDENTIFIED))
    if found is None or not found.attestation:
        raise NotFound(f"no published dataset named {name!r} (공개된 데이터셋 없음)")
    return render_public_html(found.attestation)
