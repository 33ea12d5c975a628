-- Issue 14: each audit row keeps what reproduces its decision. The application as the model saw it and the
-- model's inputs are kept in the clear without the protected attributes (sex/personal status, age,
-- foreign-worker status); those are kept sealed (AES-256-GCM, streamer/core/records.py) in
-- protected_attributes under the key record_key_id, so `SELECT *` never shows them. Every column is nullable:
-- rows written before, or by a worker with no record key, have none.
-- Expand only: columns added to the partitioned table reach every partition, DEFAULT included, and partitions
-- made later by streamer_ensure_audit_partitions (008, `LIKE decision_audit`) get them too. No row is
-- rewritten (a nullable column without a default is a catalog change), so this takes only a brief lock. No
-- CHECK is added: one would scan every month's rows under that lock, and cost Postgres CPU on every insert;
-- the audit writes the five columns together or leaves them all NULL (streamer/audit/rows.py).
-- application and features are json, not jsonb: they are written once per decision and read only to show or
-- reproduce one, and json stores the text as it comes where jsonb parses it on every insert, which cost
-- Postgres ~15 us more per row (bench/results/audit-cost-records-2026-12-02.txt).
ALTER TABLE decision_audit
    ADD COLUMN IF NOT EXISTS application_schema_version smallint,
    ADD COLUMN IF NOT EXISTS application json,
    ADD COLUMN IF NOT EXISTS features json,
    ADD COLUMN IF NOT EXISTS protected_attributes bytea,
    ADD COLUMN IF NOT EXISTS record_key_id text;
