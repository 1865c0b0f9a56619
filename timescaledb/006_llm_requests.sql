-- Real-time per-request events from applications or an LLM gateway.
CREATE TABLE IF NOT EXISTS llm_requests (
    ts              timestamptz NOT NULL,
    provider        text        NOT NULL,
    model           text        NOT NULL,
    customer_id     text,
    session_id      text,
    input_tokens    bigint      NOT NULL DEFAULT 0,
    output_tokens   bigint      NOT NULL DEFAULT 0,
    cached_tokens   bigint      NOT NULL DEFAULT 0,
    cost            numeric     NOT NULL DEFAULT 0,
    currency        char(3)     NOT NULL DEFAULT 'USD',
    latency_seconds double precision,
    status          text        NOT NULL DEFAULT 'ok'
);
CREATE INDEX IF NOT EXISTS llm_requests_ts_idx ON llm_requests (ts DESC);
