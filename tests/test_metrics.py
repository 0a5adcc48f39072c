"""raykafka's metrics: read back from the Prometheus endpoint of a real `ray start --head` node,
and kept in step with their documentation (docs/METRICS.md) and the Grafana dashboard."""

from __future__ import annotations

import ast
import json
import re
import sys
import textwrap
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

import raykafka.metrics
from raykafka.dashboards import GRAFANA_DASHBOARD

ROOT = Path(__file__).resolve().parent.parent

DRIVER = textwrap.dedent(
    """
    import sys, raykafka
    from raykafka import Admin, Consumer, Producer, TopicPartition
    raykafka.connect(namespace=sys.argv[1])
    topic, group, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
    Admin().create_topic(topic, partitions=1)
    with Producer() as producer:
        for i in range(n):
            producer.send(topic, b"x" * 100)
    consumer = Consumer(group_id=group, auto_offset_reset="earliest", heartbeat_interval_ms=200)
    consumer.subscribe([topic])
    seen = 0
    while seen < n:
        seen += consumer.poll_batch(timeout_s=1.0).num_rows
    consumer.commit()
    consumer.close()
    print("DONE", seen)
    """
)


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def value(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(re.search(rf'{k}="{re.escape(v)}"', line) for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.mark.slow
def test_metrics_reach_the_prometheus_endpoint(ray_head):
    namespace, topic, group, n = f"metrics-{uuid.uuid4().hex[:8]}", "metered", "mgroup", 500
    done = ray_head.run(sys.executable, "-c", DRIVER, namespace, topic, group, str(n), timeout=180)
    assert "DONE 500" in done.stdout, done.stderr[-2000:]
    wanted = {
        ("ray_raykafka_messages_in_total", "topic"): float(n),
        ("ray_raykafka_bytes_in_total", "topic"): None,  # present, positive
        ("ray_raykafka_messages_out_total", "topic"): None,
        ("ray_raykafka_log_end_offset", "topic"): float(n),
        ("ray_raykafka_high_watermark", "topic"): float(n),
        ("ray_raykafka_log_start_offset", "topic"): 0.0,
        ("ray_raykafka_produce_latency_ms_count", "topic"): None,
        ("ray_raykafka_fetch_latency_ms_count", "topic"): None,
        ("ray_raykafka_consumer_lag", "group"): 0.0,
        ("ray_raykafka_rebalances_total", "group"): None,
    }
    deadline = time.monotonic() + 90  # Ray exports metrics every few seconds
    missing = dict(wanted)
    text = ""
    while missing and time.monotonic() < deadline:
        text = scrape(ray_head.metrics_port)
        for (name, kind), expected in list(missing.items()):
            labels = {"topic": topic} if kind == "topic" else {"group": group}
            found = value(text, name, **labels)
            if found is not None and (found == expected if expected is not None else found > 0):
                del missing[(name, kind)]
        time.sleep(2)
    assert not missing, (
        f"not on the endpoint (or wrong): {sorted(missing)}\n"
        + "\n".join(line for line in text.splitlines() if "raykafka" in line)[:3000]
    )
    # messages out counts every record a consumer was handed, at least once
    assert value(text, "ray_raykafka_messages_out_total", topic=topic) >= n


# -- the metrics, their documentation and the dashboard agree (no Ray) --------------------------

#: Series names Prometheus shows for each kind of ``ray.util.metrics`` metric (Ray prefixes ``ray_``).
SERIES_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}
#: Labels Ray and Prometheus add to every application metric.
RAY_LABELS = {"SessionName", "NodeAddress", "WorkerId", "Component", "Version", "instance", "job"}


def defined_metrics() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Every metric ``raykafka/metrics.py`` creates, read from its source (no Ray needed):
    Prometheus name -> (kind, tag keys)."""
    source = Path(raykafka.metrics.__file__).read_text()
    tree = ast.parse(source)
    constants = {
        target.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    makers = {"_counter": "counter", "_gauge": "gauge", "_histogram": "histogram"}
    found = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in makers):
            continue
        name, _description, tags = node.args
        if isinstance(tags, ast.Name):
            tags = constants[tags.id]
        kind = makers[node.func.id]
        suffix = "_total" if kind == "counter" else ""
        found[f"ray_{ast.literal_eval(name)}{suffix}"] = (kind, tuple(ast.literal_eval(tags)))
    return found


def test_the_metrics_are_read_from_the_source():
    metrics = defined_metrics()
    assert metrics["ray_raykafka_messages_in_total"] == ("counter", ("topic", "partition"))
    assert metrics["ray_raykafka_produce_latency_ms"] == ("histogram", ("topic", "partition"))
    assert metrics["ray_raykafka_consumer_lag"] == ("gauge", ("group", "topic", "partition"))
    assert metrics["ray_raykafka_rebalances_total"] == ("counter", ("group",))
    assert len(metrics) == 13


def test_every_metric_is_documented_and_nothing_else():
    text = (ROOT / "docs" / "METRICS.md").read_text()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 5 and re.fullmatch(r"`ray_raykafka_\w+`", cells[0]):
            rows[cells[0].strip("`")] = (
                cells[1],
                tuple(re.findall(r"`(\w+)`", cells[2])),
                cells[3],
                cells[4],
            )
    metrics = defined_metrics()
    assert sorted(rows) == sorted(metrics), "docs/METRICS.md's table and raykafka/metrics.py differ"
    for name, (kind, tags) in metrics.items():
        documented_kind, documented_tags, unit, meaning = rows[name]
        assert (documented_kind, documented_tags) == (kind, tags), name
        assert unit and len(meaning) > 20, f"{name}: unit and meaning in docs/METRICS.md"
    mentioned = set(re.findall(r"\bray_raykafka_\w+", text))
    undefined = {m for m in mentioned if m not in metrics and series_metric(m, metrics) is None}
    assert not undefined, f"docs/METRICS.md names metrics raykafka does not define: {sorted(undefined)}"


def series_metric(series: str, metrics: dict) -> str | None:
    """The defined metric a Prometheus series name belongs to (``..._bucket`` -> the histogram)."""
    for name, (kind, _) in metrics.items():
        base = name.removesuffix("_total")
        if any(series == base + suffix for suffix in SERIES_SUFFIXES[kind]):
            return name
    return None


def test_the_grafana_dashboard_shows_every_metric_and_only_raykafkas():
    dashboard = json.loads(GRAFANA_DASHBOARD.read_text())
    metrics = defined_metrics()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"

    queried = set()
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    queries = [(p["title"], t["expr"]) for p in panels for t in p["targets"]]
    queries += [
        (f"variable {v['name']}", v["query"]["query"]) for v in variables.values() if v["type"] == "query"
    ]
    for p in panels:
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert all(t["datasource"] == p["datasource"] for t in p["targets"]), p["title"]
    for where, expr in queries:
        assert "raykafka_" in expr, where
        for series, selector in re.findall(r"\b(\w*raykafka_\w+)(\{[^}]*\})?", expr):
            metric = series_metric(series, metrics)
            assert metric is not None, f"{where}: {series} is not a metric raykafka defines (or lacks ray_)"
            queried.add(metric)
            labels = set(re.findall(r"(\w+)\s*=~?", selector))
            assert labels <= set(metrics[metric][1]) | RAY_LABELS, f"{where}: {series} has no {labels}"
        for grouped in re.findall(r"\bby \(([^)]*)\)", expr):
            labels = {label.strip() for label in grouped.split(",")}
            known = {tag for name in queried for tag in metrics[name][1]} | RAY_LABELS | {"le"}
            assert labels <= known, f"{where}: by ({grouped})"
    assert queried == set(metrics), f"no panel for {sorted(set(metrics) - queried)}"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
