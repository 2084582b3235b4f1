"""The local zone's demo seed goes through the real pipeline and is idempotent."""

from __future__ import annotations

from safezone import datasets, memberships
from safezone.deid import pipeline
from safezone.local.demo import DEID_DATASET, DEMO_PROJECT, RAW_DATASET, seed
from safezone.models import DatasetStatus
from safezone.permissions import ADMIN_SCOPE, Identity

ADMIN = Identity("admin", "user", frozenset({ADMIN_SCOPE}))
KEY = b"demo-key-from-the-state-folder-0123"


def test_demo_seed_publishes_an_attested_dataset_once(zone):
    seed(zone, KEY)
    deid = datasets.get_location(zone, DEID_DATASET)
    assert deid.status is DatasetStatus.PUBLISHED
    assert deid.attestation["k_achieved"] >= 5 and deid.attestation["l_achieved"] >= 2
    assert deid.attestation["input"]["bucket"] == RAW_DATASET
    assert {"name", "phone"} <= set(deid.attestation["columns_dropped"])
    assert pipeline.verify(zone, ADMIN, DEID_DATASET) == []
    assert DEMO_PROJECT in memberships.usable_projects(zone, ADMIN, "alice")
    seed(zone, KEY)  # a restart changes nothing
    assert datasets.get_location(zone, DEID_DATASET).attestation == deid.attestation
    assert len([d for d in datasets.list_datasets(zone, ADMIN) if d.name == DEID_DATASET]) == 1
