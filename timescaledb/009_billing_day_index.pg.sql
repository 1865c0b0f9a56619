-- Plain PostgreSQL only: billing_daily is a view there, and a filter on its `day`
-- column becomes a filter on this expression. The index lets that use a range
-- scan instead of reading every line item (TimescaleDB has the aggregate instead).
CREATE INDEX IF NOT EXISTS billing_line_items_day_idx
    ON billing_line_items ((date_trunc('day', charge_period_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'));
