"""Fixtures of the integration tests beyond the session's broker and Postgres (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streamer.local.stack import LocalStack
from tests.integration.mlflow_server import MlflowServer, mlflow_executable


@pytest.fixture(scope="session")
def mlflow_server(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A real MLflow server on the session's Postgres, started once per session and broker."""
    executable = mlflow_executable()
    if executable is None:
        pytest.skip("the MLflow server is not installed: `make test` puts it in .venv/mlflow "
                    "(requirements/mlflow.txt)")
    server = MlflowServer(executable, stack.postgres.url, tmp_path_factory.mktemp("mlflow")).start()
    yield server
    server.stop()
