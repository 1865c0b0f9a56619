"""7. Infrastructure: the stack's containers (cAdvisor), the host (node-exporter), scrape targets."""

from __future__ import annotations

from . import uids
from .board import board
from .panels import prom_bars, prom_stat, prom_timeseries, row

UID = uids.INFRASTRUCTURE
TITLE = "Infrastructure"

CONTAINERS = 'name!=""'  # cAdvisor: named containers only (not cgroup slices)
DISKS = 'fstype!~"tmpfs|overlay|squashfs|ramfs|nsfs"'
RATE = "$__rate_interval"


def panels() -> list:
    return [
        row("Scrape targets"),
        prom_stat("Targets down", "count(up == 0) or vector(0)", unit="short", decimals=0,
                  thresholds=((None, "green"), (1, "red"))),
        prom_stat("Targets up", "count(up == 1) or vector(0)", unit="short", decimals=0),
        prom_bars("Targets", "up", legend="{{job}} {{instance}}", unit="none", span=12, height=6,
                  thresholds=((None, "red"), (1, "green"))),
        row("Containers (cAdvisor)"),
        prom_timeseries("Container CPU (cores)",
                        [(f"sum by (name) (rate(container_cpu_usage_seconds_total{{{CONTAINERS}}}[{RATE}]))",
                          "{{name}}")], unit="short", decimals=2),
        prom_timeseries("Container memory (working set)",
                        [(f"sum by (name) (container_memory_working_set_bytes{{{CONTAINERS}}})", "{{name}}")],
                        unit="bytes"),
        prom_bars("Container memory vs limit",
                  f"sum by (name) (container_memory_working_set_bytes{{{CONTAINERS}}})"
                  f" / sum by (name) (container_spec_memory_limit_bytes{{{CONTAINERS}}} > 0)",
                  legend="{{name}}", unit="percentunit", max_value=1,
                  thresholds=((None, "green"), (0.8, "orange"), (0.95, "red"))),
        prom_bars("Container restarts (last 24h)",
                  f"sum by (name) (changes(container_start_time_seconds{{{CONTAINERS}}}[24h]))",
                  legend="{{name}}", unit="short", decimals=0,
                  thresholds=((None, "green"), (1, "orange"), (3, "red"))),
        row("Host (node-exporter)"),
        prom_timeseries("Host CPU busy",
                        [(f'1 - avg by (instance) (rate(node_cpu_seconds_total{{mode="idle"}}[{RATE}]))',
                          "{{instance}}")], unit="percentunit", max_value=1),
        prom_timeseries("Host memory used",
                        [("1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes",
                          "{{instance}}")], unit="percentunit", max_value=1),
        prom_timeseries("Disk used",
                        [(f"1 - node_filesystem_avail_bytes{{{DISKS}}} / node_filesystem_size_bytes{{{DISKS}}}",
                          "{{instance}} {{mountpoint}}")], unit="percentunit", max_value=1),
        prom_timeseries("Network",
                        [(f'sum by (instance) (rate(node_network_receive_bytes_total{{device!="lo"}}[{RATE}]))',
                          "{{instance}} received"),
                         (f'sum by (instance) (rate(node_network_transmit_bytes_total{{device!="lo"}}[{RATE}]))',
                          "{{instance}} sent")], unit="Bps"),
    ]


def build() -> dict:
    return board(UID, TITLE, description="Containers (CPU, memory vs limit, restarts), host (CPU, "
                 "memory, disk, network) and the stack's scrape targets.",
                 panels=panels(), time_from="now-6h", refresh="30s")
