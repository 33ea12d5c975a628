"""`python -m training train|evaluate|promote|rollback|challenger|mlflow-import-default`: the data scientist's
workflow over onnx_models/, and over an MLflow registry when MLFLOW_TRACKING_URI is set."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from schemas import PROTECTED_FEATURES
from training import evaluation, export, gate, registry, store
from training.crossval import REPEATS, SPLITS, cross_validate
from training.data import DEFAULT_DATA, DataError, load
from training.mlflow_cli import add_mlflow_commands, log_trained, mlflow_promote, mlflow_rollback, tracking_uri
from training.pipeline import MODELS, features_including, kinds_of, make
from training.report import report_lines
from training.train import Options, train

MODELS_DIR = Path("onnx_models")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (DataError, export.ExportError, registry.RegistryError, ValueError) as error:
        print(f"{args.command} failed: {error}", file=sys.stderr)
        return 1


def _train(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    options = Options(
        model=args.model,
        seed=args.seed,
        version=args.version,
        include_protected=tuple(args.include_protected),
        min_auc=args.min_auc,
        cv_splits=args.cv_splits,
        cv_repeats=args.cv_repeats,
        jobs=args.jobs,
        promote=args.promote,
        card=not args.no_card,
    )
    run = train(args.data, args.out, options, trained_at=export.build_date(os.environ))
    artifact, metrics = run.artifact, run.artifact.metrics
    print(f"model      {artifact.key} (seed {artifact.seed}, trained_at {artifact.trained_at})")
    if artifact.protected_features:
        print(f"WARNING    protected attributes are inputs: {', '.join(artifact.protected_features)}")
    print(
        f"auc        train {metrics['train_auc']:.4f}, cv {options.cv_repeats}x{options.cv_splits} "
        f"{metrics['cv_auc_mean']:.4f} +/- {metrics['cv_auc_std']:.4f}"
    )
    for line in run.report.lines():
        print(f"gate       {line}")
    print(f"file       {run.path}")
    print(f"sha256     {artifact.sha256}")
    if run.evaluation is not None:
        print(f"card       {run.path.with_suffix('.md')}")
    champion = store.read_registry(args.out)["champion"]
    hint = "" if champion == artifact.key else f" (unchanged; to serve the new model: promote {artifact.key})"
    if (uri := tracking_uri()) is not None:
        champion, hint = log_trained(uri, args, artifact.key, _train_params(args, options))
    print(f"champion   {champion}{hint}")
    print(f"wall time  {time.perf_counter() - started:.2f} s")
    return 0


def _train_params(args: argparse.Namespace, options: Options) -> dict[str, object]:
    return {
        "model": options.model, "seed": options.seed, "version": options.version,
        "include_protected": ",".join(options.include_protected), "min_auc": options.min_auc,
        "cv_splits": options.cv_splits, "cv_repeats": options.cv_repeats, "data": str(args.data),
        "data_sha256": export.sha256_of(args.data),
    }


def _evaluate(args: argparse.Namespace) -> int:
    frame = load(args.data)
    source = {"path": str(args.data), "sha256": export.sha256_of(args.data)}
    if args.model in MODELS:
        features = features_including(args.include_protected)
        pipeline = make(args.model, features, args.seed, kinds_of(frame, features))
        cv = cross_validate(
            pipeline, frame, features, seed=args.seed, splits=args.cv_splits, repeats=args.cv_repeats, jobs=args.jobs
        )
        result = evaluation.from_cross_validation(frame, cv, args.model, source)
    else:
        result = _evaluate_artifact(args, frame, source)
    for line in report_lines(result):
        print(line)
    destination = args.json or Path(f"evaluation-{args.model}.json")
    destination.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    print(f"\njson       {destination}")
    return 0


def _evaluate_artifact(args: argparse.Namespace, frame: pd.DataFrame, source: dict[str, str]) -> evaluation.Evaluation:
    document = store.read_registry(args.models)
    key = registry.resolve(document, args.model)
    store.verify_file(args.models, document, key)
    path = args.models / document["models"][key]["file"]
    sidecar = json.loads(path.with_suffix(".json").read_text()) if path.with_suffix(".json").exists() else {}
    notes = []
    if sidecar.get("training_data_sha256") == source["sha256"]:
        notes.append("IN-SAMPLE: this is the artifact's own training data, so these numbers are optimistic")
    probability = evaluation.artifact_probability(path, frame)
    return evaluation.from_predictions(frame, probability, key, source, notes, seed=args.seed)


def _promote(args: argparse.Namespace) -> int:
    if (uri := tracking_uri()) is not None:
        return mlflow_promote(uri, args)
    before = store.read_registry(args.models)["champion"]
    document = store.promote(args.models, args.artifact)
    after = str(document["champion"])
    print(f"champion   {after}" + (" (already the champion)" if after == before else f" (was {before})"))
    protected = document["models"][after].get("protected_features", [])
    if protected:
        print(f"WARNING: the champion uses protected attributes as inputs: {', '.join(protected)}", file=sys.stderr)
    return 0


def _rollback(args: argparse.Namespace) -> int:
    if (uri := tracking_uri()) is not None:
        return mlflow_rollback(uri, args)
    before = store.read_registry(args.models)["champion"]
    after = store.rollback(args.models)["champion"]
    print(f"champion   {after} (rolled back from {before})")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train_command = commands.add_parser("train", help="fit, cross-validate, export behind the gate, write the card")
    _data_option(train_command)
    _model_options(train_command)
    train_command.add_argument("--model", choices=MODELS, default="logreg")
    train_command.add_argument("--out", type=Path, default=MODELS_DIR, help="model directory (default onnx_models/)")
    train_command.add_argument("--version", default="1", help="artifact version; released versions are immutable")
    train_command.add_argument("--min-auc", type=float, default=gate.DEFAULT_MIN_AUC, help="gate: CV AUC floor")
    train_command.add_argument("--promote", action="store_true", help="make it the champion even if there is one")
    train_command.add_argument("--no-card", action="store_true", help="skip the model card and plots")
    train_command.set_defaults(run=_train)

    evaluate_command = commands.add_parser("evaluate", help="metrics, calibration, policy confusion and fairness")
    evaluate_command.add_argument("model", help=f"a model family ({', '.join(MODELS)}) or a registered artifact id")
    _data_option(evaluate_command)
    _model_options(evaluate_command)
    evaluate_command.add_argument("--models", type=Path, default=MODELS_DIR, help="model directory for artifact ids")
    evaluate_command.add_argument("--json", type=Path, help="where to write the JSON (default evaluation-MODEL.json)")
    evaluate_command.set_defaults(run=_evaluate)

    promote_command = commands.add_parser("promote", help="make a registered artifact the champion")
    promote_command.add_argument("artifact", help="artifact id (german-credit-gbm-2) or an unambiguous version")
    promote_command.add_argument("--models", type=Path, default=MODELS_DIR)
    promote_command.set_defaults(run=_promote)

    rollback_command = commands.add_parser("rollback", help="return to the previous champion")
    rollback_command.add_argument("--models", type=Path, default=MODELS_DIR)
    rollback_command.set_defaults(run=_rollback)
    add_mlflow_commands(commands, train_command, promote_command, rollback_command, MODELS_DIR)
    return parser


def _data_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="German-credit or flat-feature .csv/.parquet (default: vendored)",
    )


def _model_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--seed", type=int, default=42, help="seed of the CV splits and the model (default 42)")
    command.add_argument(
        "--include-protected",
        nargs="+",
        default=[],
        choices=sorted(PROTECTED_FEATURES),
        metavar="ATTR",
        help=f"also use these protected attributes as inputs ({', '.join(sorted(PROTECTED_FEATURES))})",
    )
    command.add_argument("--cv-splits", type=int, default=SPLITS, help=f"k of repeated k-fold CV (default {SPLITS})")
    command.add_argument("--cv-repeats", type=int, default=REPEATS, help=f"CV repeats (default {REPEATS})")
    command.add_argument("--jobs", type=int, default=1, help="CV folds fitted in parallel (default 1)")


if __name__ == "__main__":
    sys.exit(main())
