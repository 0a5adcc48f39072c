"""examples/quickstart.ipynb runs end to end in a real Jupyter kernel attached to a `ray start --head`
cluster (token auth on)."""

from __future__ import annotations

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
    # the last cell deleted the topic: a rerun starts clean
    assert nb.cells[-1].outputs[-1]["data"]["text/plain"] == "False"
