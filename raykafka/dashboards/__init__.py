"""raykafka's Grafana dashboard, installed with the package; docs/METRICS.md says how to use it.

``python -m raykafka.dashboards`` prints the path of the JSON file, e.g. to copy it into Ray's
provisioned Grafana dashboards folder::

    cp "$(python -m raykafka.dashboards)" /tmp/ray/session_latest/metrics/grafana/dashboards/
"""

from __future__ import annotations

from pathlib import Path

#: The dashboard: a panel per metric family of ``raykafka.metrics``, on a ``${datasource}`` variable.
GRAFANA_DASHBOARD = Path(__file__).with_name("raykafka_grafana_dashboard.json")
