"""Dashboard uids (stable: links, bookmarks and alert annotations point at them)."""

EXECUTIVE = "costmon-executive"
EXPLORER = "costmon-cost-explorer"
MODELS = "costmon-models"
CUSTOMERS = "costmon-customers"
ANOMALIES = "costmon-anomalies"
COLLECTOR = "costmon-collector"
INFRASTRUCTURE = "costmon-infrastructure"
