"""Stable datasource uids, shared by the provisioning files and every panel.

grafana/provisioning/datasources/costmon.yml declares exactly these; a test
checks that every panel, target and variable points at one of them.
"""

from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import DataSourceRef

PROMETHEUS_UID = "costmon-prometheus"
LOKI_UID = "costmon-loki"
TIMESCALEDB_UID = "costmon-timescaledb"

PROMETHEUS_TYPE = "prometheus"
LOKI_TYPE = "loki"
POSTGRES_TYPE = "grafana-postgresql-datasource"


def prometheus() -> DataSourceRef:
    return DataSourceRef(type_val=PROMETHEUS_TYPE, uid=PROMETHEUS_UID)


def loki() -> DataSourceRef:
    return DataSourceRef(type_val=LOKI_TYPE, uid=LOKI_UID)


def timescaledb() -> DataSourceRef:
    return DataSourceRef(type_val=POSTGRES_TYPE, uid=TIMESCALEDB_UID)
