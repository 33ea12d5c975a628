-- The DEFAULT partition trap (issue 15): one row in decision_audit_default for month M made creating M's
-- partition fail ("updated partition constraint for default partition would be violated"), and with it
-- `streamer migrate`, the partitions CronJob and every deploy. A month's partition is now made as a plain
-- table with decision_audit's columns and checks, M's rows are moved out of DEFAULT into it, and then it is
-- attached (ATTACH PARTITION checks DEFAULT holds no row of M, and locks decision_audit less than CREATE
-- TABLE ... PARTITION OF did), all in the caller's one transaction. DEFAULT is locked against writes
-- meanwhile, so no row of M can land there between the move and the attach.
-- Relies on 003 (replaces its function) and 004 (the streamer_worker role) only; not on 006 or 007.
CREATE OR REPLACE FUNCTION streamer_ensure_audit_partitions(first_month date, last_month date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    month date := date_trunc('month', first_month)::date;
    next_month date;
    created integer := 0;
    name text;
BEGIN
    WHILE month <= last_month LOOP
        name := format('decision_audit_y%sm%s', to_char(month, 'YYYY'), to_char(month, 'MM'));
        next_month := (month + interval '1 month')::date;
        IF to_regclass(name) IS NULL THEN
            LOCK TABLE decision_audit_default IN EXCLUSIVE MODE;
            EXECUTE format('CREATE TABLE %I (LIKE decision_audit INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
            EXECUTE format('WITH moved AS (DELETE FROM decision_audit_default WHERE decided_at >= %L AND decided_at < %L'
                           ' RETURNING *) INSERT INTO %I SELECT * FROM moved', month, next_month, name);
            EXECUTE format('ALTER TABLE decision_audit ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                           name, month, next_month);
            created := created + 1;
        END IF;
        month := next_month;
    END LOOP;
    RETURN created;
END
$$;

-- Rows in DEFAULT mean a month without its partition: alerted on (StreamerAuditDefaultPartitionNotEmpty)
-- from the worker's gauge streamer_audit_default_partition_rows. The worker role may not read the partition
-- itself, and counting it through decision_audit would scan every month, so the owner counts for it,
-- up to `cap` rows (enough to alert on, cheap however many there are).
CREATE OR REPLACE FUNCTION streamer_audit_default_rows(cap integer DEFAULT 10000) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT count(*) FROM (SELECT 1 FROM decision_audit_default LIMIT cap) AS waiting
$$;
REVOKE ALL ON FUNCTION streamer_audit_default_rows(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION streamer_audit_default_rows(integer) TO streamer_worker;
