"""The worker's subcommands on Faust's CLI (Faust's own, such as `worker`), plus the Postgres-only ones
(`migrate`, `audit-partitions`), listed there too. Each works as `streamer <cmd>` and `python -m streamer
<cmd>`; `streamer.__main__` runs the Postgres-only ones without building the Faust app."""

from __future__ import annotations

from faust.cli.base import cli as faust_cli

from streamer.app.database_cli import COMMANDS
from streamer.app.faust_app import app, settings

__all__ = ["app", "settings"]

for _name, _command in COMMANDS.items():
    faust_cli.add_command(_command, _name)  # so `streamer --help` lists them, and `streamer -q migrate` works
