"""Restore the audit database from a pg_dump custom-format dump: `streamer audit-restore` (deploy/README.md,
"Backup and restore").

Into a new database, not over the old one: pg_restore --clean cannot drop a partition's inherited primary
key, and a half-cleaned audit is worse than either copy. The dump goes into `<db>_restoring`, the migrations
run there, and then the two swap names; the old database stays as `<db>_before_restore_<UTC time>` until
someone drops it. The workers must be stopped (a database with sessions cannot be renamed); started
again, the audit resumes from the offsets the dump holds and audits again, once each, the decisions since.
"""

from __future__ import annotations

# pg_restore runs with a list of arguments, never through a shell
import subprocess  # nosec B404
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from streamer.audit.migrations import migrate

MAINTENANCE_DATABASE = "postgres"


def restore(url: str, dump: Path, pg_restore: str = "pg_restore") -> str:
    """Restore `dump` as the database `url` names; returns the name the old database is kept under."""
    database = str(conninfo_to_dict(url).get("dbname") or "")
    if not database:
        raise ValueError("the database URL names no database")
    restoring, kept = f"{database}_restoring", f"{database}_before_restore_{datetime.now(UTC):%Y%m%d%H%M%S}"
    maintenance = make_conninfo(url, dbname=MAINTENANCE_DATABASE)
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(restoring)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(restoring)))
    target = make_conninfo(url, dbname=restoring)
    # One transaction: a dump that does not restore whole leaves nothing behind but an empty database.
    # a program the operator names and our own arguments, no shell
    done = subprocess.run(  # nosec B603
        [pg_restore, "--single-transaction", "--exit-on-error", "--dbname", target, str(dump)],
        capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pg_restore failed; {database} is untouched:\n{done.stderr.strip()}")
    migrate(target)  # the partitions ahead and the grants, as a deploy would leave them
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(database), sql.Identifier(kept)))
        conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(restoring),
                                                                      sql.Identifier(database)))
    return kept
