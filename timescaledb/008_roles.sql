-- Group roles (NOLOGIN): the collector's writer and Grafana's SELECT-only reader.
-- Login users are granted one of these (costmon migrate does it for the Grafana user).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'costmon_writer') THEN
        CREATE ROLE costmon_writer NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'costmon_reader') THEN
        CREATE ROLE costmon_reader NOLOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO costmon_reader, costmon_writer;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO costmon_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO costmon_writer;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO costmon_writer;
-- Tables and views created by later migrations are covered too.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO costmon_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO costmon_writer;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO costmon_writer;
