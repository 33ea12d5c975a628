"""Generate the committed JSON Schema files that non-Python producers and consumers validate against."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from schemas.application import LoanApplication
from schemas.decision import Decision

JSON_DIR = Path(__file__).parent / "json"
SCHEMA_FILES: dict[str, type[BaseModel]] = {
    "loan-application.v1.json": LoanApplication,
    "decision.v1.json": Decision,
}


def render(model: type[BaseModel]) -> str:
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **model.model_json_schema()}
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_all(directory: Path = JSON_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, model in SCHEMA_FILES.items():
        path = directory / filename
        path.write_text(render(model), encoding="utf-8")
        written.append(path)
    return written
