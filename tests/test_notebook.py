"""examples/quickstart.ipynb runs end to end in a real Jupyter kernel attached to a `ray start --head`
cluster (token auth on)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "quickstart.ipynb"


def test_quickstart_notebook(ray_head, tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=120,  # per cell
        startup_timeout=60,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    # The kernel is a subprocess: it gets the cluster's environment (RAY_ADDRESS, token auth,
    # RAYKAFKA_DATA_DIR), so `raykafka.connect()` in the notebook joins the ray_head cluster.
    client.execute(env=dict(ray_head.env))

    text = "\n".join(
        output.get("text", "") + "".join(output.get("data", {}).get("text/plain", ""))
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    found = re.search(r"QUICKSTART consumed=(\d+) lag=(\d+)", text)
    assert found, text[-3000:]
    assert (int(found.group(1)), int(found.group(2))) == (100, 10)
    # connected to the cluster, not a private local Ray
    cluster = re.search(r"Ray cluster: (\S+)", text)
    assert cluster and cluster.group(1).split(":")[-1] == ray_head.address.split(":")[-1], text[:2000]
    # the keyed records reached every partition of the topic
    spread = re.search(r"records per partition: (\{.*\})", text)
    assert spread, text[-3000:]
    per_partition = ast.literal_eval(spread.group(1))
    assert sorted(per_partition) == [0, 1] and all(per_partition.values()), per_partition
    assert sum(per_partition.values()) == 100
    # describe_topic shows as a table, and its text form is one short line with short node ids
    [described] = [
        o["data"]
        for cell in nb.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
        if "".join(o.get("data", {}).get("text/plain", "")).startswith("TopicDescription(")
    ]
    plain = "".join(described["text/plain"])
    assert plain.startswith("TopicDescription('quickstart-") and len(plain) < 300, plain
    assert not re.search(r"[0-9a-f]{56}", plain), plain
    partitions_table = "".join(described["text/html"]).split("<details>")[0]  # the config follows
    assert partitions_table.count("<tr>") == 1 + 2  # header + one row per partition
    # the last cell deleted the topic: a rerun starts clean
    assert nb.cells[-1].outputs[-1]["data"]["text/plain"] == "False"
