-- The audit consumer's offsets, kept with the rows they cover: each batch's transaction stores them
-- (streamer/stages/audit.py says which), so a database restored from a dump resumes the audit from the
-- offsets that match its rows, whatever Kafka's committed offsets say.
CREATE TABLE audit_consumer_offsets (
    consumer_group text    NOT NULL,
    topic          text    NOT NULL,
    partition      integer NOT NULL,
    next_offset    bigint  NOT NULL CHECK (next_offset >= 0),
    stored_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);

REVOKE ALL ON audit_consumer_offsets FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON audit_consumer_offsets TO streamer_worker;
