"""``python -m raykafka.dashboards``: print the Grafana dashboard's path."""

from raykafka.dashboards import GRAFANA_DASHBOARD

print(GRAFANA_DASHBOARD)
