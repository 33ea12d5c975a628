-- One row per decision, written by the audit agent. decision_id is deterministic (application id +
-- model version), so redelivered decisions collapse onto the same row.
CREATE TABLE IF NOT EXISTS decision_audit (
    decision_id            uuid PRIMARY KEY,
    application_id         text NOT NULL,
    outcome                text NOT NULL CHECK (outcome IN ('approve', 'review', 'decline')),
    probability_of_default double precision NOT NULL CHECK (probability_of_default BETWEEN 0 AND 1),
    model_name             text NOT NULL,
    model_version          text NOT NULL,
    model_sha256           char(64) NOT NULL,
    policy_version         text NOT NULL,
    reason_codes           jsonb NOT NULL DEFAULT '[]'::jsonb,
    decided_at             timestamptz NOT NULL,
    latency_ms             double precision NOT NULL,
    source_topic           text NOT NULL,
    source_partition       integer NOT NULL,
    source_offset          bigint NOT NULL,
    recorded_at            timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS decision_audit_application_id ON decision_audit (application_id);
CREATE INDEX IF NOT EXISTS decision_audit_decided_at ON decision_audit (decided_at);
