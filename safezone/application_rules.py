"""The rules of applying for access, read from ``policies/applications.yaml``: the period's
limit, the research plan's kinds and size, the security pledge and its digest, and the
messages of a refused field (English; the pages translate them)."""

from __future__ import annotations

import calendar
import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from .clock import end_of_day
from .config import POLICIES_DIR
from .errors import InvalidInput, SafezoneError

# a refused field: code -> sentence (placeholders filled from the problem's params); the
# pages show them translated, so application_pages lists each for extraction
MESSAGES: dict[str, str] = {
    "purpose_short": "Describe the research purpose in at least %(min)s characters.",
    "purpose_long": "The research purpose is %(length)s characters long; the limit is "
                    "%(max)s.",
    "datasets_none": "Choose at least one dataset.",
    "datasets_many": "Choose at most %(max)s datasets.",
    "dataset_unknown": "Not a published dataset of the catalogue: %(names)s.",
    "until_missing": "Give the date your access should end.",
    "until_format": "Write the end date as YYYY-MM-DD.",
    "until_past": "The end date must be after today.",
    "until_far": "The end date may be at most %(months)s months ahead (%(latest)s).",
    "fellows_many": "Name at most %(max)s fellow analysts.",
    "fellow_invalid": "Not a valid user name: %(names)s.",
    "fellow_unknown": "No such user: %(names)s. Fellow analysts must already have an "
                      "account.",
    "fellow_self": "You are the applicant: list only the others.",
    "pledge_missing": "Accept the security pledge to apply.",
    "pledge_changed": "The security pledge has changed since the form was opened: read it "
                      "again and accept it.",
    "plan_large": "The research plan is %(size)s bytes; the limit is %(max)s bytes.",
    "plan_kind": "A research plan must be one of: %(kinds)s.",
    "plan_content": "The file's content is not what its extension .%(ext)s says.",
    "plan_empty": "The research plan file is empty.",
    "project_unknown": "There is no active project named %(name)s.",
    "expires_missing": "Give the date access ends, as YYYY-MM-DD.",
    "expires_past": "The expiry must be in the future.",
    "expires_beyond": "The expiry may not pass the end of the period applied for "
                      "(%(end)s).",
    "target_missing": "Choose an existing project or name a new one.",
    "target_both": "Choose either an existing project or a new one, not both.",
    "project_exists": "A project named %(name)s already exists.",
    "project_name": "Use 2-40 lowercase letters, digits and single hyphens, starting with a "
                    "letter.",
    "title_long": "The title may be at most 200 characters.",
    "datasets_gone": "No longer published, so it cannot be attached: %(names)s.",
    "reason_missing": "Give the reason; the applicant will read it.",
    "reason_long": "The reason is %(length)s characters long; the limit is %(max)s.",
}


@dataclass(frozen=True)
class Problem:
    """One refused field of a form or an API body."""

    field: str
    code: str
    params: dict[str, Any] = field(default_factory=dict)

    def english(self) -> str:
        return MESSAGES[self.code] % self.params


class ApplicationInvalid(InvalidInput):
    """The fields that were refused (422); nothing was stored."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.field}: {p.english()}" for p in problems)
                         + " (신청 내용 오류)")

    def by_field(self) -> dict[str, list[Problem]]:
        found: dict[str, list[Problem]] = {}
        for problem in self.problems:
            found.setdefault(problem.field, []).append(problem)
        return found


class TooLarge(SafezoneError):
    status_code = 413


class HubUnavailable(SafezoneError):
    status_code = 503


@dataclass(frozen=True)
class Pledge:
    version: str
    ko: str
    en: str

    @property
    def sha256(self) -> str:
        """What an application records of the text it accepted: version and both texts."""
        canonical = json.dumps({"version": self.version, "ko": self.ko, "en": self.en},
                               sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def text(self, language: str) -> str:
        return self.ko if language == "ko" else self.en


@dataclass(frozen=True)
class Rules:
    max_months: int
    purpose_min: int
    purpose_max: int
    datasets_max: int
    fellows_max: int
    plan_bucket: str
    plan_prefix: str
    plan_max_bytes: int
    plan_kinds: dict[str, str]  # extension -> signature kind
    pledge: Pledge

    def latest_end(self, now: datetime) -> date:
        """The last end date an application made ``now`` may ask for."""
        return add_months(now.date(), self.max_months)

    def public(self) -> dict[str, Any]:
        """What an applicant needs to know before applying (``GET /api/applications/pledge``)."""
        return {"pledge": {"version": self.pledge.version, "sha256": self.pledge.sha256,
                           "ko": self.pledge.ko, "en": self.pledge.en},
                "max_months": self.max_months, "purpose_chars": [self.purpose_min,
                                                                 self.purpose_max],
                "datasets_max": self.datasets_max, "fellows_max": self.fellows_max,
                "plan_max_bytes": self.plan_max_bytes, "plan_kinds": sorted(self.plan_kinds)}


@cache
def load_rules(policies_dir: Path = POLICIES_DIR) -> Rules:
    raw = yaml.safe_load((policies_dir / "applications.yaml").read_text())
    plan, pledge = raw["plan"], raw["pledge"]
    return Rules(
        max_months=int(raw["period"]["max_months"]),
        purpose_min=int(raw["purpose"]["min_chars"]),
        purpose_max=int(raw["purpose"]["max_chars"]),
        datasets_max=int(raw["datasets"]["max"]), fellows_max=int(raw["fellows"]["max"]),
        plan_bucket=plan["bucket"], plan_prefix=plan["prefix"],
        plan_max_bytes=int(plan["max_bytes"]), plan_kinds=dict(plan["kinds"]),
        pledge=Pledge(str(pledge["version"]), pledge["ko"].strip(), pledge["en"].strip()))


def add_months(day: date, months: int) -> date:
    """The same day ``months`` calendar months later (the month's last day if shorter)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def end_of(day: date) -> datetime:
    """The last second of ``day`` where the zone is: access "until" a date lasts all of it."""
    return end_of_day(day)


def parse_day(value: Any) -> date | None:
    """A YYYY-MM-DD date, or None when it is not one."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        return None


SIGNATURES = {"pdf": (b"%PDF-",), "zip": (b"PK\x03\x04",),
              "ole": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",)}


def plan_kind_problem(name: str, data: bytes, rules: Rules) -> Problem | None:
    """Whether a research plan's name and first bytes agree with an allowed kind."""
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    kind = rules.plan_kinds.get(extension)
    if kind is None:
        return Problem("plan", "plan_kind", {"kinds": ", ".join(sorted(rules.plan_kinds))})
    if kind == "text":
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = "\0"
        ok = "\0" not in text
    else:
        ok = data.startswith(SIGNATURES[kind])
    return None if ok else Problem("plan", "plan_content", {"ext": extension})


SAFE_NAME = re.compile(r"[^\w.\-가-힣 ]+")


def safe_file_name(name: str) -> str:
    """The name a plan is downloaded under: its base name, no separators or controls."""
    base = unicodedata.normalize("NFC", name.replace("\\", "/").rsplit("/", 1)[-1])
    cleaned = SAFE_NAME.sub("_", base).strip(" .") or "plan"
    stem, dot, extension = cleaned.rpartition(".")
    return (stem[:100] + dot + extension[:10]) if dot else cleaned[:110]


def split_names(value: Any) -> list[str]:
    """Fellow analysts as typed: a list, or names separated by commas, spaces or lines."""
    items = value if isinstance(value, list | tuple) else re.split(r"[\s,;]+", str(value or ""))
    return [str(item).strip() for item in items if str(item).strip()]
