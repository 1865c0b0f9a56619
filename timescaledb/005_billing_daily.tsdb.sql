-- Daily aggregate, real time (materialized_only = false) so today's rows show at once.
CREATE MATERIALIZED VIEW IF NOT EXISTS billing_daily
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 day', charge_period_start) AS day,
       provider, billing_account_id, sub_account_id, service_name, service_category,
       region, model, token_type, customer_id, project_id, charge_category,
       consumed_unit, billing_currency, source,
       sum(billed_cost)       AS billed_cost,
       sum(effective_cost)    AS effective_cost,
       sum(consumed_quantity) AS consumed_quantity,
       count(*)               AS line_items
FROM billing_line_items
GROUP BY 1, provider, billing_account_id, sub_account_id, service_name, service_category,
         region, model, token_type, customer_id, project_id, charge_category,
         consumed_unit, billing_currency, source
WITH NO DATA;

SELECT add_continuous_aggregate_policy('billing_daily',
    start_offset => INTERVAL '35 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '1 hour', if_not_exists => TRUE);
