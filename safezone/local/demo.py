"""Demo data of the local zone: synthetic raw health records, de-identified by the pipeline.

Everything here is generated from a fixed seed; no real person is in it.
"""

from __future__ import annotations

import io
import logging
from datetime import timedelta

import numpy as np
import pandas as pd
from sqlalchemy import select

from .. import datasets, memberships, projects
from ..config import POLICIES_DIR
from ..deid import pipeline
from ..deid.recipe import load_recipe
from ..errors import Conflict, InvalidTransition
from ..models import Dataset, Project
from ..permissions import ADMIN_SCOPE, STEWARD_SCOPE, Identity
from ..zone import Zone

log = logging.getLogger(__name__)
DEMO_PROJECT = "demo-health"
DEID_DATASET = "deid-health-2024"
RAW_DATASET = "raw-health-2024"
RAW_KEY = "records.csv"
STEWARD = "steward"  # who de-identifies the demo data (its own role)
SIDO = ["서울특별시", "부산광역시", "대구광역시", "인천광역시", "광주광역시", "대전광역시",
        "경기도", "강원특별자치도", "충청북도", "전라남도", "경상북도", "제주특별자치도"]
DIAGNOSES = ["I10", "E11", "J45", "M54", "K21", "F32", "N18", "C50"]
SURNAMES = ["김", "이", "박", "최", "정", "강", "조", "윤"]
GIVEN = ["민준", "서연", "도윤", "하은", "지호", "수아", "예준", "지우"]


def raw_records(rows: int = 3000, seed: int = 2024) -> pd.DataFrame:
    """Identifiable synthetic records (names, resident numbers, phones, ages)."""
    rng = np.random.default_rng(seed)
    birth = pd.to_datetime("1940-01-01") + pd.to_timedelta(rng.integers(0, 30000, rows), "D")
    sex = rng.integers(1, 3, rows)
    rrn = [f"{d:%y%m%d}-{s + (2 if d.year >= 2000 else 0)}{rng.integers(0, 10**6):06d}"
           for d, s in zip(birth, sex, strict=True)]
    return pd.DataFrame({
        "name": [rng.choice(SURNAMES) + rng.choice(GIVEN) for _ in range(rows)],
        "rrn": rrn,
        "phone": [f"010-{rng.integers(1000, 9999)}-{rng.integers(1000, 9999)}"
                  for _ in range(rows)],
        "birth_date": birth.strftime("%Y-%m-%d"),
        "sex": np.where(sex == 1, "M", "F"),
        "sido": rng.choice(SIDO, rows),
        "diagnosis": rng.choice(DIAGNOSES, rows),
        "visits": rng.poisson(4, rows),
        "cost_krw": (rng.lognormal(13, 0.8, rows)).round(-3).astype(int),
    })


def _put(zone: Zone, bucket: str, key: str, body: bytes, content_type: str) -> None:
    zone.broker.s3.put_object(bucket, key, io.BytesIO(body), len(body),
                              content_type=content_type)


def seed(zone: Zone, pseudonym_key: bytes, admin_name: str = "admin", member: str = "alice",
         member_days: int = 90) -> None:
    """Create the demo project, the raw upload, the de-identified dataset made from it by
    the pipeline with ``policies/deid/example-health.yaml``, and alice's membership
    (idempotent)."""
    admin = Identity(admin_name, "user", frozenset({ADMIN_SCOPE}))
    steward = Identity(STEWARD, "user", frozenset({STEWARD_SCOPE}))
    with zone.sessions() as db:
        have_project = db.scalar(select(Project).where(Project.name == DEMO_PROJECT))
        have = {d.name: d.attestation for d in db.scalars(select(Dataset))}
    if not have_project:
        projects.create_project(zone, admin, DEMO_PROJECT, "Synthetic health 2024 / 합성 보건")
    if RAW_DATASET not in have:
        datasets.register_dataset(zone, steward, RAW_DATASET, "raw",
                                  description="Identifiable synthetic records (원본)")
        _put(zone, RAW_DATASET, RAW_KEY, raw_records().to_csv(index=False).encode(),
             "text/csv")
    if DEID_DATASET not in have:
        recipe = load_recipe((POLICIES_DIR / "deid" / "example-health.yaml").read_text())
        facts = pipeline.run(zone, steward, recipe, RAW_DATASET, RAW_KEY, DEID_DATASET,
                             pseudonym_key)
        log.info("de-identified %s rows into %s (k=%s, %s suppressed)", facts["rows_in"],
                 DEID_DATASET, facts["k_achieved"], facts["rows_suppressed"])
        datasets.change_status(zone, admin, DEID_DATASET, "publish")
        projects.attach_dataset(zone, admin, DEMO_PROJECT, DEID_DATASET)
    elif not have[DEID_DATASET]:
        log.warning("%s predates attestations and will be left out of sessions: remove the "
                    "state folder (.cache/zone) to seed it again", DEID_DATASET)
    if member not in memberships.usable_projects(zone, admin, member) or not have_project:
        try:
            memberships.approve_membership(zone, admin, DEMO_PROJECT, member,
                                           zone.now() + timedelta(days=member_days))
        except (Conflict, InvalidTransition) as exc:
            log.info("demo membership unchanged: %s", exc)
