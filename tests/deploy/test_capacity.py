"""deploy/README.md's capacity plan is what deploy/capacity.py computes from the measurements it names."""

from __future__ import annotations

import re

from tests.deploy.conftest import REPO, load_script

capacity = load_script("deploy/capacity.py")

README = REPO / "deploy" / "README.md"
RESULTS = REPO / "bench" / "results"


def _readme_table() -> str:
    found = re.search(r"<!-- capacity:begin -->\n(.*?)\n<!-- capacity:end -->", README.read_text(), re.DOTALL)
    assert found, "deploy/README.md has no capacity table between its markers"
    return found.group(1)


def test_the_readmes_table_is_the_scripts_output_from_the_last_bench() -> None:
    assert _readme_table() == capacity.table(capacity.worker_rate()), "run python deploy/capacity.py"


def test_the_inputs_are_the_measured_figures() -> None:
    cpu = (RESULTS / "audit-cost-2026-12-02.txt").read_text()
    assert f"{capacity.POSTGRES_CPU_US_PER_ROW}" in cpu
    wal = (RESULTS / "audit-cost-wal-2026-12-02.txt").read_text()
    assert f"WAL {capacity.POSTGRES_WAL_BYTES_PER_ROW} B/row" in wal
    assert f"stored (tables, indexes) {capacity.POSTGRES_STORED_BYTES_PER_ROW} B/row" in wal


def test_each_plan_has_the_workers_and_partitions_its_rate_needs() -> None:
    per_worker = capacity.worker_rate()
    for rate in capacity.RATES:
        plan = capacity.plan(rate, per_worker)
        assert plan.workers * per_worker * capacity.PLAN_AT >= rate
        assert (plan.workers - 1) * per_worker * capacity.PLAN_AT < rate, "more workers than the rate needs"
        assert plan.partitions >= 2 * plan.workers and plan.partitions % 8 == 0


def test_the_stated_limit_of_one_primary_is_where_the_plan_says_no() -> None:
    limit = capacity.one_primary_limit()
    assert "about 130,000 applications/s sustained" in README.read_text() and 125_000 < limit < 135_000
    per_worker = capacity.worker_rate()
    assert capacity.plan(int(limit * 0.99), per_worker).one_primary
    assert not capacity.plan(int(limit * 1.01), per_worker).one_primary
