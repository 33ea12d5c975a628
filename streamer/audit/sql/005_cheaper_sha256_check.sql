-- The same rule as before (64 lowercase hex digits), checked without the bounded repetition `{64}`,
-- which Postgres's regex engine runs several times slower: 8.4-9.6 us per row against 1.2-1.5 us
-- (python -m bench.probes.sha256_check_cost), in a budget of ~45 us of Postgres CPU per audit row.
ALTER TABLE decision_audit DROP CONSTRAINT decision_audit_sha256_hex;
ALTER TABLE decision_audit ADD CONSTRAINT decision_audit_sha256_hex
    CHECK (length(model_sha256) = 64 AND model_sha256::text ~ '^[0-9a-f]*$');
