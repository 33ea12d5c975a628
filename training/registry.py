"""`registry.json`: which model artifacts exist and which one is the champion the worker serves.

Pure functions over the parsed document; `training.export` does the file I/O.
"""

from __future__ import annotations

import json
from typing import Final, TypedDict

FILE_NAME: Final = "registry.json"


class ModelEntry(TypedDict):
    name: str
    version: str
    file: str
    sha256: str
    metrics: dict[str, float]


class Registry(TypedDict):
    champion: str | None
    models: dict[str, ModelEntry]


class RegistryError(ValueError):
    """registry.json is malformed, or a change to it would rewrite history."""


def empty() -> Registry:
    return {"champion": None, "models": {}}


def parse(text: str) -> Registry:
    """A registry document, checked for the shape the worker relies on."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise RegistryError(f"registry.json is not JSON: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("models"), dict):
        raise RegistryError('registry.json must be an object with a "models" object')
    champion = document.get("champion")
    if champion is not None and champion not in document["models"]:
        raise RegistryError(f"registry.json names champion {champion!r}, which is not among its models")
    return {"champion": champion, "models": document["models"]}


def register(registry: Registry, key: str, entry: ModelEntry, promote: bool) -> Registry:
    """`registry` with `entry` under `key`; champion if `promote` or if there is no champion yet.

    A key is a released version: registering different bytes under an existing key is refused.
    """
    existing = registry["models"].get(key)
    if existing is not None and existing["sha256"] != entry["sha256"]:
        raise RegistryError(
            f"{key} is already registered with sha256 {existing['sha256']}; the new artifact differs "
            f"({entry['sha256']}). Released versions are immutable: choose another --version."
        )
    champion = key if promote or registry["champion"] is None else registry["champion"]
    return {"champion": champion, "models": {**registry["models"], key: entry}}


def dump(registry: Registry) -> str:
    ordered = {"champion": registry["champion"], "models": dict(sorted(registry["models"].items()))}
    return json.dumps(ordered, indent=2) + "\n"
