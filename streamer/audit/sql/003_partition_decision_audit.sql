-- decision_audit becomes range-partitioned by month of decided_at, so retention (25 months for
-- adverse-action records under Reg B) is a partition drop, not a DELETE.
-- A partitioned table can only enforce uniqueness together with its partition key, and a re-scored
-- decision (a redelivery) carries a new decided_at; so "one row per decision_id" is enforced by the
-- unpartitioned ledger decision_audit_ids (ids and times only), written in the same statement.

ALTER TABLE decision_audit RENAME TO decision_audit_unpartitioned;
ALTER TABLE decision_audit_unpartitioned RENAME CONSTRAINT decision_audit_pkey TO decision_audit_unpartitioned_pkey;
ALTER INDEX decision_audit_application_id RENAME TO decision_audit_unpartitioned_application_id;
ALTER INDEX decision_audit_decided_at RENAME TO decision_audit_unpartitioned_decided_at;

CREATE TABLE decision_audit (
    decision_id            uuid NOT NULL,
    application_id         text NOT NULL,
    outcome                text NOT NULL CHECK (outcome IN ('approve', 'review', 'decline')),
    probability_of_default double precision NOT NULL CHECK (probability_of_default BETWEEN 0 AND 1),
    model_name             text NOT NULL,
    model_version          text NOT NULL,
    model_sha256           char(64) NOT NULL CONSTRAINT decision_audit_sha256_hex CHECK (model_sha256 ~ '^[0-9a-f]{64}$'),
    policy_version         text NOT NULL,
    reason_codes           jsonb NOT NULL DEFAULT '[]'::jsonb CONSTRAINT decision_audit_reason_codes_array
                               CHECK (jsonb_typeof(reason_codes) = 'array' AND jsonb_array_length(reason_codes) <= 4),
    decided_at             timestamptz NOT NULL,
    latency_ms             double precision NOT NULL CONSTRAINT decision_audit_latency_non_negative CHECK (latency_ms >= 0),
    source_topic           text NOT NULL,
    source_partition       integer NOT NULL,
    source_offset          bigint NOT NULL,
    recorded_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (decision_id, decided_at)
) PARTITION BY RANGE (decided_at);

CREATE INDEX decision_audit_application_id ON decision_audit (application_id);
CREATE INDEX decision_audit_decided_at ON decision_audit (decided_at);

-- Rows outside every monthly partition land here rather than fail; `streamer partitions` keeps the
-- monthly partitions ahead of time so it stays empty.
CREATE TABLE decision_audit_default PARTITION OF decision_audit DEFAULT;

CREATE TABLE decision_audit_ids (
    decision_id uuid PRIMARY KEY,
    decided_at  timestamptz NOT NULL
);
CREATE INDEX decision_audit_ids_decided_at ON decision_audit_ids (decided_at);

-- Monthly partitions [first of month, first of next month), named decision_audit_yYYYYmMM.
CREATE FUNCTION streamer_ensure_audit_partitions(first_month date, last_month date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    month date := date_trunc('month', first_month)::date;
    created integer := 0;
    name text;
BEGIN
    WHILE month <= last_month LOOP
        name := format('decision_audit_y%sm%s', to_char(month, 'YYYY'), to_char(month, 'MM'));
        IF to_regclass(name) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF decision_audit FOR VALUES FROM (%L) TO (%L)',
                           name, month, (month + interval '1 month')::date);
            created := created + 1;
        END IF;
        month := (month + interval '1 month')::date;
    END LOOP;
    RETURN created;
END
$$;

SELECT streamer_ensure_audit_partitions(
    LEAST(COALESCE((SELECT min(decided_at) FROM decision_audit_unpartitioned)::date, current_date), current_date),
    (current_date + interval '3 months')::date
);

INSERT INTO decision_audit SELECT * FROM decision_audit_unpartitioned;
INSERT INTO decision_audit_ids (decision_id, decided_at) SELECT decision_id, decided_at FROM decision_audit_unpartitioned;
DROP TABLE decision_audit_unpartitioned;
