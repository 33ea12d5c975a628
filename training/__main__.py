"""`python -m training train ...`: retrain and export a model artifact into onnx_models/."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from training import export, registry
from training.data import DEFAULT_DATA, DataError
from training.train import MODELS, train


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    started = time.perf_counter()
    try:
        run = train(
            args.data,
            args.out,
            seed=args.seed,
            version=args.version,
            promote=args.promote,
            trained_at=export.build_date(os.environ),
            model=args.model,
        )
    except (DataError, export.ExportError, registry.RegistryError) as error:
        print(f"training failed: {error}", file=sys.stderr)
        return 1
    artifact, metrics = run.artifact, run.artifact.metrics
    print(f"model      {artifact.key} (seed {artifact.seed}, trained_at {artifact.trained_at})")
    print(
        f"auc        train {metrics['train_auc']:.4f}, cv 10x5 {metrics['cv_auc_mean']:.4f} "
        f"+/- {metrics['cv_auc_std']:.4f}"
    )
    parity = artifact.parity
    print(f"parity     max |P diff| {parity.probability:.2e}, max |logit diff| {parity.logit:.2e}")
    print(f"file       {run.path}")
    print(f"sha256     {artifact.sha256}")
    print(f"wall time  {time.perf_counter() - started:.2f} s")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train_command = commands.add_parser("train", help="fit, evaluate, export behind the parity gate, register")
    train_command.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="German-credit or flat-feature .csv/.parquet (default: the vendored data)",
    )
    train_command.add_argument("--model", choices=MODELS, default="logreg")
    train_command.add_argument("--seed", type=int, default=42)
    train_command.add_argument("--out", type=Path, default=Path("onnx_models"))
    train_command.add_argument("--version", default="1", help="artifact version; released versions are immutable")
    train_command.add_argument(
        "--promote", action="store_true", help="make this the champion even if the registry already has one"
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
