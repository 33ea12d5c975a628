"""6. The same application_id published twice, some time apart.

Documented behaviour (README, Decisions): the decision_id is a uuid5 of the application id and the model,
so both submissions are scored and published under the same decision_id, and the audit keeps one row:
the first one. This holds even when the second submission carries different data (a changed amount): it
is scored afresh, but consumers that dedupe on decision_id will drop that second decision.
"""

from __future__ import annotations

import json
import time

import psycopg
import pytest

from streamer.local.synthetic import ApplicationFactory
from tests.conftest import Isolated
from tests.faults.conftest import Sizes
from tests.faults.harness import Payload, check_promise, publish_all, report, settle, spawn

pytestmark = [pytest.mark.faults, pytest.mark.integration]

def _payload(doc: dict[str, object]) -> Payload:
    app_id = str(doc["application_id"])
    return Payload(app_id.encode(), json.dumps(doc).encode(), None, app_id)


def test_an_application_published_twice_is_scored_twice_under_one_decision_id_and_audited_once(
    isolated: Isolated, size: Sizes
) -> None:
    s, count = isolated.settings, size.resubmit_applications
    factory = ApplicationFactory(seed=106)
    docs = [factory.valid() for _ in range(count)]
    first = [_payload(d) for d in docs]
    changed = [{**d, "loan": {**d["loan"], "amount": d["loan"]["amount"] * 3}} for d in docs[count // 2:]]
    second = first[: count // 2] + [_payload(d) for d in changed]
    spawn(isolated.env, isolated.run_dir / "worker.log", isolated.stack.workers)

    one = publish_all(s, first)
    settle(s, one.ends())
    time.sleep(size.resubmit_after_s)
    two = publish_all(s, second)
    ledger = settle(s, one.ends() | two.ends())  # the second round lies beyond the first
    account = check_promise(ledger, first + second, one.positions + two.positions, s.database_url.get_secret_value())

    by_app = ledger.decision_ids_by_application()
    assert all(len(ids) == 2 for ids in by_app.values()), "each submission is scored once, no more, no less"
    assert account.audit_rows == count
    events: dict[str, list[tuple[int, dict[str, object]]]] = {}
    for m in ledger.decisions:  # one key, one partition: offsets order the two submissions
        doc = json.loads(m.value() or b"{}")
        events.setdefault(doc["application_id"], []).append((m.offset() or 0, doc))
    earlier = {a: min(e, key=lambda x: x[0])[1] for a, e in events.items()}
    later = {a: max(e, key=lambda x: x[0])[1] for a, e in events.items()}
    with psycopg.connect(s.database_url.get_secret_value()) as conn:
        rows = conn.execute("SELECT application_id, probability_of_default FROM decision_audit").fetchall()
    for app_id, probability in rows:
        assert probability == pytest.approx(earlier[app_id]["probability_of_default"]), "the audit kept the first"
    rescored = sum(later[d["application_id"]]["probability_of_default"]
                   != earlier[d["application_id"]]["probability_of_default"] for d in changed)
    assert rescored > 0, "the changed resubmissions were not scored afresh"
    report(size.name, "resubmission", {**account.as_dict(), "changed_and_rescored_differently": rescored})
