"""The catalogue as DCAT (DCAT-AP) in JSON-LD, for national catalogues to harvest.

Every value is written in expanded form (``{"@value", "@language"}``, ``{"@id"}``) under a
context of the standard prefixes only, so the document needs nothing remote to expand.
The mapping is tabled in docs/catalogue.md.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from ..config import POLICIES_DIR
from ..models import Dataset
from . import metadata

CONTEXT = {"dcat": "http://www.w3.org/ns/dcat#", "dct": "http://purl.org/dc/terms/",
           "foaf": "http://xmlns.com/foaf/0.1/", "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
           "xsd": "http://www.w3.org/2001/XMLSchema#"}
EU = "http://publications.europa.eu/resource/authority/"
PARQUET = EU + "file-type/PARQUET"
PARQUET_MEDIA_TYPE = "https://www.iana.org/assignments/media-types/application/vnd.apache.parquet"
RESTRICTED = EU + "access-right/RESTRICTED"
LANGUAGES = [{"@id": EU + "language/KOR"}, {"@id": EU + "language/ENG"}]
INSIDE_ONLY = {"ko": "안심구역 안에서 승인된 프로젝트로만 이용할 수 있습니다.",
               "en": "Usable only inside the Safezone, by an approved research project."}


@cache
def catalogue_policy(policies_dir: Path = POLICIES_DIR) -> dict[str, Any]:
    return yaml.safe_load((policies_dir / "catalogue.yaml").read_text())


def address(derived: str) -> str:
    """The API's public address: the policy's, else the one the request came to."""
    return (catalogue_policy().get("address") or derived).rstrip("/")


def literals(value: str | dict[str, str] | None) -> list[dict[str, str]]:
    """Language-tagged literals: ko and en where both are given, untagged plain text."""
    return [{"@value": text, "@language": lang} if lang else {"@value": text}
            for lang, text in metadata.texts(value).items()]


def _agent(name: str | dict[str, str]) -> dict[str, Any]:
    return {"@type": "foaf:Agent", "foaf:name": literals(name)}


def _licence(licence: dict[str, Any]) -> dict[str, Any]:
    node: dict[str, Any] = {"@type": "dct:LicenseDocument",
                            "rdfs:label": literals(licence.get("title"))}
    return {"@id": licence["url"], **node} if licence.get("url") else node


def _date(value: str) -> dict[str, str]:
    return {"@value": value, "@type": "xsd:date"}


def dataset_node(dataset: Dataset, base: str) -> dict[str, Any]:
    """One published dataset as a dcat:Dataset with its one dcat:Distribution."""
    entry, attestation = dataset.catalogue or {}, dataset.attestation or {}
    node: dict[str, Any] = {
        "@id": f"{base}/api/catalogue.jsonld#{dataset.name}", "@type": "dcat:Dataset",
        "dct:identifier": dataset.name,
        "dct:title": literals(entry.get("title") or dataset.name),
        "dct:description": literals(entry.get("description") or dataset.description
                                    or dataset.name),
        "dct:accessRights": {"@id": RESTRICTED},
    }
    keywords = [{"@value": w, "@language": lang} if lang else {"@value": w}
                for lang, some in metadata.words(entry.get("keywords")).items() for w in some]
    if keywords:
        node["dcat:keyword"] = keywords
    if entry.get("publisher"):
        node["dct:publisher"] = _agent(entry["publisher"])
    temporal = entry.get("temporal") or {}
    if temporal:
        period = {"@type": "dct:PeriodOfTime"}
        if temporal.get("start"):
            period["dcat:startDate"] = _date(temporal["start"])
        if temporal.get("end"):
            period["dcat:endDate"] = _date(temporal["end"])
        node["dct:temporal"] = period
    if entry.get("accrual_periodicity"):
        code = metadata.FREQUENCIES[entry["accrual_periodicity"]][0]
        node["dct:accrualPeriodicity"] = {"@id": metadata.EU_FREQUENCY + code}
    if dataset.published_at:
        node["dct:issued"] = {"@value": dataset.published_at.isoformat(),
                              "@type": "xsd:dateTime"}
    distribution: dict[str, Any] = {
        "@id": f"{base}/api/catalogue.jsonld#{dataset.name}-parquet",
        "@type": "dcat:Distribution", "dct:format": {"@id": PARQUET},
        "dcat:mediaType": {"@id": PARQUET_MEDIA_TYPE},
        "dcat:accessURL": {"@id": f"{base}/pages/"},
        "dct:description": literals(INSIDE_ONLY),
    }
    size = sum(o.get("bytes", 0) for o in attestation.get("outputs", []))
    if size:
        distribution["dcat:byteSize"] = {"@value": str(size),
                                         "@type": "xsd:nonNegativeInteger"}
    if entry.get("licence"):
        node["dct:license"] = distribution["dct:license"] = _licence(entry["licence"])
    node["dcat:distribution"] = [distribution]
    return node


def catalog(datasets: list[Dataset], base: str) -> dict[str, Any]:
    """The dcat:Catalog of the published datasets; ``base`` is the API's public address."""
    policy = catalogue_policy()
    return {
        "@context": CONTEXT,
        "@id": f"{base}/api/catalogue.jsonld", "@type": "dcat:Catalog",
        "dct:title": literals(policy["title"]),
        "dct:description": literals(policy["description"]),
        "dct:publisher": _agent(policy["publisher"]),
        "dct:language": LANGUAGES,
        "dcat:dataset": [dataset_node(d, base) for d in datasets],
    }
