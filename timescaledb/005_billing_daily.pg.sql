-- Plain PostgreSQL: the same name and columns as the continuous aggregate, as a view.
CREATE OR REPLACE VIEW billing_daily AS
SELECT date_trunc('day', charge_period_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS day,
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
         consumed_unit, billing_currency, source;
