"""Request and response bodies of the REST API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProjectIn(Body):
    name: str = Field(max_length=200)
    title: str = Field(default="", max_length=200)
    ends_on: date | None = None  # the project's end date (safezone/destruction)


class TerminalsIn(Body):
    enabled: StrictBool  # true or false, not "yes" or 1


class DatasetIn(Body):
    name: str = Field(max_length=200)
    classification: str
    prefix: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=2000)


class AttachIn(Body):
    dataset: str = Field(max_length=200)


class MembershipRequestIn(Body):
    justification: str = Field(default="", max_length=2000)


class ApproveIn(Body):
    expires_at: datetime


class ReasonIn(Body):
    reason: str = Field(default="", max_length=2000)


class SessionIn(Body):
    user: str = Field(max_length=64)
    project: str = Field(max_length=200)
    server_name: str = Field(default="", max_length=64)


class ExportFileIn(Body):
    path: str = Field(max_length=600)
    group: str = Field(default="", max_length=100)
    justification: str = Field(default="", max_length=4000)


class ExportIn(Body):
    project: str = Field(max_length=200)
    title: str = Field(default="", max_length=200)
    files: list[ExportFileIn] = Field(max_length=200)


class ExportFilesIn(Body):
    files: list[ExportFileIn] = Field(max_length=200)


class DryRunIn(Body):
    """The checks on outbox files, without a request; findings explained in ``language``."""

    project: str = Field(max_length=200)
    files: list[str] = Field(max_length=200)
    language: Literal["ko", "en"] = "ko"


class VoteIn(Body):
    file_id: int
    decision: str
    comment: str = Field(default="", max_length=4000)
    override_reason: str = Field(default="", max_length=2000)


class DownloadIn(Body):
    token: str = Field(max_length=100)
