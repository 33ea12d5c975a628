-- The audit agent hands Postgres the decision events as JSON, and Postgres is the last validator of
-- what becomes an audit row: a row that breaks these is dead-lettered instead of written.
ALTER TABLE decision_audit
    ADD CONSTRAINT decision_audit_sha256_hex CHECK (model_sha256 ~ '^[0-9a-f]{64}$'),
    ADD CONSTRAINT decision_audit_reason_codes_array
        CHECK (jsonb_typeof(reason_codes) = 'array' AND jsonb_array_length(reason_codes) <= 4),
    ADD CONSTRAINT decision_audit_latency_non_negative CHECK (latency_ms >= 0);
