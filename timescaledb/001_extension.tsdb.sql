-- Only applied when the TimescaleDB extension can be loaded (the runner decides).
CREATE EXTENSION IF NOT EXISTS timescaledb;
