-- One row per source run: what window, how it ended, how much it cost upstream.
CREATE TABLE IF NOT EXISTS ingest_runs (
    id                 bigserial   PRIMARY KEY,
    source             text        NOT NULL,
    window_start       date        NOT NULL,
    window_end         date        NOT NULL,
    started_at         timestamptz NOT NULL DEFAULT now(),
    finished_at        timestamptz,
    status             text        NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'success', 'failed')),
    rows_loaded        bigint      NOT NULL DEFAULT 0,
    unclassified_rows  bigint      NOT NULL DEFAULT 0,
    api_calls          integer     NOT NULL DEFAULT 0,
    api_cost_usd       numeric     NOT NULL DEFAULT 0,
    error_reason       text,
    error              text
);
CREATE INDEX IF NOT EXISTS ingest_runs_source_idx ON ingest_runs (source, finished_at DESC);
