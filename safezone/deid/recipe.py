"""Recipes: YAML validated against ``policies/deid/recipe.schema.json``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from ..catalogue import metadata
from ..config import POLICIES_DIR
from ..errors import InvalidInput


@dataclass(frozen=True)
class Recipe:
    columns: dict[str, dict[str, Any]]
    k: int
    l: int  # noqa: E741 - the name the literature uses
    sha256: str
    source: str
    catalogue: dict[str, Any] | None = None  # the dataset's catalogue entry, if given here

    def with_role(self, role: str) -> list[str]:
        return [c for c, spec in self.columns.items()
                if spec.get("role") == role and spec["technique"] != "delete"]


@cache
def _schema(policies_dir: Path) -> dict[str, Any]:
    return json.loads((policies_dir / "deid" / "recipe.schema.json").read_text())


def load_recipe(text: str, policies_dir: Path = POLICIES_DIR) -> Recipe:
    """Parse and validate; every problem is one InvalidInput sentence."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"recipe is not valid YAML: {exc}") from None
    if isinstance(doc, dict) and "catalogue" in doc:
        doc["catalogue"] = metadata.dates_as_text(doc["catalogue"])
    try:
        jsonschema.validate(doc, _schema(policies_dir))
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "recipe"
        raise InvalidInput(f"recipe {where}: {exc.message}") from None
    for name, spec in doc["columns"].items():
        needs = {"generalise": "to", "topcode": "at", "bottomcode": "at"}.get(spec["technique"])
        if needs and needs not in spec:
            raise InvalidInput(f"recipe column {name}: {spec['technique']} needs '{needs}'")
        if spec.get("to") in {"age_band", "range"} and "width" not in spec:
            raise InvalidInput(f"recipe column {name}: {spec['to']} needs 'width'")
        if spec["technique"] == "aggregate" and spec.get("role") == "quasi_identifier":
            raise InvalidInput(f"recipe column {name}: an aggregated column cannot be a "
                               "quasi-identifier")
        if spec.get("to") == "age_band" and "reference_year" not in spec:
            raise InvalidInput(f"recipe column {name}: age_band needs 'reference_year'")
    if "catalogue" in doc:
        metadata.check_period(doc["catalogue"].get("temporal", {}))
        unknown = sorted(set(doc["catalogue"].get("columns", {})) - set(doc["columns"]))
        if unknown:
            raise InvalidInput(f"recipe catalogue: column {', '.join(unknown)} is not a column "
                               "of the recipe (레시피에 없는 열)")
    return Recipe(doc["columns"], int(doc.get("k", 5)), int(doc.get("l", 1)),
                  hashlib.sha256(text.encode()).hexdigest(), text, doc.get("catalogue"))
