-- The audit rows arrive in about the order of decided_at, so a BRIN index (one summary per block range)
-- serves the time-range queries and the ledger's retention DELETE as well as the btrees did, for a fraction
-- of the cost per inserted row (python -m bench.probes.audit_cost; bench/results/audit-cost-2026-12-02.txt).
-- Only indexes change: no row is rewritten. Building them locks out the audit's writes for the migration's
-- length; the audit retries and catches up.
DROP INDEX decision_audit_decided_at;
CREATE INDEX decision_audit_decided_at ON decision_audit USING brin (decided_at);
DROP INDEX decision_audit_ids_decided_at;
CREATE INDEX decision_audit_ids_decided_at ON decision_audit_ids USING brin (decided_at);
