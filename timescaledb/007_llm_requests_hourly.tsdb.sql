SELECT create_hypertable('llm_requests', 'ts', chunk_time_interval => INTERVAL '1 day',
                         if_not_exists => TRUE);

CREATE MATERIALIZED VIEW IF NOT EXISTS llm_requests_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', ts) AS hour, provider, model, customer_id, currency, status,
       count(*) AS requests, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(cached_tokens) AS cached_tokens, sum(cost) AS cost,
       avg(latency_seconds) AS avg_latency_seconds
FROM llm_requests
GROUP BY 1, provider, model, customer_id, currency, status
WITH NO DATA;

SELECT add_continuous_aggregate_policy('llm_requests_hourly',
    start_offset => INTERVAL '3 days', end_offset => INTERVAL '5 minutes',
    schedule_interval => INTERVAL '15 minutes', if_not_exists => TRUE);
