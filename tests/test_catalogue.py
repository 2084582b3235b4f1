"""The data catalogue: publishing needs a complete entry; researchers browse the published
datasets; anyone harvests them as DCAT JSON-LD (checked by expanding it with pyld)."""

from __future__ import annotations

import httpx
import pytest
import yaml
from pyld import jsonld
from sqlalchemy import select

from safezone.catalogue import metadata
from safezone.config import POLICIES_DIR
from safezone.deid.recipe import load_recipe
from safezone.errors import InvalidInput
from safezone.models import AuditEvent

from .support import TINY_RECIPE, attested_dataset, register_published_dataset, unique

UNDESCRIBED = "version: 1\ncolumns:\n  id: {technique: keep}\n  age: {technique: keep}\n"
ENTRY = yaml.safe_load(TINY_RECIPE)["catalogue"]
DCAT, DCT, FOAF = "http://www.w3.org/ns/dcat#", "http://purl.org/dc/terms/", \
    "http://xmlns.com/foaf/0.1/"
RDF_TYPE = "@type"


def catalogue_names(stack, user: str = "alice") -> list[str]:
    response = stack.api(user).get("/api/catalogue")
    assert response.status_code == 200, response.text
    return [d["name"] for d in response.json()]


def missing_named(response: httpx.Response) -> set[str]:
    """The fields a refusal names (its sentence: "… missing a, b — set them …")."""
    listed = response.json()["error"].split(": missing ", 1)[1].split(" — ")[0].split(" (")[0]
    return set(listed.split(", "))


def status_of(stack, name: str) -> str:
    found = [d for d in stack.api("admin").get("/api/datasets").json() if d["name"] == name]
    return found[0]["status"]


def test_publishing_needs_a_complete_entry_and_names_what_is_missing(stack):
    name = unique("deid-cat")
    attested_dataset(stack.zone, name, recipe=UNDESCRIBED)
    admin, steward = stack.api("admin"), stack.api("steward")
    refused = admin.post(f"/api/datasets/{name}/publish")
    assert refused.status_code == 422, refused.text
    assert missing_named(refused) == {  # not the types: the run wrote them
        "title", "description", "keywords", "publisher", "temporal.start", "temporal.end",
        "accrual_periodicity", "licence.title", "columns.id.description",
        "columns.age.description"}
    assert "카탈로그" in refused.json()["error"]
    assert status_of(stack, name) == "draft" and name not in catalogue_names(stack)

    partial = {"title": {"ko": "부분", "en": "Partial"}, "columns": {"id": {"description": "n"}}}
    assert steward.put(f"/api/datasets/{name}/catalogue", json=partial).status_code == 200
    refused = admin.post(f"/api/datasets/{name}/publish")
    assert refused.status_code == 422
    named = missing_named(refused)
    assert "columns.age.description" in named and "licence.title" in named
    assert not {"title", "columns.id.description"} & named
    assert status_of(stack, name) == "draft"

    assert admin.put(f"/api/datasets/{name}/catalogue", json=ENTRY).status_code == 200
    assert admin.post(f"/api/datasets/{name}/publish").status_code == 200
    assert name in catalogue_names(stack)
    with stack.zone.sessions() as db:
        described = list(db.scalars(select(AuditEvent).where(
            AuditEvent.action == "dataset.described", AuditEvent.subject == f"dataset:{name}")
            .order_by(AuditEvent.seq)))
    assert [e.actor for e in described] == ["steward", "admin"]
    assert described[-1].data["sha256"] == metadata.digest(ENTRY)

    # once published, the entry may change but not lose a required field
    incomplete = {k: v for k, v in ENTRY.items() if k != "licence"}
    kept = admin.put(f"/api/datasets/{name}/catalogue", json=incomplete)
    assert kept.status_code == 422 and missing_named(kept) == {"licence.title"}


def test_describing_is_for_admins_and_stewards_and_checks_the_entry(stack):
    name = unique("deid-cat")
    attested_dataset(stack.zone, name, recipe=UNDESCRIBED)
    put = f"/api/datasets/{name}/catalogue"
    assert stack.api("alice").put(put, json=ENTRY).status_code == 403
    assert stack.api("reviewer").put(put, json=ENTRY).status_code == 403
    admin = stack.api("admin")
    for bad, word in [({"colour": "red"}, "colour"),
                      ({"accrual_periodicity": "fortnightly"}, "fortnightly"),
                      ({"temporal": {"start": "2024-12-31", "end": "2024-01-01"}}, "start"),
                      ({"temporal": {"start": "2024-02-30"}}, "temporal"),
                      ({"licence": {"title": "t", "url": "javascript:alert(1)"}}, "url"),
                      ({"columns": {"nope": {"description": "x"}}}, "nope")]:
        response = admin.put(put, json=bad)
        assert response.status_code == 422 and word in response.text, (bad, response.text)
    raw = unique("raw-cat")
    admin.post("/api/datasets", json={"name": raw, "classification": "raw"}).raise_for_status()
    refused = admin.put(f"/api/datasets/{raw}/catalogue", json=ENTRY)
    assert refused.status_code == 422 and "raw" in refused.json()["error"]


def test_the_catalogue_lists_only_published_datasets(stack):
    published, withdrawn, draft = unique("deid-pub"), unique("deid-wd"), unique("deid-dr")
    register_published_dataset(stack, published, b"id,age\n1,40\n2,41\n")
    register_published_dataset(stack, withdrawn)
    stack.api("admin").post(f"/api/datasets/{withdrawn}/withdraw").raise_for_status()
    attested_dataset(stack.zone, draft)
    raw = "raw-" + published.removeprefix("deid-")  # the pipeline's input, registered raw
    names = catalogue_names(stack)
    assert published in names
    assert not {withdrawn, draft, raw} & set(names)
    assert all(n.startswith("deid-") for n in names)

    alice = stack.api("alice")
    entry = next(d for d in alice.get("/api/catalogue").json() if d["name"] == published)
    assert entry["title"] == {"ko": "시험 데이터", "en": "Test data"}
    assert entry["rows"] == 2 and entry["k"] == 5 and entry["k_achieved"] is None
    assert entry["missing"] == [] and entry["accrual_periodicity"] == "irregular"
    assert entry["data_dictionary"] == [
        {"name": "id", "type": "int64", "description": "row number", "technique": "keep",
         "technique_ko": "유지"},
        {"name": "age", "type": "int64", "description": "age in years", "technique": "keep",
         "technique_ko": "유지"}]
    path = httpx.URL(entry["report"]).path
    assert path.endswith(f"/api/catalogue/{published}/report")
    report = alice.get(path)
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "k-익명성 / k-anonymity" in report.text and "Public summary" in report.text
    assert "before suppression" not in report.text
    assert alice.get(f"/api/catalogue/{withdrawn}/report").status_code == 404
    assert alice.get(f"/api/catalogue/{draft}/report").status_code == 404

    anonymous = httpx.Client(base_url=stack.control_plane.url, timeout=30)
    assert anonymous.get("/api/catalogue").status_code == 401
    assert anonymous.get(path).status_code == 401
    assert stack.api("operator").get("/api/catalogue").status_code == 403


def _values(node: dict, prop: str) -> list:
    return node.get(prop, [])


def _languages(node: dict, prop: str) -> set:
    return {v.get("@language") for v in _values(node, prop)}


def test_dcat_catalogue_is_public_and_carries_the_dcat_ap_fields(stack):
    published, withdrawn = unique("deid-dcat"), unique("deid-dcat-wd")
    register_published_dataset(stack, published)
    register_published_dataset(stack, withdrawn)
    stack.api("admin").post(f"/api/datasets/{withdrawn}/withdraw").raise_for_status()
    anonymous = httpx.Client(base_url=stack.control_plane.url, timeout=30)
    response = anonymous.get("/api/catalogue.jsonld")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/ld+json")
    document = response.json()
    assert set(document["@context"].values()) >= {DCAT, DCT, FOAF}

    expanded = jsonld.expand(document)  # no remote context: it expands offline
    catalogs = [n for n in expanded if f"{DCAT}Catalog" in n.get(RDF_TYPE, [])]
    assert len(catalogs) == 1
    catalog = catalogs[0]
    for prop in ("title", "description", "publisher"):
        assert _values(catalog, f"{DCT}{prop}"), prop
    assert _languages(catalog, f"{DCT}title") == {"ko", "en"}
    publisher = catalog[f"{DCT}publisher"][0]
    assert f"{FOAF}Agent" in publisher[RDF_TYPE] and publisher[f"{FOAF}name"]
    datasets = catalog[f"{DCAT}dataset"]
    ids = [d[f"{DCT}identifier"][0]["@value"] for d in datasets]
    assert published in ids and withdrawn not in ids
    assert len(ids) == len(catalogue_names(stack))

    required = ("title", "description")  # DCAT-AP mandatory
    recommended = [f"{DCAT}keyword", f"{DCT}publisher", f"{DCT}temporal",
                   f"{DCT}accrualPeriodicity", f"{DCT}license", f"{DCAT}distribution"]
    for node in datasets:
        assert f"{DCAT}Dataset" in node[RDF_TYPE]
        for prop in required:
            assert _values(node, f"{DCT}{prop}"), (node["@id"], prop)
        if node[f"{DCT}identifier"][0]["@value"] != published:
            continue  # other tests' datasets; this one is described by TINY_RECIPE
        for prop in recommended:
            assert _values(node, prop), prop
        assert _languages(node, f"{DCT}title") == {"ko", "en"}
        assert node[f"{DCAT}keyword"] == [{"@value": "test"}]
        assert node[f"{DCT}publisher"][0][f"{FOAF}name"] == [{"@value": "Test institution"}]
        period = node[f"{DCT}temporal"][0]
        assert f"{DCT}PeriodOfTime" in period[RDF_TYPE]
        assert period[f"{DCAT}startDate"][0]["@value"] == "2024-01-01"
        assert period[f"{DCAT}endDate"][0]["@type"] == "http://www.w3.org/2001/XMLSchema#date"
        assert node[f"{DCT}accrualPeriodicity"] == [
            {"@id": "http://publications.europa.eu/resource/authority/frequency/IRREG"}]
        distribution = node[f"{DCAT}distribution"][0]
        assert f"{DCAT}Distribution" in distribution[RDF_TYPE]
        for prop in (f"{DCT}format", f"{DCAT}mediaType", f"{DCT}license", f"{DCAT}accessURL"):
            assert _values(distribution, prop), prop
        licence = distribution[f"{DCT}license"][0]
        assert f"{DCT}LicenseDocument" in licence[RDF_TYPE]


def test_the_example_recipe_describes_every_column_it_keeps():
    recipe = load_recipe((POLICIES_DIR / "deid" / "example-health.yaml").read_text())
    kept = [c for c, spec in recipe.columns.items() if spec["technique"] != "delete"]
    attestation = {"columns_out": kept, "column_types": dict.fromkeys(kept, "string")}
    assert metadata.missing(recipe.catalogue, attestation) == []
    assert set(metadata.texts(recipe.catalogue["title"])) == {"ko", "en"}


@pytest.mark.parametrize("block, word", [
    ("  temporal: {start: 2024-12-31, end: 2024-01-01}\n", "start is after end"),
    ("  accrual_periodicity: sometimes\n", "sometimes"),
    ("  columns: {nope: {description: x}}\n", "nope"),
    ("  publisher: 5\n", "publisher"),
])
def test_a_recipe_catalogue_block_is_checked(block, word):
    with pytest.raises(InvalidInput, match=word):
        load_recipe(UNDESCRIBED + "catalogue:\n" + block)
