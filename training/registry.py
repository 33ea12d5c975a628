"""`registry.json`: which artifacts exist, which one is the champion the worker serves, and how it got there.

Pure functions over the parsed document; `training.store` does the (atomic, locked) file I/O.

    {"champion": "german-credit-gbm-1",
     "challengers": [],
     "history": [{"event": "promote", "champion": "german-credit-logreg-1", "previous": null, "at": "..."},
                 {"event": "promote", "champion": "german-credit-gbm-1",
                  "previous": "german-credit-logreg-1", "at": "..."}],
     "models": {"german-credit-logreg-1": {"name": ..., "version": ..., "file": ..., "sha256": ...,
                                           "metrics": {...}, "model": "logreg", ...}, ...}}

`history` records every change of champion. Replaying it (a promotion pushes, a rollback pops) gives the
champion stack, so `rollback` returns to the champion before the current one, and repeated rollbacks walk
further back. The worker reads only `champion` and `models[champion]`.
"""

from __future__ import annotations

import json
from typing import Final, Literal, NotRequired, TypedDict

FILE_NAME: Final = "registry.json"


class ModelEntry(TypedDict):
    name: str
    version: str
    file: str
    sha256: str
    metrics: dict[str, float]
    model: NotRequired[str]
    trained_at: NotRequired[str]
    contributions: NotRequired[str]
    protected_features: NotRequired[list[str]]
    card: NotRequired[str]


class ChampionChange(TypedDict):
    event: Literal["promote", "rollback"]
    champion: str
    previous: str | None
    at: str


class Registry(TypedDict):
    champion: str | None
    challengers: list[str]
    history: list[ChampionChange]
    models: dict[str, ModelEntry]


class RegistryError(ValueError):
    """registry.json is malformed, or a change to it would rewrite history or has nowhere to go."""


def empty() -> Registry:
    return {"champion": None, "challengers": [], "history": [], "models": {}}


def parse(text: str) -> Registry:
    """A registry document, checked for the shape the worker relies on; a file without history is accepted."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise RegistryError(f"registry.json is not JSON: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("models"), dict):
        raise RegistryError('registry.json must be an object with a "models" object')
    models, champion = document["models"], document.get("champion")
    if champion is not None and champion not in models:
        raise RegistryError(f"registry.json names champion {champion!r}, which is not among its models")
    challengers, history = document.get("challengers", []), document.get("history", [])
    if not isinstance(challengers, list) or any(c not in models for c in challengers):
        raise RegistryError("registry.json challengers must be a list of registered models")
    if not isinstance(history, list) or any(
        not isinstance(e, dict) or e.get("champion") not in models for e in history
    ):
        raise RegistryError("registry.json history must be a list of champion changes naming registered models")
    return {"champion": champion, "challengers": challengers, "history": history, "models": models}


def register(registry: Registry, key: str, entry: ModelEntry, promote: bool, at: str) -> Registry:
    """`registry` with `entry` under `key`; promoted if `promote` or if there is no champion yet.

    A key is a released version: registering different bytes under an existing key is refused.
    """
    existing = registry["models"].get(key)
    if existing is not None and existing["sha256"] != entry["sha256"]:
        raise RegistryError(
            f"{key} is already registered with sha256 {existing['sha256']}; the new artifact differs "
            f"({entry['sha256']}). Released versions are immutable: choose another --version."
        )
    updated: Registry = {**registry, "models": {**registry["models"], key: entry}}
    if promote or registry["champion"] is None:
        return promote_to(updated, key, at)
    return updated


def promote_to(registry: Registry, key: str, at: str) -> Registry:
    """`key` as champion, recorded in history; unchanged if it already is the champion."""
    if key not in registry["models"]:
        raise RegistryError(f"{key!r} is not registered; known: {sorted(registry['models'])}")
    if registry["champion"] == key:
        return registry
    change: ChampionChange = {"event": "promote", "champion": key, "previous": registry["champion"], "at": at}
    return _with_champion(registry, change)


def rollback(registry: Registry, at: str) -> Registry:
    """The champion before the current one back in place, recorded in history."""
    stack = champion_stack(registry)
    if len(stack) < 2:
        raise RegistryError("no previous champion to roll back to")
    change: ChampionChange = {"event": "rollback", "champion": stack[-2], "previous": registry["champion"], "at": at}
    return _with_champion(registry, change)


def champion_stack(registry: Registry) -> list[str]:
    """Champions in the order they took over, the current one last: history replayed, rollbacks popped."""
    stack: list[str] = []
    for change in registry["history"]:
        if change["event"] == "rollback":
            stack = stack[:-1]
            if not stack or stack[-1] != change["champion"]:  # hand-edited history: trust the record
                stack.append(change["champion"])
        else:
            previous = change.get("previous")
            if previous is not None and (not stack or stack[-1] != previous):
                stack.append(previous)  # champion before history was kept
            stack.append(change["champion"])
    champion = registry["champion"]
    if champion is not None and (not stack or stack[-1] != champion):
        stack.append(champion)  # a registry written before history was kept
    return stack


def resolve(registry: Registry, reference: str) -> str:
    """The artifact id for `reference`: an id as registered, or a bare version naming exactly one model."""
    if reference in registry["models"]:
        return reference
    matches = sorted(key for key, entry in registry["models"].items() if str(entry["version"]) == reference)
    if len(matches) == 1:
        return matches[0]
    known = sorted(registry["models"])
    if matches:
        raise RegistryError(f"version {reference!r} is ambiguous: {matches}; give the artifact id")
    raise RegistryError(f"no registered model {reference!r}; known: {known}")


def dump(registry: Registry) -> str:
    ordered = {
        "champion": registry["champion"],
        "challengers": registry["challengers"],
        "history": registry["history"],
        "models": dict(sorted(registry["models"].items())),
    }
    return json.dumps(ordered, indent=2) + "\n"


def _with_champion(registry: Registry, change: ChampionChange) -> Registry:
    challengers = [c for c in registry["challengers"] if c != change["champion"]]
    return {
        **registry,
        "champion": change["champion"],
        "challengers": challengers,
        "history": [*registry["history"], change],
    }
