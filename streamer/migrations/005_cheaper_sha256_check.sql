-- The same rule as before (64 lowercase hex digits), checked without the bounded repetition `{64}`,
-- which Postgres's regex engine runs about 8x slower: 11.3 us per row measured against 1.3 us, in a
-- budget of ~50 us of Postgres CPU per audit row (bench/README.md).
ALTER TABLE decision_audit DROP CONSTRAINT decision_audit_sha256_hex;
ALTER TABLE decision_audit ADD CONSTRAINT decision_audit_sha256_hex
    CHECK (length(model_sha256) = 64 AND model_sha256::text ~ '^[0-9a-f]*$');
