"""Every file raykafka writes is the owner's alone (0600, directories 0700) unless the operator
widens it (RAYKAFKA_DATA_FILE_MODE / RAYKAFKA_DATA_DIR_MODE). No Ray."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

from storage_helpers import payload_of

from raykafka.storage import LogConfig, PartitionLog
from raykafka.storage.layout import Identity, namespace_cluster_id, namespace_root, open_owned_directory
from raykafka.storage.leader_epochs import LeaderEpochCache


def build_everything(data_dir) -> None:
    """A namespace, an owned replica directory with a log of several segments, checkpoints,
    leader epochs and a clean close: every kind of file the storage engine writes."""
    root = namespace_root(data_dir, "ns")
    cluster = namespace_cluster_id(root, "ns", "c1")
    replica = root / "replicas" / "t-0" / "r1"
    lock = open_owned_directory(replica, Identity("replica", "ns", cluster, "t-0/r1"))
    log = PartitionLog(replica, LogConfig(segment_bytes=300))
    for i in range(5):
        log.append(payload_of(64, i), record_count=1, first_timestamp_ms=i, max_timestamp_ms=i)
    log.delete_records(1)
    LeaderEpochCache(replica).assign(0, 0)
    log.close()
    lock.release()


def modes(data_dir) -> dict[str, int]:
    found = {}
    for path, dirs, files in os.walk(data_dir):
        for name in dirs + files:
            full = os.path.join(path, name)
            found[os.path.relpath(full, data_dir)] = stat.S_IMODE(os.stat(full).st_mode)
    return found


def test_files_are_owner_only_by_default(tmp_path):
    data_dir = tmp_path / "data"
    build_everything(data_dir)
    found = modes(tmp_path)
    assert len(found) > 12
    wrong = {p: oct(m) for p, m in found.items() if m != (0o700 if os.path.isdir(tmp_path / p) else 0o600)}
    assert wrong == {}


def test_modes_can_be_widened_by_the_operator(tmp_path):
    script = (
        "import sys; sys.path.insert(0, 'tests/storage'); from pathlib import Path;"
        "from test_permissions import build_everything; build_everything(Path(sys.argv[1]))"
    )
    env = dict(os.environ, RAYKAFKA_DATA_FILE_MODE="640", RAYKAFKA_DATA_DIR_MODE="750")
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "data")], check=True, env=env, cwd=os.getcwd()
    )
    found = modes(tmp_path)
    assert {m for p, m in found.items() if os.path.isdir(tmp_path / p)} == {0o750}
    assert {m for p, m in found.items() if not os.path.isdir(tmp_path / p)} == {0o640}
    bad = subprocess.run(
        [sys.executable, "-c", "import raykafka.storage.permissions"],
        env=dict(os.environ, RAYKAFKA_DATA_FILE_MODE="rw-"),
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "RAYKAFKA_DATA_FILE_MODE='rw-' is not an octal file mode" in bad.stderr
