CREATE OR REPLACE VIEW llm_requests_hourly AS
SELECT date_trunc('hour', ts) AS hour, provider, model, customer_id, currency, status,
       count(*) AS requests, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(cached_tokens) AS cached_tokens, sum(cost) AS cost,
       avg(latency_seconds) AS avg_latency_seconds
FROM llm_requests
GROUP BY 1, provider, model, customer_id, currency, status;
