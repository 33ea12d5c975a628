"""`python -m streamer <command>` and the `streamer` console script: Faust's CLI with our commands."""

from __future__ import annotations

import sys
from typing import NoReturn

# The composition root: the worker's commands, then the developer stack's. Importing the latter loads
# neither the embedded broker nor Postgres (streamer/local/commands.py imports them when a command runs).
from streamer.app.cli import app, settings
from streamer.local import commands as _developer_commands  # noqa: F401 (registers local, demo, produce)


def main() -> NoReturn:
    # Faust's banner and spinner would interleave plain text with the JSON log lines on stdout, so a
    # worker logging JSON runs quiet (its log records still flow; only the decorations go).
    json_logs = settings.log_format == "json" or (settings.log_format == "auto" and not sys.stdout.isatty())
    if json_logs and "worker" in sys.argv[1:] and not {"-q", "--quiet", "--no-quiet"} & set(sys.argv):
        sys.argv.insert(1, "--quiet")
    app.main()


if __name__ == "__main__":
    main()
