SELECT create_hypertable('billing_line_items', 'charge_period_start',
                         chunk_time_interval => INTERVAL '7 days', if_not_exists => TRUE);

ALTER TABLE billing_line_items SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'source, billing_account_id',
    timescaledb.compress_orderby = 'charge_period_start'
);
