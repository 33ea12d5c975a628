-- The worker's database role may read and append audit rows, nothing else: UPDATE, DELETE and TRUNCATE
-- fail. Whoever runs `streamer migrate` owns the tables (the migration role). A login role for the
-- worker is made by the DBA as a member: CREATE ROLE streamer_app LOGIN PASSWORD '...' IN ROLE streamer_worker;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'streamer_worker') THEN
        CREATE ROLE streamer_worker NOLOGIN;
    END IF;
END
$$;

REVOKE ALL ON decision_audit, decision_audit_ids, schema_migrations FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO streamer_worker;
GRANT SELECT, INSERT ON decision_audit, decision_audit_ids TO streamer_worker;
