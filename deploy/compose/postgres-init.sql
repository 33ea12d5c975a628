-- Run once by the postgres image on an empty data directory, as its superuser (docker-compose.yml).
-- The roles a DBA makes for streamer (README.md, "Running in production", PostgreSQL): the tables' owner, which runs
-- `streamer migrate` and `streamer audit-partitions`, and the worker's login role, a member of
-- streamer_worker (its privileges are granted by migration 004: append audit rows, store offsets, nothing
-- else). Local passwords only.
CREATE ROLE streamer_owner LOGIN PASSWORD 'streamer_owner';
CREATE DATABASE streamer OWNER streamer_owner;
CREATE ROLE streamer_worker NOLOGIN;
CREATE ROLE streamer_app LOGIN PASSWORD 'streamer_app';
GRANT streamer_worker TO streamer_app;
