"""Two database roles, as deploy/README.md tells a DBA to make them (issue 15, item 2): an owner that runs
`streamer migrate` and `streamer audit-partitions` and owns the tables, and a login role in streamer_worker
for the worker, which may append audit rows and store its offsets but never change or delete a row."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from streamer.local.produce import publish
from streamer.local.synthetic import ApplicationFactory
from tests.conftest import REPO, TANSU_ONLY, Isolated
from tests.integration.helpers import eventually

pytestmark = [pytest.mark.integration, TANSU_ONLY]  # the subject is Postgres's privileges, not the broker


@pytest.fixture
def roles(isolated: Isolated) -> Iterator[tuple[str, str]]:
    """(owner URL, worker URL) of a database the owner role owns, made as a DBA would, nothing migrated yet."""
    tag = uuid.uuid4().hex[:8]
    admin = isolated.stack.postgres.url
    owner, app, database = f"owner_{tag}", f"app_{tag}", f"roles_{tag}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{owner}" LOGIN PASSWORD \'owner\'')
        conn.execute(f'CREATE DATABASE "{database}" OWNER "{owner}"')
        conn.execute("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'streamer_worker') "
                     "THEN CREATE ROLE streamer_worker NOLOGIN; END IF; END $$")
        conn.execute(f'CREATE ROLE "{app}" LOGIN PASSWORD \'app\' IN ROLE streamer_worker')
    yield (make_conninfo(admin, dbname=database, user=owner, password="owner"),
           make_conninfo(admin, dbname=database, user=app, password="app"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        conn.execute(f'DROP ROLE IF EXISTS "{app}"')
        conn.execute(f'DROP ROLE IF EXISTS "{owner}"')


def _command(isolated: Isolated, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**isolated.env, "STREAMER_DATABASE_URL": url}
    return subprocess.run([sys.executable, "-m", "streamer", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)


def test_the_owner_migrates_and_the_worker_role_audits_but_cannot_change_the_trail(
    isolated: Isolated, roles: tuple[str, str]
) -> None:
    owner_url, worker_url = roles
    for args in (("migrate",), ("audit-partitions",)):
        done = _command(isolated, owner_url, *args)
        assert done.returncode == 0, f"{args} as the owner failed:\n{done.stdout}\n{done.stderr}"

    isolated.start_worker(STREAMER_DATABASE_URL=worker_url)
    payloads = list(ApplicationFactory(seed=77).mixed(300, 30))
    valid = sum(p.expected_reason is None for p in payloads)
    publish(isolated.settings, payloads)

    def audited() -> int:
        with psycopg.connect(owner_url) as conn:
            row = conn.execute("SELECT count(*) FROM decision_audit").fetchone()
        return int(row[0]) if row else 0

    def stored_offsets() -> int:
        with psycopg.connect(owner_url) as conn:
            row = conn.execute("SELECT count(*) FROM audit_consumer_offsets").fetchone()
        return int(row[0]) if row else 0

    eventually(lambda: audited() == valid, 120, f"{valid} audit rows written by the worker role")
    # The last batch's offsets follow its rows in a write of their own, once the loop has marked the batch
    # (streamer/stages/audit_offsets.py): a few milliseconds later.
    eventually(lambda: stored_offsets() > 0, 30, "audit offsets stored by the worker role")

    with psycopg.connect(worker_url, autocommit=True) as conn:
        for statement in ("DELETE FROM decision_audit", "UPDATE decision_audit SET outcome = 'approve'",
                          "TRUNCATE decision_audit", "DELETE FROM audit_consumer_offsets",
                          "DROP TABLE decision_audit"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    assert audited() == valid
