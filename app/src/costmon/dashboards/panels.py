"""One function per kind of panel; a dashboard is a list of calls to these.

Adding a panel to a dashboard = one call in its module's `panels()` list, e.g.
    money_stat("Budget used", "SELECT ...")
Layout is automatic (left to right, wrapping at 24 columns); `row()` starts a
new titled row. Money panels always show decimals and the billing currency
(as the series name of a stat, a `currency` column of a table, or the
`$currency` filter in the title of a chart).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from grafana_foundation_sdk.builders import bargauge as bargauge_b
from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dashboard_b
from grafana_foundation_sdk.builders import gauge as gauge_b
from grafana_foundation_sdk.builders import logs as logs_b
from grafana_foundation_sdk.builders import loki as loki_b
from grafana_foundation_sdk.builders import prometheus as prometheus_b
from grafana_foundation_sdk.builders import stat as stat_b
from grafana_foundation_sdk.builders import table as table_b
from grafana_foundation_sdk.builders import timeseries as timeseries_b
from grafana_foundation_sdk.builders import trend as trend_b
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm

from . import datasources
from .sql import SqlTarget

MONEY_UNIT = "none"  # a plain number: the currency is shown beside it, never assumed
MONEY_DECIMALS = 2
CURRENCY_TITLE = " (${currency})"  # chart titles: the selected billing currency


def _thresholds(steps: Sequence[tuple[float | None, str]] = ((None, "green"),)) -> dashboard_b.ThresholdsConfig:
    return (dashboard_b.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE)
            .steps([dm.Threshold(value=v, color=c) for v, c in steps]))


def _prom(expr: str, legend: str, ref_id: str, *, instant: bool = False) -> prometheus_b.Dataquery:
    q = (prometheus_b.Dataquery().expr(expr).legend_format(legend).ref_id(ref_id)
         .datasource(datasources.prometheus()))
    return q.instant() if instant else q.range()


def _ref_ids() -> Iterable[str]:
    return (chr(ord("A") + i) for i in range(26))


def _money(panel):
    return panel.unit(MONEY_UNIT).decimals(MONEY_DECIMALS)


def row(title: str) -> dashboard_b.Row:
    return dashboard_b.Row(title)


# ---- SQL panels -------------------------------------------------------------

def money_stat(title: str, sql: str, *, span: int = 6, height: int = 4,
               description: str = "") -> stat_b.Panel:
    """One figure per currency: the query returns time, metric (= billing_currency), value.

    The series name is the currency, shown above the figure (value_and_name).
    """
    return _money(stat_b.Panel().title(title).description(description).span(span).height(height)
                  .datasource(datasources.timescaledb())
                  .with_target(SqlTarget(sql, fmt="time_series"))
                  .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
                  .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
                  .color_mode(common.BigValueColorMode.NONE)
                  .graph_mode(common.BigValueGraphMode.NONE)
                  .thresholds(_thresholds()))


def stat(title: str, sql: str, *, unit: str = "short", decimals: int | None = None,
         span: int = 6, height: int = 4, description: str = "",
         thresholds: Sequence[tuple[float | None, str]] = ((None, "green"),)) -> stat_b.Panel:
    """A non-money figure from SQL (a count, a ratio, an age)."""
    panel = (stat_b.Panel().title(title).description(description).span(span).height(height)
             .datasource(datasources.timescaledb())
             .with_target(SqlTarget(sql, fmt="table"))
             .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
             .color_mode(common.BigValueColorMode.VALUE)
             .graph_mode(common.BigValueGraphMode.NONE)
             .unit(unit).thresholds(_thresholds(thresholds)))
    return panel.decimals(decimals) if decimals is not None else panel


def gauge(title: str, sql: str, *, unit: str = "percentunit", max_value: float = 1.0,
          span: int = 6, height: int = 6, description: str = "",
          thresholds: Sequence[tuple[float | None, str]] = ((None, "green"), (0.8, "orange"), (1.0, "red")),
          ) -> gauge_b.Panel:
    """A ratio against a limit (budget use, forecast vs budget): one gauge per row returned."""
    return (gauge_b.Panel().title(title).description(description).span(span).height(height)
            .datasource(datasources.timescaledb())
            .with_target(SqlTarget(sql, fmt="table"))
            .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(True))
            .unit(unit).decimals(1).min(0).max(max_value)
            .show_threshold_markers(True).thresholds(_thresholds(thresholds)))


def money_timeseries(title: str, sql: str, *, stacked: bool = True, bars: bool = True,
                     percent: bool = False, span: int = 12, height: int = 8,
                     description: str = "") -> timeseries_b.Panel:
    """Daily money series in the selected currency; the query returns time, metric, value."""
    panel = _timeseries(title + CURRENCY_TITLE, description, span, height, stacked, bars, percent)
    panel = panel.datasource(datasources.timescaledb()).with_target(SqlTarget(sql, fmt="time_series"))
    if percent:
        return panel.unit("percentunit").decimals(1)
    return _money(panel)


def sql_timeseries(title: str, sql: str, *, unit: str = "short", stacked: bool = False,
                   bars: bool = False, percent: bool = False, decimals: int | None = None,
                   span: int = 12, height: int = 8, description: str = "") -> timeseries_b.Panel:
    """A non-money series from SQL (tokens, ratios, counts)."""
    panel = _timeseries(title, description, span, height, stacked, bars, percent)
    panel = (panel.datasource(datasources.timescaledb())
             .with_target(SqlTarget(sql, fmt="time_series")).unit(unit))
    return panel.decimals(decimals) if decimals is not None else panel


def _timeseries(title: str, description: str, span: int, height: int, stacked: bool,
                bars: bool, percent: bool) -> timeseries_b.Panel:
    panel = (timeseries_b.Panel().title(title).description(description).span(span).height(height)
             .legend(common_b.VizLegendOptions().display_mode(common.LegendDisplayMode.TABLE)
                     .placement(common.LegendPlacement.RIGHT).show_legend(True)
                     .calcs(["sum", "mean"]))
             .tooltip(common_b.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI)
                      .sort(common.SortOrder.DESCENDING))
             .thresholds(_thresholds()))
    if bars:
        panel = (panel.draw_style(common.GraphDrawStyle.BARS).fill_opacity(80)
                 .bar_alignment(common.BarAlignment.CENTER))
    else:
        panel = panel.draw_style(common.GraphDrawStyle.LINE).fill_opacity(10).line_width(2)
    if stacked or percent:
        mode = common.StackingMode.PERCENT if percent else common.StackingMode.NORMAL
        panel = panel.stacking(common_b.StackingConfig().mode(mode).group("A"))
    return panel


def money_trend(title: str, sql: str, *, x_field: str, dashed: Iterable[str] = (), span: int = 12,
                height: int = 8, description: str = "") -> trend_b.Panel:
    """Money lines over a numeric x axis (e.g. day of the month), whatever the time picker.

    The query returns a table: the x column, then one money column per line
    (NULL where a line has no point). Lines named in `dashed` are drawn dashed.
    Used for the month's burn: spent so far, forecast to the month's end, budget.
    """
    panel = (trend_b.Panel().title(title).description(description).span(span).height(height)
             .datasource(datasources.timescaledb())
             .with_target(SqlTarget(sql, fmt="table"))
             .x_field(x_field).draw_style(common.GraphDrawStyle.LINE).line_width(2).fill_opacity(0)
             .show_points(common.VisibilityMode.NEVER)
             .legend(common_b.VizLegendOptions().display_mode(common.LegendDisplayMode.LIST)
                     .placement(common.LegendPlacement.BOTTOM).show_legend(True))
             .tooltip(common_b.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI)
                      .sort(common.SortOrder.DESCENDING))
             .thresholds(_thresholds()))
    for name in dashed:
        panel = panel.override_by_name(name, [dm.DynamicConfigValue(
            id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]})])
    return _money(panel)


def table(title: str, sql: str, *, money: Iterable[str] = (), percent: Iterable[str] = (),
          units: Mapping[str, str] | None = None, links: Mapping[str, Sequence[dict]] | None = None,
          span: int = 24, height: int = 9, description: str = "") -> table_b.Panel:
    """A SQL table; name its money columns (2 decimals) and fraction columns (percent).

    `links` maps a column to data links (see `link()`): drill-down to other dashboards.
    """
    panel = (table_b.Panel().title(title).description(description).span(span).height(height)
             .datasource(datasources.timescaledb())
             .with_target(SqlTarget(sql, fmt="table"))
             .cell_height(common.TableCellHeight.SM).show_header(True)
             .footer(common_b.TableFooterOptions().show(False).reducer(["sum"]).count_rows(False))
             .thresholds(_thresholds()))
    for name in money:
        panel = panel.override_by_name(name, [dm.DynamicConfigValue(id_val="unit", value=MONEY_UNIT),
                                              dm.DynamicConfigValue(id_val="decimals", value=MONEY_DECIMALS)])
    for name in percent:
        panel = panel.override_by_name(name, [dm.DynamicConfigValue(id_val="unit", value="percentunit"),
                                              dm.DynamicConfigValue(id_val="decimals", value=1)])
    for name, unit in sorted((units or {}).items()):
        panel = panel.override_by_name(name, [dm.DynamicConfigValue(id_val="unit", value=unit)])
    for name, field_links in sorted((links or {}).items()):
        panel = panel.override_by_name(name, [dm.DynamicConfigValue(id_val="links", value=list(field_links))])
    return panel


def link(title: str, dashboard_uid: str, **variables: str) -> dict:
    """A data link to another dashboard keeping the time range and currency.

    variables: dashboard variable -> table column whose clicked value it takes.
    """
    params = ["${__url_time_range}", "${currency:queryparam}"]
    params += [f"var-{name}=${{__data.fields.{column}:percentencode}}"
               for name, column in sorted(variables.items())]
    return {"title": title, "url": f"/d/{dashboard_uid}?" + "&".join(params)}


# ---- Prometheus and Loki panels ---------------------------------------------

def prom_timeseries(title: str, queries: Sequence[tuple[str, str]], *, unit: str = "short",
                    decimals: int | None = None, stacked: bool = False, span: int = 12,
                    height: int = 8, description: str = "", max_value: float | None = None,
                    ) -> timeseries_b.Panel:
    """queries: (PromQL, legend format) pairs."""
    panel = _timeseries(title, description, span, height, stacked, False, False)
    panel = panel.datasource(datasources.prometheus()).unit(unit)
    for (expr, legend), ref in zip(queries, _ref_ids()):
        panel = panel.with_target(_prom(expr, legend, ref))
    if max_value is not None:
        panel = panel.min(0).max(max_value)
    return panel.decimals(decimals) if decimals is not None else panel


def prom_stat(title: str, expr: str, *, legend: str = "", unit: str = "short",
              decimals: int | None = None, span: int = 6, height: int = 4, description: str = "",
              thresholds: Sequence[tuple[float | None, str]] = ((None, "green"),),
              mappings: Sequence[dm.ValueMapping] = ()) -> stat_b.Panel:
    panel = (stat_b.Panel().title(title).description(description).span(span).height(height)
             .datasource(datasources.prometheus())
             .with_target(_prom(expr, legend, "A", instant=True))
             .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
             .text_mode(common.BigValueTextMode.VALUE_AND_NAME if legend else common.BigValueTextMode.AUTO)
             .color_mode(common.BigValueColorMode.VALUE)
             .graph_mode(common.BigValueGraphMode.NONE)
             .unit(unit).thresholds(_thresholds(thresholds)))
    if mappings:
        panel = panel.mappings(list(mappings))
    return panel.decimals(decimals) if decimals is not None else panel


def prom_bars(title: str, expr: str, *, legend: str, unit: str = "short", decimals: int | None = None,
              span: int = 12, height: int = 8, description: str = "", max_value: float | None = None,
              thresholds: Sequence[tuple[float | None, str]] = ((None, "green"),)) -> bargauge_b.Panel:
    """One horizontal bar per series (instant query): containers, targets, sources."""
    panel = (bargauge_b.Panel().title(title).description(description).span(span).height(height)
             .datasource(datasources.prometheus())
             .with_target(_prom(expr, legend, "A", instant=True))
             .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
             .display_mode(common.BarGaugeDisplayMode.BASIC)
             .orientation(common.VizOrientation.HORIZONTAL)
             .unit(unit).thresholds(_thresholds(thresholds)))
    if max_value is not None:
        panel = panel.min(0).max(max_value)
    return panel.decimals(decimals) if decimals is not None else panel


def up_down_mapping() -> list[dm.ValueMapping]:
    return [dm.ValueMap(options={
        "0": dm.ValueMappingResult(text="down", color="red", index=0),
        "1": dm.ValueMappingResult(text="up", color="green", index=1)})]


def logs(title: str, expr: str, *, span: int = 24, height: int = 12,
         description: str = "") -> logs_b.Panel:
    return (logs_b.Panel().title(title).description(description).span(span).height(height)
            .datasource(datasources.loki())
            .with_target(loki_b.Dataquery().expr(expr).ref_id("A").datasource(datasources.loki()))
            .show_time(True).wrap_log_message(True).prettify_log_message(False)
            .enable_log_details(True).show_labels(False).show_common_labels(False)
            .sort_order(common.LogsSortOrder.DESCENDING).dedup_strategy(common.LogsDedupStrategy.NONE))
