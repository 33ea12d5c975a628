"""The MLflow side of `python -m training`: on when MLFLOW_TRACKING_URI is set.

`train` then also logs and registers the run, `promote` / `rollback` move the `champion` alias (not
registry.json), `challenger` sets the `challenger` alias, and `mlflow-import-default` registers the shipped
default model. mlflow is imported only on these paths: it takes seconds to import.
"""

from __future__ import annotations

import argparse
import getpass
import os
from pathlib import Path
from typing import Any

from training import registry, store

TRACKING_ENV = "MLFLOW_TRACKING_URI"
DEFAULT_MODEL_NAME = "german-credit"  # the worker's STREAMER_MLFLOW_MODEL_NAME default


def tracking_uri() -> str | None:
    return os.environ.get(TRACKING_ENV) or None


def add_mlflow_commands(
    commands: Any,  # argparse's private _SubParsersAction
    train: argparse.ArgumentParser,
    promote: argparse.ArgumentParser,
    rollback: argparse.ArgumentParser,
    models_dir: Path,
) -> None:
    for command in (train, promote, rollback):
        _registry_options(command)
    challenger = commands.add_parser("challenger", help="MLflow: set the `challenger` alias on an artifact")
    challenger.add_argument("artifact", help="artifact id (german-credit-gbm-2) or an unambiguous version")
    _registry_options(challenger)
    challenger.set_defaults(run=_challenger)
    importer = commands.add_parser(
        "mlflow-import-default", help="MLflow: register the champion of --models (the shipped default model)"
    )
    importer.add_argument("--models", type=Path, default=models_dir)
    _registry_options(importer)
    importer.set_defaults(run=_import_default)


def log_trained(uri: str, args: argparse.Namespace, key: str, params: dict[str, object]) -> tuple[str, str]:
    """Log and register a trained artifact; champion when it is the first or --promote. (champion, hint)"""
    from training import mlflow_store  # noqa: PLC0415  (slow import, MLflow path only)

    mlf = mlflow_store.client(uri)
    version = mlflow_store.log_and_register(mlf, args.out, key, params, args.registered_model)
    print(f"mlflow     {args.registered_model} version {version.version} (run {version.run_id})")
    current = mlflow_store.alias_version(mlf, args.registered_model, mlflow_store.CHAMPION)
    if args.promote or current is None:
        reason = args.reason or ("train --promote" if args.promote else "first model in the registry")
        mlflow_store.promote(mlf, args.registered_model, key, _actor(args, reason), store.now())
        return key, " (MLflow alias champion)"
    return str(current.tags.get("artifact_id")), f" (MLflow, unchanged; to serve the new model: promote {key})"


def mlflow_promote(uri: str, args: argparse.Namespace) -> int:
    from training import mlflow_store  # noqa: PLC0415  (slow import, MLflow path only)

    mlf = mlflow_store.client(uri)
    after, before = mlflow_store.promote(mlf, args.registered_model, args.artifact, _actor(args), store.now())
    print(f"champion   {after}" + (" (already the champion)" if after == before else f" (was {before})")
          + f" in MLflow {args.registered_model}")
    return 0


def mlflow_rollback(uri: str, args: argparse.Namespace) -> int:
    from training import mlflow_store  # noqa: PLC0415  (slow import, MLflow path only)

    mlf = mlflow_store.client(uri)
    after, before = mlflow_store.rollback(mlf, args.registered_model, _actor(args), store.now())
    print(f"champion   {after} (rolled back from {before}) in MLflow {args.registered_model}")
    return 0


def _challenger(args: argparse.Namespace) -> int:
    from training import mlflow_store  # noqa: PLC0415  (slow import, MLflow path only)

    mlf = mlflow_store.client(_required_uri())
    key = mlflow_store.set_challenger(mlf, args.registered_model, args.artifact, _actor(args), store.now())
    print(f"challenger {key} in MLflow {args.registered_model}")
    return 0


def _import_default(args: argparse.Namespace) -> int:
    """Register the file registry's champion; it becomes MLflow's champion only if there is none yet."""
    from training import mlflow_store  # noqa: PLC0415  (slow import, MLflow path only)

    mlf = mlflow_store.client(_required_uri())
    key = store.read_registry(args.models)["champion"]
    if key is None:
        raise registry.RegistryError(f"{args.models} has no champion to import")
    store.verify_file(args.models, store.read_registry(args.models), key)
    version = mlflow_store.log_and_register(mlf, args.models, key, {"imported_from": str(args.models)},
                                            args.registered_model)
    print(f"mlflow     {key} is {args.registered_model} version {version.version}")
    if mlflow_store.alias_version(mlf, args.registered_model, mlflow_store.CHAMPION) is None:
        mlflow_store.promote(mlf, args.registered_model, key, _actor(args, args.reason or "default model"),
                             store.now())
        print(f"champion   {key} in MLflow {args.registered_model}")
    return 0


def _registry_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--registered-model", default=DEFAULT_MODEL_NAME,
                         help=f"MLflow registered model (default {DEFAULT_MODEL_NAME})")
    command.add_argument("--by", help="MLflow: who makes the change (default: $USER)")
    command.add_argument("--reason", default="", help="MLflow: why, recorded with the change")


def _actor(args: argparse.Namespace, reason: str | None = None) -> Any:
    from training import mlflow_store  # noqa: PLC0415  (slow import, MLflow path only)

    return mlflow_store.Actor(by=args.by or getpass.getuser(), reason=reason if reason is not None else args.reason)


def _required_uri() -> str:
    uri = tracking_uri()
    if uri is None:
        raise registry.RegistryError(f"set {TRACKING_ENV} to the MLflow tracking server")
    return uri
