"""6. Collector health: runs, rows and errors per source, freshness, upstream API calls and bill, logs."""

from __future__ import annotations

from . import uids
from .board import board
from .panels import (logs, prom_bars, prom_stat, prom_timeseries, row, sql_timeseries, table,
                     up_down_mapping)

UID = uids.COLLECTOR
TITLE = "Collector health"

# Promtail labels the collector's container logs with service="collector"; lines are
# structlog JSON with a `level` field.
COLLECTOR_LOGS = '{service="collector"}'
WARNINGS_AND_ERRORS = COLLECTOR_LOGS + ' | json | level=~"warn.*|error|critical"'

RUNS_PER_SOURCE = """
    SELECT source,
           count(*) AS runs,
           count(*) FILTER (WHERE status = 'success') AS succeeded,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           count(*) FILTER (WHERE status = 'running') AS running,
           coalesce(sum(rows_loaded), 0) AS rows_loaded,
           coalesce(sum(unclassified_rows), 0) AS unclassified_rows,
           coalesce(sum(api_calls), 0) AS api_calls,
           coalesce(sum(api_cost_usd), 0) AS api_cost_usd,
           max(finished_at) FILTER (WHERE status = 'success') AS last_success
    FROM ingest_runs
    WHERE $__timeFilter(started_at)
    GROUP BY source
    ORDER BY source
    """

RUNS_OVER_TIME = """
    SELECT $__timeGroupAlias(started_at, '1h'), source || ' ' || status AS metric, count(*) AS runs
    FROM ingest_runs
    WHERE $__timeFilter(started_at)
    GROUP BY 1, 2
    ORDER BY 1, 2
    """

RECENT_RUNS = """
    SELECT started_at AS "time", source, window_start, window_end, status, rows_loaded,
           unclassified_rows, api_calls, api_cost_usd,
           extract(epoch FROM finished_at - started_at) AS duration, error_reason, error
    FROM ingest_runs
    WHERE $__timeFilter(started_at)
    ORDER BY started_at DESC, id DESC
    LIMIT 200
    """

USD = "currencyUSD"  # the upstream API price is in USD by definition (metric and column name)


def panels() -> list:
    return [
        row("Is it running"),
        prom_stat("Database reachable", "costmon_database_up", unit="none",
                  mappings=up_down_mapping(), thresholds=((None, "red"), (1, "green"))),
        prom_stat("Metrics query time", "costmon_metrics_query_duration_seconds", unit="s"),
        prom_stat("Series dropped (label cap)", "costmon_metrics_series_dropped", unit="short",
                  thresholds=((None, "green"), (1, "orange"))),
        prom_stat("Estimated upstream API bill, selected range",
                  "sum(increase(costmon_source_api_cost_usd_total[$__range]))", unit=USD, decimals=2,
                  description="Priced upstream calls (AWS Cost Explorer: $0.01 per request)."),
        row("Freshness"),
        prom_bars("Time since last successful run, per source",
                  "time() - costmon_source_last_success_timestamp_seconds", legend="{{source}}",
                  unit="s", thresholds=((None, "green"), (21600, "orange"), (86400, "red"))),
        prom_bars("Age of the newest charge held, per provider",
                  "time() - costmon_billing_last_charge_timestamp_seconds", legend="{{provider}}",
                  unit="s", thresholds=((None, "green"), (172800, "orange"), (345600, "red"))),
        row("Runs, rows, errors"),
        prom_timeseries("Runs per hour by source and status",
                        [("sum by (source, status) (increase(costmon_source_runs_total[1h]))",
                          "{{source}} {{status}}")]),
        prom_timeseries("Errors per hour by source and reason",
                        [("sum by (source, reason) (increase(costmon_source_errors_total[1h]))",
                          "{{source}} {{reason}}")]),
        prom_timeseries("Line items loaded per hour",
                        [("sum by (source) (increase(costmon_source_rows_total[1h]))", "{{source}}"),
                         ("sum by (source) (increase(costmon_source_unclassified_rows_total[1h]))",
                          "{{source}} unclassified")]),
        prom_timeseries("Last run duration", [("costmon_source_last_run_duration_seconds", "{{source}}")],
                        unit="s"),
        row("Upstream API calls"),
        prom_timeseries("Upstream API calls per hour",
                        [("sum by (source) (increase(costmon_source_api_calls_total[1h]))", "{{source}}")]),
        prom_timeseries("Estimated upstream API cost per day",
                        [("sum by (source) (increase(costmon_source_api_cost_usd_total[1d]))",
                          "{{source}}")], unit=USD, decimals=2),
        row("Ingest runs (database)"),
        table("Runs per source (selected range)", RUNS_PER_SOURCE, units={"api_cost_usd": USD},
              span=12, height=8),
        sql_timeseries("Runs per hour (database)", RUNS_OVER_TIME, unit="short", stacked=True,
                       bars=True, span=12),
        table("Recent runs", RECENT_RUNS, units={"api_cost_usd": USD, "duration": "s"}, height=10),
        row("Logs"),
        logs("Collector warnings and errors", WARNINGS_AND_ERRORS),
    ]


def build() -> dict:
    return board(UID, TITLE, description="Runs, rows and errors per source, freshness, upstream API "
                 "calls and their estimated bill, collector warnings and errors.",
                 panels=panels(), time_from="now-24h", refresh="1m")
