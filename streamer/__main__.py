"""`python -m streamer <command>` and the `streamer` console script: Faust's CLI with our commands."""

from __future__ import annotations

import sys
from typing import NoReturn

from streamer.app.database_cli import COMMANDS, database_cli
from streamer.config import Settings


def main() -> NoReturn:
    # The Postgres-only commands run without the Faust app, whose Kafka credentials read the CA bundle:
    # the migrate Job and the partitions CronJob must not need Kafka's files (issue 15).
    if sys.argv[1:2] and sys.argv[1] in COMMANDS:
        database_cli.main(prog_name="streamer")
    # The composition root: the worker's commands, then the developer stack's. Importing the latter loads
    # neither the embedded broker nor Postgres (streamer/local/commands.py imports them when a command runs).
    from streamer.app.cli import app  # noqa: PLC0415 (builds the Faust app: only for the commands that use it)
    from streamer.local import commands as _developer_commands  # noqa: F401, PLC0415 (registers local, demo, produce)

    # Faust's banner and spinner would interleave plain text with the JSON log lines on stdout, so a
    # worker logging JSON runs quiet (its log records still flow; only the decorations go).
    log_format = Settings().log_format
    json_logs = log_format == "json" or (log_format == "auto" and not sys.stdout.isatty())
    if json_logs and "worker" in sys.argv[1:] and not {"-q", "--quiet", "--no-quiet"} & set(sys.argv):
        sys.argv.insert(1, "--quiet")
    app.main()


if __name__ == "__main__":
    main()
