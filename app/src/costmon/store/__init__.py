"""Everything that talks to PostgreSQL/TimescaleDB: connections, migrations, the loader."""
