"""Failure detection per process, and per-replica observations built from per-process probes."""

from __future__ import annotations

from raykafka.control import DOWN, GONE, FailureDetector, ProcessReport, ReplicaReport, replica_observations


def test_down_needs_both_missed_probes_and_silence():
    fd = FailureDetector(timeout_ms=1_000, misses=2)
    assert fd.status("p", 0) == "suspect"  # never probed
    fd.heard("p", 0)
    fd.missed("p", 5_000)  # one late probe after a long pause of the manager itself: not down
    assert fd.status("p", 5_000) == "suspect"
    fd.missed("p", 5_100)
    assert fd.status("p", 5_100) == "down"
    fd.heard("p", 5_200)
    assert fd.status("p", 5_200) == "up"
    fd.missed("p", 5_300)
    fd.missed("p", 5_400)  # two quick misses, but heard 200 ms ago: not down yet
    assert fd.status("p", 5_400) == "suspect"
    assert fd.down(["p"], 6_200) == ["p"]
    fd.died("p")
    assert fd.status("p", 6_300) == "gone" and fd.gone(["p", "q"]) == ["p"]


def test_one_process_speaks_for_all_its_replicas():
    hosted = {"p1": ["a", "b"], "p2": ["c"], "p3": ["d"], "p4": ["e"]}
    report = ProcessReport("p1", {"a": ReplicaReport("leader", 2)})  # b is not loaded there
    seen = replica_observations(hosted, [report], down=["p2"], gone=["p3"])
    assert seen == {"a": ReplicaReport("leader", 2), "b": GONE, "c": DOWN, "d": GONE}  # e: undecided


def test_health_answers_map_to_reports():
    assert ReplicaReport.from_health("failed", 3) == ReplicaReport("unknown", 3, log_dir_ok=False)
    assert ReplicaReport.from_health("deleted", 3) == ReplicaReport("unknown", 3, log_dir_ok=False)
    assert ReplicaReport.from_health("follower", 3, 10) == ReplicaReport("follower", 3, 10)
