"""`python -m streamer <command>` and the `streamer` console script: Faust's CLI with our commands."""

from __future__ import annotations

from typing import NoReturn

from streamer.cli import app  # the app, with our subcommands registered on it


def main() -> NoReturn:
    app.main()


if __name__ == "__main__":
    main()
